"""Password rules (NIST SP 800-63B) and argon2id hashing with the OWASP parameters."""

from __future__ import annotations

import asyncio
import os
import time

import argon2
import pytest
from profile_service.passwords import OWASP_PARAMETERS, PasswordHasher, common_passwords, password_problems

EMAIL, NAME = "jane.doe@client.example", "Jane Doe"


@pytest.mark.parametrize(("password", "reason"), [
    ("short", "at least 8"),
    ("x" * 129, "at most 128"),
    ("password1", "too common"),
    ("Password1", "too common"),
    ("qwertyuiop", "too common"),
    ("my-jane.doe-secret", "name or email"),
    ("JaneDoeRocks2024", "name or email"),
    ("xx-DOE-xx-quartz", "name or email"),
])
def test_refused_passwords_say_why(password: str, reason: str) -> None:
    problems = password_problems(password, email=EMAIL, name=NAME)
    assert problems and reason in problems[0]


@pytest.mark.parametrize("password", ["Sturdy-Lantern-42", "correct horse battery staple", "ünïcödé-wörds", "x" * 128])
def test_accepted_passwords(password: str) -> None:
    assert password_problems(password, email=EMAIL, name=NAME) == []


def test_length_counts_after_nfkc() -> None:
    # U+FB03 "ﬃ" is one code point that NFKC turns into three: 6 typed characters count as 8.
    assert password_problems("ﬃﬃ-q7z", email=EMAIL, name=NAME) == []
    assert password_problems("ﬃ-q7z", email=EMAIL, name=NAME) != []


def test_common_list_is_shipped_and_large() -> None:
    common = common_passwords()
    assert len(common) >= 10_000
    assert {"123456", "password", "qwerty"} <= common


async def test_hash_is_argon2id_with_owasp_parameters_and_verifies_nfkc_equivalents() -> None:
    hasher = PasswordHasher(2)
    try:
        stored = await hasher.hash("ﬃ-lantern-42")
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert await hasher.verify(stored, "ffi-lantern-42")
        assert not await hasher.verify(stored, "ffi-lantern-43")
        assert not await hasher.verify(None, "anything")
        assert not hasher.needs_rehash(stored)
    finally:
        hasher.close()


async def test_weaker_old_hashes_need_rehash() -> None:
    old = argon2.PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("Sturdy-Lantern-42")
    hasher = PasswordHasher(1, **OWASP_PARAMETERS)
    try:
        assert await hasher.verify(old, "Sturdy-Lantern-42")
        assert hasher.needs_rehash(old)
        assert hasher.needs_rehash("not a hash")
    finally:
        hasher.close()


async def test_hashing_runs_off_the_event_loop_with_a_cap() -> None:
    hasher = PasswordHasher(2)
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        await asyncio.gather(*(hasher.hash(f"pw-{i}-lantern") for i in range(4)))
        elapsed = time.perf_counter() - started
        task.cancel()
        assert ticks >= elapsed / 0.005 / 4, "the loop stalled while hashing"
        assert hasher._slots._value == 2  # every slot released
    finally:
        hasher.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux-only")
async def test_hashing_threads_only_take_cpu_nothing_else_wants() -> None:
    """A sign-in flood must not starve the event loop: hashing threads run under SCHED_IDLE, the loop does not."""
    hasher = PasswordHasher(2)
    try:
        policies = await asyncio.get_running_loop().run_in_executor(
            hasher._executor, lambda: os.sched_getscheduler(0))
        assert policies == os.SCHED_IDLE
        assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the loop's thread keeps its normal policy
    finally:
        hasher.close()
