"""Passwords: argon2id hashing off the event loop with a concurrency cap, and the rules for a new one.

Hashing follows the OWASP Password Storage Cheat Sheet's argon2id minimum (m=19 MiB, t=2, p=1); the
parameters are encoded in each hash (PHC string format), so changing them here re-hashes at the next
sign-in. Rules follow NIST SP 800-63B §5.1.1.2: length only (8..128 after NFKC normalisation, no
composition rules), refusing common passwords and ones made of the user's own email or name.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import os
import secrets
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 128
# Django's list of 20,000 common passwords (BSD licence), lower-cased, shipped gzipped with the package.
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"
OWASP_PARAMETERS = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1, "hash_len": 32, "salt_len": 16}


def _lower_thread_priority() -> None:
    """Executor initializer: run this (hashing) thread under SCHED_IDLE (Linux, per thread), so it gets only
    CPU that nothing else wants: a sign-in flood then uses what the event loop, the database and the gateway
    leave over instead of delaying every other request. Where SCHED_IDLE is missing, nice 19 instead."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread
    except (AttributeError, OSError):
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def normalize(password: str) -> str:
    """NFKC, so the same password typed on different keyboards/IMEs hashes the same (SP 800-63B)."""
    return unicodedata.normalize("NFKC", password)


def _encode(password: str) -> bytes:
    """The normalised password's UTF-8 bytes; a lone surrogate (valid JSON, not UTF-8) is kept, not an error."""
    return normalize(password).encode("utf-8", "surrogatepass")


@functools.cache
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines if line.strip())


def _name_parts(email: str, name: str) -> list[str]:
    local = email.split("@", 1)[0].lower()
    parts = [local, *(p for p in local.replace(".", " ").replace("_", " ").replace("-", " ").split())]
    words = name.lower().split()
    parts += [*words, "".join(words)]
    return sorted({p for p in parts if len(p) >= 3}, key=len, reverse=True)


def password_problems(password: str, *, email: str, name: str) -> list[str]:
    """Why `password` may not be used (empty when it may). Messages are shown to the user."""
    normalized = normalize(password)
    if len(normalized) < MIN_LENGTH:
        return [f"Use at least {MIN_LENGTH} characters."]
    if len(normalized) > MAX_LENGTH:
        return [f"Use at most {MAX_LENGTH} characters."]
    lowered = normalized.lower()
    if lowered in common_passwords():
        return ["This password is too common; choose one that is harder to guess."]
    for part in _name_parts(email, name):
        if part in lowered:
            return ["Do not use your name or email address in your password."]
    return []


class PasswordHasher:
    """argon2id in a thread pool; at most `concurrency` hashes run at once (each needs m of memory).

    The hashing threads run at a lower CPU priority than the event loop, so a flood of sign-ins takes the
    CPU that the loop (and the database and gateway) leave over instead of delaying every other request.
    """

    def __init__(self, concurrency: int, **parameters: int) -> None:
        self._hasher = argon2.PasswordHasher(type=argon2.Type.ID, **(parameters or OWASP_PARAMETERS))
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2",
                                            initializer=_lower_thread_priority)
        self._slots = asyncio.Semaphore(concurrency)
        # Verified when the account is unknown or locked, so those answers take as long as a real check.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def _run(self, fn: functools.partial[object]) -> object:
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def hash(self, password: str) -> str:
        return str(await self._run(functools.partial(self._hasher.hash, _encode(password))))

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Check `password` against `stored_hash`; with no hash, spend the same time and say no."""
        target = stored_hash or self._dummy_hash
        ok = bool(await self._run(functools.partial(self._verify, target, _encode(password))))
        return ok and stored_hash is not None

    def _verify(self, stored_hash: str, password: bytes) -> bool:
        try:
            return bool(self._hasher.verify(stored_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return bool(self._hasher.check_needs_rehash(stored_hash))
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
