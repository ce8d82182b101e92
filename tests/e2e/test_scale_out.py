"""Scale-out on one machine: two replicas of every service on one Postgres and one RabbitMQ, nginx balancing.

A burst of fresh users goes through nginx (invitation, sign-in, profile update, password change, TOTP
enrolment, sign-in with TOTP, reset request). Then: every email each user should get arrived exactly once
(Message-IDs counted in the sink's directory), every outbox row of profile and mfa was published once and
reached the notifier's inbox, and both replicas of each service did part of the work (nginx's access log,
each replica's /metrics).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import pyotp
import pytest
from portal_shared.events import ALL_EVENTS, UserCreated, UserUpdated

from tests.support.portal_client import Mailbox, Portal, link_token, unique_email
from tests.support.stack import DEMO_PASSWORD, throwaway_stack

pytestmark = pytest.mark.slow

USERS = 20
REPLICAS = 2
FIRST_PASSWORD = "a first and long passphrase 1"
SECOND_PASSWORD = "a second and long passphrase 2"
# The emails each user's flow causes, one of each (the second sign-in, from a browser without the first
# one's device cookie, is a new device; the first, right after the invitation, is expected and quiet).
EXPECTED_EMAILS = ("profile.user_invited", "profile.password_changed", "mfa.two_factor_enabled",
                   "profile.new_device_sign_in", "profile.password_reset_requested")
SETTLE_TIMEOUT = 45.0
# Every event but the two that only feed the notifier's user projection asks for an email.
EMAIL_TYPES = frozenset(cls.type for cls in ALL_EVENTS if cls not in (UserCreated, UserUpdated))


@pytest.fixture(scope="module")
def scaled_stack() -> Iterator[Any]:
    stack = throwaway_stack()
    stack.replicas = REPLICAS
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert [line for line in ps.splitlines() if str(stack.var) in line] == [], "stop() left replicas running"


# ---- what the servers say ------------------------------------------------------------------------------------

def metric_total(port: int, name: str, **labels: str) -> float:
    """The sum of a counter's samples on one replica's /metrics, optionally filtered by label values."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        if all(re.fullmatch(pattern, found.get(key, "")) for key, pattern in labels.items()):
            total += float(match.group(2))
    return total


def upstream_hits(access_log: Any) -> Counter[tuple[str, int]]:
    """(first path segment after /api, upstream port) -> requests, from nginx's JSON access log."""
    hits: Counter[tuple[str, int]] = Counter()
    for line in access_log.read_text().splitlines():
        entry = json.loads(line)
        match = re.match(r"^/api/(\w+)", entry["path"])
        if match and entry["upstream_addr"]:
            for address in entry["upstream_addr"].split(", "):
                hits[match.group(1), int(address.rsplit(":", 1)[1])] += 1
    return hits


async def database_state(conn: asyncpg.Connection) -> dict[str, Any]:
    outbox = [dict(r) for r in await conn.fetch(
        "SELECT 'profile' AS service, id::text, type, published_at FROM profile.outbox "
        "UNION ALL SELECT 'mfa', id::text, type, published_at FROM mfa.outbox")]
    inbox = {r["message_id"] for r in await conn.fetch(
        "SELECT message_id FROM notifier.inbox WHERE consumer = 'notifier'")}
    jobs = dict(await conn.fetch("SELECT status, count(*) FROM notifier.email_jobs GROUP BY status"))
    return {"outbox": outbox, "inbox": inbox, "jobs": jobs}


def message_ids(mailbox: Mailbox) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in mailbox.all())


# ---- one user's burst of security events ---------------------------------------------------------------------

async def user_flow(base_url: str, mailbox: Mailbox, address: str) -> None:
    [invite] = await mailbox.wait_for(address, "profile.user_invited", timeout=SETTLE_TIMEOUT)
    user = Portal(base_url)
    try:
        status, body = await user.post("/api/auth/invitation/accept", {
            "token": link_token(invite, "accept-invite"), "new_password": FIRST_PASSWORD,
            "confirm_password": FIRST_PASSWORD})
        assert status == 204, body
        assert (await user.login(address, FIRST_PASSWORD))["state"] == "signed_in"

        name = "Scaled Example"
        status, body = await user.patch("/api/profile", {"name": name})
        assert status == 200, body
        for _ in range(2):  # read back, whichever replica answers
            status, body = await user.get("/api/profile")
            assert status == 200 and body["name"] == name, body

        status, body = await user.post("/api/profile/password", {
            "current_password": FIRST_PASSWORD, "new_password": SECOND_PASSWORD,
            "confirm_password": SECOND_PASSWORD})
        assert status == 204, body

        # Setup and verify are two requests, likely on different mfa replicas: the pending secret is shared.
        status, setup = await user.post("/api/mfa/totp/setup")
        assert status == 200, setup
        totp = pyotp.TOTP(setup["secret"])
        status, verified = await user.post("/api/mfa/totp/verify", {"code": totp.now()})
        assert status == 200, verified
        status, mfa = await user.get("/api/mfa")
        assert status == 200 and mfa["two_factor_enabled"], mfa
        assert (await user.post("/api/auth/logout"))[0] == 204
    finally:
        await user.close()

    again = Portal(base_url)
    try:
        assert (await again.login(address, SECOND_PASSWORD))["state"] == "second_factor_required"
        # The enrolment used this step's code (a code counts once): sign in with the next step's.
        status, body = await again.post("/api/auth/login/totp", {"code": totp.at(time.time() + 30)})
        assert status == 200 and body["state"] == "signed_in", body
        status, body = await again.get("/api/mfa")
        assert status == 200, body
    finally:
        await again.close()

    anonymous = Portal(base_url)
    try:
        status, _ = await anonymous.post("/api/auth/password-reset", {"email": address})
        assert status == 202
    finally:
        await anonymous.close()


# ---- the test ------------------------------------------------------------------------------------------------

async def test_two_replicas_of_each_service_share_a_burst_without_duplicates_or_losses(
        scaled_stack: Any) -> None:
    stack = scaled_stack
    mailbox = Mailbox(stack.mail_dir)
    ports = {name: stack.service_ports(name) for name in ("profile", "mfa", "notifier")}
    assert all(len(p) == REPLICAS and len(set(p)) == REPLICAS for p in ports.values()), ports
    started = time.monotonic()

    # An MSP admin invites the users, several requests at once.
    admin = Portal(stack.base_url)
    try:
        await admin.login("admin@msp.example", DEMO_PASSWORD)
        status, client = await admin.post("/api/admin/clients", {"name": "Scale-out Client Ltd"})
        assert status == 201, client
        addresses = [unique_email("scale") for _ in range(USERS)]

        async def invite(address: str) -> None:
            status, user = await admin.post("/api/admin/users", {
                "email": address, "name": "Scale Example", "client_id": client["id"], "title": "Tester"})
            assert status == 201, user

        await asyncio.gather(*(invite(a) for a in addresses))
    finally:
        await admin.close()

    # Every user's flow at once.
    await asyncio.gather(*(user_flow(stack.base_url, mailbox, a) for a in addresses))
    burst_seconds = time.monotonic() - started

    # Wait until everything settles: outbox drained, notifier inbox caught up, no queued email job.
    conn = await asyncpg.connect(stack.postgres.admin_dsn.rsplit("/", 1)[0] + "/portal")
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            state = await database_state(conn)
            unsent = [r for r in state["outbox"] if r["published_at"] is None]
            missing = {r["id"] for r in state["outbox"]} - state["inbox"]
            queued = state["jobs"].get("queued", 0)
            if not unsent and not missing and not queued:
                break
            assert time.monotonic() < deadline, (
                f"not settled after {SETTLE_TIMEOUT}s: {len(unsent)} unsent outbox rows, {len(missing)} events "
                f"not in the notifier's inbox, {queued} queued email jobs")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a late duplicate, if any, would land now
        state = await database_state(conn)
    finally:
        await conn.close()
    settle_seconds = time.monotonic() - started - burst_seconds

    # --- no lost event, no duplicate effect ---
    emails = mailbox.all()
    counted = message_ids(mailbox)
    duplicated = {mid: n for mid, n in counted.items() if n > 1}
    assert not duplicated, f"emails sent more than once: {duplicated}"
    for address in addresses:
        got = Counter(str(m["X-Portal-Event"]) for m in emails if address in str(m["To"]).lower())
        assert got == Counter(EXPECTED_EMAILS), (address, got)

    email_rows = {r["id"]: r["type"] for r in state["outbox"] if r["type"] in EMAIL_TYPES}
    assert set(counted) == {f"<{event_id}@portal>" for event_id in email_rows}, \
        "every email-causing outbox row gave exactly one email, and every email came from one"
    assert state["jobs"] == {"sent": len(email_rows)}, state["jobs"]
    assert all(r["published_at"] is not None for r in state["outbox"])
    assert {r["id"] for r in state["outbox"]} <= state["inbox"]

    # --- both replicas did part of the work ---
    hits = upstream_hits(stack.nginx.access_log_path)
    for service, segments in (("profile", ("auth", "profile", "admin")), ("mfa", ("mfa",))):
        assert {port for (seg, port) in hits if seg in segments} == set(ports[service]), (service, hits)
        served = [sum(hits[seg, port] for seg in segments) for port in ports[service]]
        assert min(served) >= sum(served) / (4 * REPLICAS), f"nginx did not balance {service}: {served}"

    api_requests = {name: [metric_total(p, "portal_http_requests_total", route="/api/.*") for p in ports[name]]
                    for name in ("profile", "mfa")}
    published = {name: [metric_total(p, "portal_outbox_published_total") for p in ports[name]]
                 for name in ("profile", "mfa")}
    consumed = [metric_total(p, "portal_events_consumed_total") for p in ports["notifier"]]
    duplicates = [metric_total(p, "portal_events_duplicates_total") for p in ports["notifier"]]
    sent = [metric_total(p, "portal_notifier_emails_sent_total") for p in ports["notifier"]]
    figures = {
        "users": USERS, "burst_s": round(burst_seconds, 1), "settle_s": round(settle_seconds, 1),
        "emails": len(emails), "outbox_rows": dict(Counter(r["service"] for r in state["outbox"])),
        "nginx_upstream_hits": {f"{seg}@{port}": n for (seg, port), n in sorted(hits.items())},
        "api_requests": api_requests, "published": published, "consumed": consumed,
        "duplicates_skipped": duplicates, "emails_sent": sent,
    }
    print(f"\n[scale-out] {json.dumps(figures)}")

    for name in ("profile", "mfa"):
        assert all(api_requests[name]), f"each {name} replica served API requests: {api_requests[name]}"
        assert all(published[name]), f"each {name} relay published: {published[name]}"
        rows = sum(r["service"] == name for r in state["outbox"])
        assert sum(published[name]) == rows, f"{name}: {published[name]} publishes for {rows} outbox rows"
    assert all(consumed) and sum(consumed) == len(state["inbox"]), (consumed, len(state["inbox"]))
    assert all(sent) and sum(sent) == len(emails), (sent, len(emails))

