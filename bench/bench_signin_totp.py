"""What the second step costs (issue #17 item 9): full sign-ins with TOTP/s ÷ password sign-ins/s, one stack.

    PYTHONPATH=. uv run python -m bench.bench_signin_totp

On one throwaway stack (Postgres, RabbitMQ, the three services as processes, nginx — all on loopback), two
populations of client users with the same password: one without two-factor, one with an authenticator app
(secrets sealed exactly as mfa seals them, the sign-in latch up). A password sign-in is POST /api/auth/login;
a full sign-in with TOTP is that POST (answered `second_factor_required`) then POST /api/auth/login/totp with
a fresh valid code, on the pending session's cookies. Both go through nginx from many client addresses
(bench_http.SignInLoad's spread, so no per-IP limit is hit), at the same concurrency, in interleaved rounds
so drift on the machine hits both alike; the figure is the median of the per-round ratios.

Both rates are bounded by argon2id (profile's thread-pool cap), so the ratio is what the second step's
extra work — profile's two requests, mfa's check and the replay-guard write, Postgres — takes from
the machine. Goal: ≥ 0.8. Measured twice, with new populations each time: every sign-in from a new
device (no cookies kept: each emails its new-device notice, work both kinds share), and from known
devices (each browser keeps the device cookie of its user's previous sign-in, after one enrolling
sign-in per user: no notice, so the second step's share is larger). Before each measurement the stack's
queued work drains (the enrolling sign-ins' emails), so no round pays for work of another phase.

The new-device populations sign each user in once: each of those sign-ins asks mfa for the account's factor
list (as the first sign-in after any change of its factors does); from known devices the list kept since
the enrolling sign-in is offered (second_factors.offered).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.support` when run as a file

from bench.bench_http import (
    SIGNIN_CONCURRENCY,
    SIGNIN_SECONDS,
    SOURCE_ADDRESSES,
    USER_PASSWORD,
    SignInLoad,
    create_users,
    device_header,
    keep_device,
    source_sessions,
)
from bench.bench_totp import Users, seal_secrets
from bench.load import closed_loop
from bench.report import Figure, median, spread, write
from tests.support.stack import throwaway_stack

ROUNDS = 9  # short rounds, many: the median of their ratios is what resists this VM's swings
# Each TOTP user can pass at most two codes per 30 s step (steps now and now + 1, each once), and the
# bench runs a few minutes: enough users that the population never runs dry. The password population is
# as large, so both loads meet each (user, client address) pair as often: every sign-in from a pair not
# seen today emails a new-device notice, and a smaller population would spare the password path that work.
USERS = 3000
GOAL = 0.8


class TotpSignInLoad:
    """Password, then the current code, for users with an authenticator app; counts what each step answered."""

    def __init__(self, gateway: str, emails: list[str], users: Users, *, known_devices: bool = False) -> None:
        self.gateway = gateway
        self.emails = emails
        self.users = users
        self.sessions = source_sessions()
        self.next_session = itertools.cycle(self.sessions)
        self.outcomes: dict[str, int] = {}
        self.devices: dict[str, str] | None = {} if known_devices else None

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def call(self) -> bool:
        i, step = self.users.take()
        email = self.emails[i]
        http = next(self.next_session)
        device = device_header(self.devices, email) or {}
        async with http.post(f"{self.gateway}/api/auth/login", headers=device or None,
                             json={"email": email, "password": USER_PASSWORD}) as r:
            body = await r.json()
            if r.status != 200 or body.get("state") != "second_factor_required":
                self._count(f"login {r.status} {body.get('state')}")
                return False
            session, csrf = r.cookies["portal_session"].value, r.cookies["portal_csrf"].value
        cookies = "; ".join(filter(None, [f"portal_session={session}; portal_csrf={csrf}", device.get("Cookie")]))
        async with http.post(f"{self.gateway}/api/auth/login/totp", headers={"Cookie": cookies, "X-CSRF-Token": csrf},
                             json={"code": self.users.code(i, step)}) as r:
            body = await r.json()
            keep_device(self.devices, email, r)
            ok = r.status == 200 and body.get("state") == "signed_in"
            self._count("signed_in" if ok else f"totp {r.status}")
            return ok

    async def close(self) -> None:
        for s in self.sessions:
            await s.close()


async def with_totp(profile_dsn: str, mfa_dsn: str, encryption_keys: str, count: int) -> tuple[list[str], Users]:
    """`count` client users with an enabled authenticator app and the sign-in latch up."""
    emails = await create_users(profile_dsn, count)
    conn = await asyncpg.connect(profile_dsn, server_settings={"search_path": "profile"})
    try:
        rows = await conn.fetch("UPDATE users SET two_factor_enabled = true, two_factor_changed_at = now() "
                                "WHERE email = ANY($1::text[]) RETURNING id, email", emails)
    finally:
        await conn.close()
    by_email = {r["email"]: str(r["id"]) for r in rows}
    users = Users(count, ids=[by_email[e] for e in emails])
    await seal_secrets(mfa_dsn, encryption_keys, users.ids, users.secrets)
    return emails, users


async def measure(password: SignInLoad, totp: TotpSignInLoad, *, what: str) -> Figure:
    for load in (password.call, totp.call):  # warm-up of both paths
        await closed_loop(load, concurrency=SIGNIN_CONCURRENCY, seconds=3)
    password_rates: list[float] = []
    totp_rates: list[float] = []
    for _ in range(ROUNDS):
        result = await closed_loop(password.call, concurrency=SIGNIN_CONCURRENCY, seconds=SIGNIN_SECONDS)
        password_rates.append((result.requests - result.errors) / result.seconds)
        result = await closed_loop(totp.call, concurrency=SIGNIN_CONCURRENCY, seconds=SIGNIN_SECONDS)
        totp_rates.append((result.requests - result.errors) / result.seconds)
    ratios = [t / p for t, p in zip(totp_rates, password_rates, strict=True)]
    print(f"{what}: sign-ins/s per round: password {[round(r, 1) for r in password_rates]}, "
          f"TOTP {[round(r, 1) for r in totp_rates]}; outcomes {totp.outcomes}", flush=True)
    return Figure(f"Full sign-ins with TOTP/s ÷ password sign-ins/s, {what}", median(ratios), f">= {GOAL}", "×",
                  f"{median(totp_rates):.1f}/s vs {median(password_rates):.1f}/s at {SIGNIN_CONCURRENCY} clients "
                  f"over {SOURCE_ADDRESSES} addresses, distinct users; ratio {spread(ratios)}; "
                  f"TOTP outcomes {totp.outcomes}")


SETTLE_LIMIT_SECONDS = 600
QUEUED_WORK = """
SELECT (SELECT count(*) FROM profile.outbox WHERE published_at IS NULL)
     + (SELECT count(*) FROM notifier.email_jobs WHERE status = 'queued') AS queued,
       (SELECT count(*) FROM notifier.email_jobs) AS jobs
"""


async def settle(portal_dsn: str) -> None:
    """Wait until the stack has no queued work: every event published, every email sent, and no new email
    job for a second. The enrolling sign-ins each queue a new-device email; sending them during the
    measured rounds would take CPU from whichever rounds they fall in."""
    conn = await asyncpg.connect(portal_dsn)
    try:
        last = None
        for _ in range(SETTLE_LIMIT_SECONDS):
            row = await conn.fetchrow(QUEUED_WORK)
            if row["queued"] == 0 and row["jobs"] == last:
                return
            last = row["jobs"] if row["queued"] == 0 else None
            await asyncio.sleep(1)
        raise RuntimeError("the stack's queued work did not drain")
    finally:
        await conn.close()


async def enroll(load: SignInLoad | TotpSignInLoad, users: int) -> None:
    """One sign-in per user (not measured), so that each has a device cookie from then on."""
    result = await closed_loop(load.call, concurrency=SIGNIN_CONCURRENCY, seconds=600, max_requests=users)
    if result.errors:
        raise RuntimeError(f"{result.errors} of the enrolling sign-ins failed")


async def run() -> list[Figure]:
    stack = throwaway_stack()
    await asyncio.to_thread(stack.start)
    try:
        profile_dsn, mfa_dsn = stack.database_urls["profile"], stack.database_urls["mfa"]  # the services' own
        gateway = f"http://127.0.0.1:{stack.ports.gateway}"
        await asyncio.sleep(3)  # let the services settle after start
        figures = []
        # New devices: every sign-in from a browser the account has not seen (each emails its notice);
        # known devices: the browsers keep their device cookies, after one enrolling sign-in per user.
        for known in (False, True):
            password_emails = await create_users(profile_dsn, USERS)
            totp_emails, users = await with_totp(profile_dsn, mfa_dsn, stack.secrets()["MFA_ENCRYPTION_KEYS"],
                                                 USERS)
            password = SignInLoad(gateway, password_emails, known_devices=known)
            totp = TotpSignInLoad(gateway, totp_emails, users, known_devices=known)
            try:
                if known:
                    await enroll(password, USERS)
                    await enroll(totp, USERS)
                    totp.outcomes.clear()
                await settle(stack.postgres.admin_dsn.rsplit("/", 1)[0] + "/portal")
                figures.append(await measure(password, totp, what="from known devices" if known else
                                             "each from a new device"))
            finally:
                await password.close()
                await totp.close()
        return figures
    finally:
        await asyncio.to_thread(stack.stop)


async def main() -> None:
    figures = await run()
    for figure in figures:
        print(figure.line())
    path = write("signin-totp", figures)
    print(f"results in {path}.json and .md")


if __name__ == "__main__":
    asyncio.run(main())
