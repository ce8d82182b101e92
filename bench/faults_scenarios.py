"""The fault scenarios of `make faults` (all but schemathesis): each returns its figures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from typing import Any

import aiohttp
import pyotp
from notifier_service.config import DispatchSettings
from portal_shared import broker
from portal_shared.events import (
    Envelope,
    PasswordChanged,
    TotpEnabled,
    TwoFactorEnabled,
    UserUpdated,
    encode,
)

from bench.faults_stack import FaultStack, wait_until
from bench.report import Figure
from tests.support.portal_client import Mailbox, Portal, link_token, unique_email
from tests.support.stack import DEMO_PASSWORD

PASSWORD = "a fresh and long passphrase 7"


def in_flight_bound() -> int:
    defaults = DispatchSettings()
    workers = int(os.environ.get("NOTIFIER_WORKERS", defaults.workers))
    batch = int(os.environ.get("NOTIFIER_BATCH_SIZE", defaults.batch_size))
    return workers * batch


async def _users(fs: FaultStack) -> list[str]:
    ok = await wait_until(lambda: _has_users(fs), within=30)
    if not ok:
        raise RuntimeError("the notifier's user projection stayed empty (no profile.user_created consumed)")
    return await fs.notifier_user_ids(10)


async def _has_users(fs: FaultStack) -> bool:
    return bool(await fs.notifier_user_ids(1))


def _password_changed(users: list[str]) -> Any:
    return lambda n: PasswordChanged(user_id=users[n % len(users)], method="change")


def _loss_figures(prefix: str, fs: FaultStack, ids: list[str], *, dup_goal: str = "<= 0", note: str = "",
                  took: float | None = None) -> list[Figure]:
    assert fs.mail is not None
    lost, duplicates = fs.mail.outcome(ids)
    wait_note = f"{len(ids)} events; all emails in {took:.1f} s" if took is not None else \
        f"{len(ids)} events; not all emails arrived in time"
    return [Figure(f"{prefix}: events lost", lost, "<= 0", note=f"{wait_note}{'; ' + note if note else ''}"),
            Figure(f"{prefix}: duplicate emails", duplicates, dup_goal)]


# 1 ----------------------------------------------------------------------------------------------------
async def rabbitmq_restarts(fs: FaultStack, events: int = 1000, restarts: int = 3) -> list[Figure]:
    """RabbitMQ stopped and started `restarts` times while 1,000 password-change events are committed."""
    assert fs.stack.rabbitmq is not None and fs.mail is not None
    users = await _users(fs)
    ids: list[str] = []
    # 1,000 events in transactions of 10, 0.35 s apart: a ~35 s burst that spans the restarts.
    writer = asyncio.create_task(fs.write_stream("profile", _password_changed(users), events, per_tx=10,
                                                 pause=0.35, out=ids))
    unsent_peak = 0
    outages = []
    for _ in range(restarts):
        await asyncio.sleep(2.0)
        t0 = time.monotonic()
        await asyncio.to_thread(fs.stack.rabbitmq.stop)
        await asyncio.sleep(1.5)
        unsent_peak = max(unsent_peak, await fs.unsent("profile"))
        await asyncio.to_thread(fs.stack.rabbitmq.start)
        outages.append(time.monotonic() - t0)
    await writer
    took = await fs.mail.wait_all(ids, within=150)
    await asyncio.sleep(2.0)  # a late duplicate lands by now
    note = (f"{restarts} restarts, broker down {', '.join(f'{o:.0f}' for o in outages)} s; "
            f"up to {unsent_peak} outbox rows unsent during an outage")
    return _loss_figures("rabbitmq restarted 3x during 1,000 events", fs, ids, note=note, took=took)


# 2 ----------------------------------------------------------------------------------------------------
async def _kill_mid_stream(fs: FaultStack, service: str, writer_service: str, make: Any, total: int,
                           kill_after: int, *, wait_emails_first: bool) -> tuple[list[str], float | None, str]:
    assert fs.mail is not None
    ids: list[str] = []
    writer = asyncio.create_task(fs.write_stream(writer_service, make, total, per_tx=20, pause=0.05, out=ids))

    async def far_enough() -> bool:
        if wait_emails_first:
            return fs.mail is not None and fs.mail.arrived(list(ids)) >= kill_after
        return len(ids) >= kill_after

    if not await wait_until(far_enough, within=60, interval=0.05):
        writer.cancel()
        raise RuntimeError(f"the stream never reached {kill_after} before the kill")
    child = fs.child(f"{service} service")
    if not wait_emails_first:
        # A relay catches up within milliseconds: commit a 400-row burst and kill while it is being published.
        ids.extend(e.id for e in await fs.write(writer_service, [make(n) for n in range(400)]))
        await asyncio.sleep(0.03)
    unsent = await fs.unsent(writer_service)
    emailed = fs.mail.arrived(list(ids))
    await asyncio.to_thread(child.kill)
    note = f"SIGKILL after {len(ids)} written, {emailed} emailed, {unsent} unpublished"
    fs.respawn_service(service)
    ready = await fs.wait_ready(service)
    await writer
    took = await fs.mail.wait_all(ids, within=120)
    await asyncio.sleep(2.0)
    return ids, took, f"{note}; ready again {ready:.1f} s after respawn"


async def kills(fs: FaultStack) -> list[Figure]:
    """The notifier, then each relay (profile and mfa processes), SIGKILLed mid-stream and respawned."""
    users = await _users(fs)
    bound = in_flight_bound()
    figures: list[Figure] = []
    duplicates_before = fs.metric("notifier", "portal_events_duplicates_total")
    ids, took, note = await _kill_mid_stream(fs, "notifier", "profile", _password_changed(users), 800, 150,
                                             wait_emails_first=True)
    figures += _loss_figures("notifier SIGKILL mid-stream", fs, ids, dup_goal=f"<= {bound}", took=took,
                             note=f"{note}; bound = workers x batch = {bound}")
    for service, make in (("profile", _password_changed(users)),
                          ("mfa", lambda n: TotpEnabled(user_id=users[n % len(users)]))):
        before = fs.metric("notifier", "portal_events_duplicates_total")
        ids, took, note = await _kill_mid_stream(fs, service, service, make, 1500, 400, wait_emails_first=False)
        redelivered = fs.metric("notifier", "portal_events_duplicates_total") - before
        figures += _loss_figures(f"{service} relay SIGKILL mid-stream", fs, ids, dup_goal=f"<= {bound}", took=took,
                                 note=f"{note}; {redelivered:.0f} republished events skipped by the inbox")
    del duplicates_before
    return figures


# 3 ----------------------------------------------------------------------------------------------------
async def smtp_outage(fs: FaultStack, events: int = 500, down_seconds: float = 60.0) -> list[Figure]:
    """The mail sink stopped for 60 s while 500 events are committed; then started on the same port."""
    assert fs.mail is not None
    users = await _users(fs)
    sink = fs.child("mail sink")
    await asyncio.to_thread(sink.stop)
    down_at = time.monotonic()
    ids: list[str] = []
    await fs.write_stream("profile", _password_changed(users), events, per_tx=25, pause=0.5, out=ids)
    await asyncio.sleep(max(0.0, down_at + down_seconds - time.monotonic()))
    during = fs.mail.arrived(ids)
    queued = await fs.pools["notifier"].fetchval(
        "SELECT count(*) FROM email_jobs WHERE id = ANY($1::text[]) AND status = 'queued'", ids)
    fs.respawn_mail_sink()
    await fs.wait_port(fs.ports.smtp)
    up_at = time.monotonic()
    took = await fs.mail.wait_all(ids, within=150)
    await asyncio.sleep(1.0)
    drained = took if took is not None else time.monotonic() - up_at
    note = f"SMTP down {up_at - down_at:.0f} s; {queued} jobs queued, {during} emails during the outage"
    return [*_loss_figures("smtp down 60 s during 500 events", fs, ids, took=took, note=note),
            Figure("smtp down 60 s: backlog drained after recovery", round(drained, 1), "<= 30", "s")]


# 4 ----------------------------------------------------------------------------------------------------
async def _probe(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[str, bool]:
    try:
        async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=10), **kw) as response:
            body = await response.read()
            ok = response.status == 503 and response.content_type == "application/problem+json" and b'"status"' in body
            return f"{response.status} {response.content_type}", ok
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"{type(exc).__name__}", False


async def postgres_restart(fs: FaultStack, outage_seconds: float = 6.0) -> list[Figure]:
    """Postgres stopped and started while requests arrive: 503 problem+json meanwhile, recovery, no loss."""
    assert fs.stack.postgres is not None and fs.mail is not None
    users = await _users(fs)
    portal = Portal(fs.stack.base_url)
    await portal.login("demo@client.example", DEMO_PASSWORD)
    pids = {c.name: c.process.pid for c in fs.stack.children if c.name.endswith("service")}
    ids = [e.id for e in await fs.write("profile", [_password_changed(users)(n) for n in range(200)])]
    ids += [e.id for e in await fs.write("mfa", [TotpEnabled(user_id=users[n % len(users)]) for n in range(100)])]
    outcomes: dict[str, int] = {}
    bad: dict[str, int] = {}
    stopping = asyncio.Event()

    async def prober() -> None:
        async with aiohttp.ClientSession() as anonymous:
            while not stopping.is_set():
                base = fs.stack.base_url
                for label, ok in await asyncio.gather(
                        _probe(portal.session, "GET", base + "/api/profile"),
                        _probe(anonymous, "POST", base + "/api/auth/login",
                               json={"email": "demo@client.example", "password": "wrong password 1"},
                               headers={"Origin": base}),
                        _probe(portal.session, "GET", base + "/api/mfa"),
                        _probe(portal.session, "GET", base + "/api/auth/sessions")):
                    outcomes[label] = outcomes.get(label, 0) + 1
                    if not ok:
                        bad[label] = bad.get(label, 0) + 1
                await asyncio.sleep(0.1)

    await asyncio.to_thread(fs.stack.postgres.stop)
    down_at = time.monotonic()
    task = asyncio.create_task(prober())
    await asyncio.sleep(outage_seconds)
    stopping.set()
    with contextlib.suppress(Exception):
        await task
    await asyncio.to_thread(fs.stack.postgres.start)
    up_at = time.monotonic()

    async def profile_ok() -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            status, _ = await portal.get("/api/profile")
            return status == 200
        return False

    recovered = await wait_until(profile_ok, within=60, interval=0.2)
    recovery = time.monotonic() - up_at if recovered else float("inf")
    # New events after the outage, through the API: a password change of a fresh session? Use the outbox.
    ids += [e.id for e in await fs.write("profile", [_password_changed(users)(n) for n in range(50)])]
    took = await fs.mail.wait_all(ids, within=90)
    await portal.close()
    restarted = [name for name, pid in pids.items()
                 if fs.child(name).process.pid != pid or not fs.child(name).running()]
    total = sum(outcomes.values())
    note = f"postgres down {up_at - down_at:.0f} s; {total} requests: " + ", ".join(
        f"{k} x{v}" for k, v in sorted(outcomes.items()))
    return [
        Figure("postgres down: requests answered", total, ">= 10", note=note[:400]),
        Figure("postgres down: answers not 503 problem+json", sum(bad.values()), "<= 0",
               note=", ".join(f"{k} x{v}" for k, v in bad.items())),
        Figure("postgres restart: services recovered without restart", len(restarted), "<= 0",
               note=f"GET /api/profile 200 again {recovery:.1f} s after postgres was up; restarted: {restarted}"),
        *_loss_figures("postgres restart", fs, ids, took=took),
    ]


# 5 ----------------------------------------------------------------------------------------------------
DLQS = ("notifier.dead-letter", "mfa.dead-letter", "profile.dead-letter")


async def poison(fs: FaultStack) -> list[Figure]:
    """Malformed and poison messages on portal.events: dead-lettered; a normal event after them still flows."""
    users = await _users(fs)
    before = await fs.queue_depths(*DLQS)
    retried_before = {s: fs.metric(s, "portal_events_retried_total") for s in ("notifier", "mfa")}
    consumed_before = {s: fs.metric(s, "portal_events_consumed_total") for s in ("notifier", "mfa", "profile")}

    def envelope(event: Any) -> tuple[str, bytes, str]:
        wrapped = Envelope.wrap(event, source="faults")
        return wrapped.type, encode(wrapped), wrapped.id

    nul = "poison\u0000" + uuid.uuid4().hex[:6]  # Postgres text cannot hold NUL: the handler fails every time
    messages = [
        ("profile.password_changed", b"not json {", str(uuid.uuid4())),         # notifier
        ("profile.user_created", b'{"type": 5}', str(uuid.uuid4())),            # mfa + notifier
        ("mfa.two_factor_enabled", b"[]", str(uuid.uuid4())),                   # profile + notifier
        ("profile.user_updated", b'{"type":"profile.user_updated","version":99,"data":{}}', str(uuid.uuid4())),
        envelope(PasswordChanged(user_id=nul, method="change")),                # notifier: retried, then dead
        envelope(UserUpdated(user_id=nul, email="p@client.example", name="P")),  # mfa + notifier: retried
        envelope(TwoFactorEnabled(user_id="not-a-uuid", method="totp")),        # profile: permanent
    ]
    # Expected dead letters per queue: notifier all but the last (a two_factor_enabled for an unknown user is a
    # valid email job to it); mfa the user_created/user_updated ones; profile the two on mfa.two_factor_enabled.
    expected = {"notifier.dead-letter": 6, "mfa.dead-letter": 3, "profile.dead-letter": 2}
    started = time.monotonic()
    await fs.publish_raw(messages)

    async def all_dead() -> bool:
        now = await fs.queue_depths(*DLQS)
        return all(now[q] - before[q] >= n for q, n in expected.items())

    dead_in_time = await wait_until(all_dead, within=90, interval=0.5)
    dead_after = time.monotonic() - started
    after = await fs.queue_depths(*DLQS)
    retried = {s: fs.metric(s, "portal_events_retried_total") - retried_before[s] for s in retried_before}
    # Normal events after them: an email (notifier) and the projections of mfa and profile move on.
    normal = await fs.write("profile", [PasswordChanged(user_id=users[0], method="change")])
    await fs.publish_raw([envelope(UserUpdated(user_id=users[0], email=f"{users[0][:8]}@client.example",
                                               name="Still Flowing")),
                          envelope(TwoFactorEnabled(user_id=str(uuid.uuid4()), method="totp"))])
    assert fs.mail is not None
    took = await fs.mail.wait_all([e.id for e in normal], within=30)

    async def consumed() -> bool:
        return all(fs.metric(s, "portal_events_consumed_total") > consumed_before[s] for s in consumed_before)

    flowing = await wait_until(consumed, within=30, interval=0.5)
    figures = []
    for queue, n in expected.items():
        got = after[queue] - before[queue]
        figures.append(Figure(f"poison/malformed: dead-lettered in {queue}", got, f">= {n}",
                              note=f"expected {n}" + (f"; all dead within {dead_after:.0f} s" if dead_in_time else
                                                      "; not all dead-lettered within 90 s")))
    limit = broker.DEFAULT_DELIVERY_LIMIT
    # Two poison events reach the notifier, one reaches mfa: deliveries per event = 1 + its retries.
    figures.append(Figure("poison: deliveries of a failing event before dead-letter", 1 + retried["notifier"] / 2,
                          f"<= {limit}", note=f"notifier retried {retried['notifier']:.0f}x, mfa "
                                              f"{retried['mfa']:.0f}x (x-delivery-limit {limit})"))
    figures.append(Figure("poison: consumers keep going (normal events handled after)",
                          int(took is not None) + int(flowing), ">= 2",
                          note="email delivered" if took is not None else "the normal event's email did not arrive"))
    return figures


# 6 ----------------------------------------------------------------------------------------------------
async def _invited_user(fs: FaultStack, admin: Portal, client_id: str) -> str:
    mailbox = Mailbox(fs.stack.mail_dir)
    address = unique_email("faults")
    status, user = await admin.post("/api/admin/users", {"email": address, "name": "Fault Tester",
                                                           "client_id": client_id, "title": "CFO"})
    if status != 201:
        raise RuntimeError(f"creating a user: {status} {user}")
    [invite] = await mailbox.wait_for(address, "profile.user_invited", timeout=30)
    anonymous = Portal(fs.stack.base_url)
    try:
        status, body = await anonymous.post("/api/auth/invitation/accept", {
            "token": link_token(invite, "accept-invite"), "new_password": PASSWORD, "confirm_password": PASSWORD})
        if status != 204:
            raise RuntimeError(f"accepting the invitation: {status} {body}")
    finally:
        await anonymous.close()
    return address


async def _with_totp(fs: FaultStack, address: str) -> tuple[pyotp.TOTP, list[str]]:
    user = Portal(fs.stack.base_url)
    try:
        await user.login(address, PASSWORD)
        status, setup = await user.post("/api/mfa/totp/setup")
        assert status == 200, setup
        totp = pyotp.TOTP(setup["secret"])
        status, verified = await user.post("/api/mfa/totp/verify", {"code": totp.now()})
        assert status == 200, verified
        return totp, verified["recovery_codes"]
    finally:
        await user.close()


def _wrong_codes(totp: pyotp.TOTP, count: int) -> list[str]:
    now = time.time()
    valid = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    codes, n = [], 0
    while len(codes) < count:
        code = f"{(int(totp.at(now)) + 1000 * (n + 1) + 7) % 1_000_000:06d}"
        n += 1
        if code not in valid:
            codes.append(code)
    return codes


async def guessing(fs: FaultStack, guesses: int = 50, uses: int = 20) -> list[Figure]:
    from profile_service import sessions, throttle

    admin = Portal(fs.stack.base_url)
    try:
        await admin.login("admin@msp.example", DEMO_PASSWORD)
        status, client = await admin.post("/api/admin/clients", {"name": f"Faults {uuid.uuid4().hex[:8]}"})
        assert status == 201, client
        guessed, recovering = [await _invited_user(fs, admin, client["id"]) for _ in range(2)]
    finally:
        await admin.close()
    totp, _ = await _with_totp(fs, guessed)
    _, codes = await _with_totp(fs, recovering)
    policy = min(sessions.SECOND_FACTOR_ATTEMPTS, throttle.THRESHOLD)

    # 50 wrong codes at once on one pending sign-in; mfa's /internal/verify/totp counts the evaluations.
    route = {"route": "/internal/verify/totp"}
    evaluated_before = fs.metric("mfa", "portal_http_requests_total", **route)
    attacker = Portal(fs.stack.base_url)
    try:
        first = await attacker.login(guessed, PASSWORD)
        assert first["state"] == "second_factor_required", first
        results = await asyncio.gather(*(attacker.post("/api/auth/login/totp", {"code": c})
                                         for c in _wrong_codes(totp, guesses)))
        statuses: dict[int, int] = {}
        for status, _ in results:
            statuses[status] = statuses.get(status, 0) + 1
        await asyncio.sleep(0.5)
        evaluated = fs.metric("mfa", "portal_http_requests_total", **route) - evaluated_before
        # The right code now, on the same pending sign-in: it must be refused (sign-in void or account locked).
        status_right, _ = await attacker.post("/api/auth/login/totp", {"code": totp.now()})
    finally:
        await attacker.close()
    locked = await fs.pools["profile"].fetchval(
        "SELECT coalesce(locked_until > now(), false) FROM users WHERE email = $1", guessed)

    # 20 pending sign-ins of one account use the same recovery code at once: exactly one may succeed.
    clients = [Portal(fs.stack.base_url) for _ in range(uses)]
    try:
        for client_ in clients:
            state = await client_.login(recovering, PASSWORD)
            assert state["state"] == "second_factor_required", state
        outcomes = await asyncio.gather(*(c.post("/api/auth/login/recovery-code", {"code": codes[0]})
                                          for c in clients))
    finally:
        for client_ in clients:
            await client_.close()
    successes = sum(1 for status, _ in outcomes if status == 200)
    others = sorted({status for status, _ in outcomes if status != 200})
    return [
        Figure(f"{guesses} parallel wrong TOTP codes: codes evaluated", evaluated, f"<= {policy}",
               note=f"answers {statuses}; policy {sessions.SECOND_FACTOR_ATTEMPTS} per pending sign-in, "
                    f"account lock after {throttle.THRESHOLD}"),
        Figure("after the guesses the right TOTP code is refused", int(status_right != 200), ">= 1",
               note=f"answer {status_right}; account locked: {locked}"),
        Figure(f"one recovery code used {uses}x at once: successes", successes, "<= 1", note=f"others: {others}"),
        Figure(f"one recovery code used {uses}x at once: the rightful use succeeds", successes, ">= 1"),
    ]
