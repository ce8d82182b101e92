"""The notifier killed with SIGKILL mid-stream: after a restart no email is lost; duplicates stay bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from portal_devstack.process import free_port
from portal_shared.events import RecoveryCodeUsed, TotpEnabled, UserCreated

from tests.conftest import service_environ

FAST = {"NOTIFIER_RETRY_BASE_SECONDS": "0.2", "NOTIFIER_RETRY_MAX_SECONDS": "1.5", "NOTIFIER_POLL_SECONDS": "0.1",
        "NOTIFIER_LEASE_SECONDS": "3", "SMTP_TIMEOUT_SECONDS": "5"}
WORKERS = 8
EVENTS = 500


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def start_notifier(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "notifier_service", env=env,
                                                       stdout=out, stderr=out)
    url = f"http://127.0.0.1:{env['HTTP_PORT']}/health/ready"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            if process.returncode is not None:
                pytest.fail(f"notifier exited with {process.returncode}: {tail(log)}")
            await asyncio.sleep(0.1)
    pytest.fail(f"notifier never became ready: {tail(log)}")


@pytest.mark.slow
async def test_sigkill_mid_stream_loses_no_email(stack_env, publish, own_sink, db: asyncpg.Connection, until,
                                                 tmp_path: Path) -> None:
    own_sink.handler.delay = 0.02  # a server slow enough that the kill lands mid-stream
    own_sink.start()
    env = {**os.environ, **service_environ(stack_env, "notifier", HTTP_PORT=free_port(), SMTP_PORT=own_sink.port,
                                           NOTIFIER_WORKERS=WORKERS, **FAST)}
    log = tmp_path / "notifier.log"
    process = await start_notifier(env, log)
    try:
        users = [(f"u{n}", f"crash{n}@client.example") for n in range(5)]
        await publish(*(UserCreated(user_id=uid, email=email, name=f"User {n}") for n, (uid, email) in
                        enumerate(users)))
        await until(lambda: db.fetchval("SELECT count(*) = 5 FROM users"))
        events = await publish(*((TotpEnabled(user_id=users[n % 5][0]) if n % 2 else
                                  RecoveryCodeUsed(user_id=users[n % 5][0], remaining=n % 10)) for n in range(EVENTS)))
        await own_sink.wait_for(100, timeout=30)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        at_kill = len(own_sink.messages)
        assert at_kill < EVENTS, "the kill should land mid-stream"

        process = await start_notifier(env, log)
        expected = {f"<{e.id}@portal>" for e in events}

        async def all_arrived() -> bool:
            return {m["Message-ID"] for m in list(own_sink.messages)} == expected

        await until(all_arrived, within=60)  # includes waiting out the leases of the jobs in flight at the kill
        # Every job marked sent: the positive signal that no send is left in flight. A job is sent again only
        # after its lease runs out while it is not marked sent, so once all are, no late duplicate can come.
        await until(lambda: db.fetchval("SELECT count(*) = $1 FROM email_jobs WHERE status = 'sent'", EVENTS))
        seen = Counter(m["Message-ID"] for m in own_sink.messages)
        assert set(seen) == expected, "no email lost, none invented"
        duplicates = sum(seen.values()) - len(seen)
        print(f"\n[crash] {at_kill} emails before the kill, {duplicates} sent twice")
        # Only an email the server accepted but whose "sent" mark the kill prevented may repeat: one per worker.
        assert duplicates <= WORKERS
        assert max(seen.values()) <= 2
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
