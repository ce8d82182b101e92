"""The real stack for the browser tests: `real` (session-wide: one stack, `portal_stack` from
tests/conftest.py, shared by every browser test module) and the ways a test drives it into the state it
needs through the public API, the mail sink and, where no API exists, the stack's database.

Each test creates its own users (an MSP admin invites them through the API; the invitation email is read
from the mail sink's directory and accepted), so tests are independent of each other and of the demo
accounts.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, TypeVar

import asyncpg
import pyotp
import pytest
from playwright.sync_api import Page

from tests.browser.helpers import assert_accessible, screenshot
from tests.support.portal_client import Mailbox, Portal, link_token
from tests.support.soft_authenticator import SoftAuthenticator
from tests.support.stack import DEMO_PASSWORD

PASSWORD = "a fresh and long passphrase 7"
ADMIN = "admin@msp.example"
T = TypeVar("T")


class ApiRunner:
    """Runs the async API client on an event loop of its own thread: Playwright's sync API keeps a
    loop running in the main thread, so asyncio.run() cannot be used there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-loop", daemon=True)
        self.thread.start()

    def run(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class User:
    id: str
    email: str
    name: str
    password: str


@dataclass
class Real:
    """The running stack, its mail sink and a way to call its API."""

    base_url: str
    mailbox: Mailbox
    api: ApiRunner
    stack: Any = None

    def url(self, path: str) -> str:
        return self.base_url + path

    def wait_for_mail(self, to: str, event: str, *, count: int = 1, timeout: float = 20) -> list[EmailMessage]:
        """Polls the sink's directory for the positive signal (the email), never a fixed sleep."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.mailbox.all()
                     if to.lower() in str(m["To"]).lower() and m["X-Portal-Event"] == event]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} email to {to} within {timeout}s")
            time.sleep(0.1)

    # ---------- the API, as a client other than the browser ----------

    def call(self, email: str, password: str, steps: Callable[[Portal], Coroutine[Any, Any, T]]) -> T:
        """Signs in as `email` with a client of its own, runs `steps(client)`, signs out."""

        async def run() -> T:
            client = Portal(self.base_url)
            try:
                await client.login(email, password)
                result = await steps(client)
                await client.post("/api/auth/logout")
                return result
            finally:
                await client.close()

        return self.api.run(run)

    def as_admin(self, steps: Callable[[Portal], Coroutine[Any, Any, T]]) -> T:
        return self.call(ADMIN, DEMO_PASSWORD, steps)

    def client_named(self, name: str) -> dict[str, Any]:
        """The client (company) of that name, created when there is none yet."""

        async def find_or_create(admin: Portal) -> dict[str, Any]:
            status, clients = await admin.get("/api/admin/clients")
            assert status == 200, clients
            for client in clients:
                if client["name"] == name:
                    return dict(client)
            status, client = await admin.post("/api/admin/clients", {"name": name})
            assert status == 201, client
            return dict(client)

        return self.as_admin(find_or_create)

    def invite(self, label: str, *, name: str | None = None, client_id: str | None = None,
               domain: str = "client.example", **fields: Any) -> tuple[dict[str, Any], str]:
        """An MSP admin invites a user (a new client unless `client_id`); returns the user and the
        invitation's token (not accepted yet: the account has no password)."""
        tag = uuid.uuid4().hex[:8]
        address = f"{label}-{tag}@{domain}"
        name = name or f"{label.replace('-', ' ').title()} {tag[:4].upper()}"

        async def create(admin: Portal) -> dict[str, Any]:
            target = client_id
            if target is None:
                status, client = await admin.post("/api/admin/clients", {"name": f"Client {tag}"})
                assert status == 201, client
                target = client["id"]
            status, user = await admin.post("/api/admin/users", {
                "email": address, "name": name, "client_id": target, **fields})
            assert status == 201, user
            return dict(user)

        user = self.as_admin(create)
        [invite] = self.wait_for_mail(address, "profile.user_invited")
        return user, link_token(invite, "accept-invite")

    def new_user(self, label: str, *, name: str | None = None, client_id: str | None = None,
                 domain: str = "client.example", **fields: Any) -> User:
        """An invited user who accepted the invitation (title "Finance Lead" unless `fields` say otherwise)."""
        fields = fields or {"title": "Finance Lead"}
        user, token = self.invite(label, name=name, client_id=client_id, domain=domain, **fields)

        async def accept() -> None:
            anonymous = Portal(self.base_url)
            try:
                status, body = await anonymous.post("/api/auth/invitation/accept", {
                    "token": token, "new_password": PASSWORD, "confirm_password": PASSWORD})
                assert status == 204, body
            finally:
                await anonymous.close()

        self.api.run(accept)
        return User(user["id"], user["email"], user["name"], PASSWORD)

    def enable_totp(self, user: User, *, key_name: str | None = None) -> tuple[str, list[str]]:
        """Turns the authenticator app on through the API (and with `key_name` also registers a security
        key that is not a passkey, from a software authenticator); returns the secret and the codes."""

        async def enable(client: Portal) -> tuple[str, list[str]]:
            status, setup = await client.post("/api/mfa/totp/setup")
            assert status == 200, setup
            status, verified = await client.post("/api/mfa/totp/verify", {"code": pyotp.TOTP(setup["secret"]).now()})
            assert status == 200, verified
            if key_name:
                authenticator = SoftAuthenticator(origin=self.base_url, discoverable=False)
                status, options = await client.post("/api/mfa/webauthn/register/options")
                assert status == 200, options
                status, body = await client.post("/api/mfa/webauthn/register",
                                                 {"credential": authenticator.create(options), "name": key_name})
                assert status == 201, body
            return setup["secret"], verified["recovery_codes"]

        return self.call(user.email, user.password, enable)

    # ---------- the database, for states no API can reach ----------

    def db(self, work: Callable[[asyncpg.Connection], Coroutine[Any, Any, T]]) -> T:
        """Runs `work` on a connection to the stack's database (as its superuser)."""
        assert self.stack is not None

        async def run() -> T:
            conn = await asyncpg.connect(self.stack.postgres.admin_dsn.rsplit("/", 1)[0] + "/portal")
            try:
                return await work(conn)
            finally:
                await conn.close()

        return self.api.run(run)

    def age_browser_session(self, page: Page) -> None:
        """Make the page's session a sign-in of 11 minutes ago, never re-authenticated."""
        [cookie] = [c for c in page.context.cookies(self.base_url) if c["name"] == "portal_session"]
        digest = hashlib.sha256(cookie["value"].encode()).digest()

        async def age(conn: asyncpg.Connection) -> str:
            return str(await conn.execute("UPDATE profile.sessions SET auth_at = now() - interval '11 minutes', "
                                          "reauth_at = NULL WHERE id_hash = $1", digest))

        assert self.db(age) == "UPDATE 1"


@pytest.fixture(scope="session")
def real(portal_stack: Any) -> Iterator[Real]:
    runner = ApiRunner()
    try:
        yield Real(portal_stack.base_url, Mailbox(portal_stack.mail_dir), runner, portal_stack)
    finally:
        runner.close()


def check(page: Page, name: str) -> None:
    """One page state: a screenshot and an axe-core scan (no serious or critical finding)."""
    screenshot(page, f"real-{name}")
    assert_accessible(page)


def start_viewing(page: Page, user_id: str, reason: str) -> None:
    """The signed-in MSP admin of `page` starts viewing an account with the page's own session (as the
    admin console does): POST /api/admin/users/{id}/impersonate with the page's CSRF token."""
    status = page.evaluate(
        """async ([id, reason]) => {
            const csrf = document.cookie.split('; ').find((c) => c.startsWith('portal_csrf=')).split('=')[1];
            const r = await fetch(`/api/admin/users/${id}/impersonate`, {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': decodeURIComponent(csrf)},
                body: JSON.stringify({reason})});
            return r.status;
        }""", [user_id, reason])
    assert status == 200, status
