"""Creating accounts outside the HTTP API: the first MSP admin (`portal-admin`) and the demo data (`make up`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
from portal_shared.events import UserCreated
from portal_shared.migrate import run_migrations
from portal_shared.outbox import enqueue

from profile_service.app import MIGRATIONS
from profile_service.config import SERVICE
from profile_service.models import CLIENT_USER, MSP_ADMIN
from profile_service.passwords import OWASP_PARAMETERS, PasswordHasher
from profile_service.recovery import INVITE_LIFETIME_SECONDS, link
from profile_service.repository import throttle as throttle_repo
from profile_service.repository import tokens as tokens_repo
from profile_service.repository import users as users_repo

DEMO_ADMIN = {"email": "admin@msp.example", "name": "MSP Admin", "role": MSP_ADMIN}
DEMO_CLIENT = "Demo Client Co"
DEMO_USER = {"email": "demo@client.example", "name": "Demo User", "role": CLIENT_USER, "title": "Office Manager",
             "mobile": "+44 20 7946 0018"}


class AlreadyExists(Exception):
    """An account with that email address exists."""


@dataclass(frozen=True, slots=True)
class SeedReport:
    created: list[str]
    passwords_set: bool


async def connect(database_url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SERVICE})
    await run_migrations(conn, MIGRATIONS, schema=SERVICE)
    return conn


async def create_admin(database_url: str, *, email: str, name: str, base_url: str) -> str:
    """Create an MSP admin without a password; return the one-time set-password link (valid 3 days)."""
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            if await users_repo.email_taken(conn, email):
                raise AlreadyExists(email)
            user_id = await users_repo.insert(conn, email=email, name=name, role=MSP_ADMIN)
            await enqueue(conn, UserCreated(user_id=user_id, email=email, name=name), source=SERVICE)
            token, _ = await tokens_repo.issue(conn, user_id, tokens_repo.INVITE,
                                               lifetime_seconds=INVITE_LIFETIME_SECONDS)
        return link(base_url, "accept-invite", token)
    finally:
        await conn.close()


async def seed_demo(database_url: str, *, password: str | None) -> SeedReport:
    """The contract's demo data, created when absent; with `password`, both demo accounts get it (always)."""
    accounts = (DEMO_ADMIN, DEMO_USER)
    hashes: dict[str, str] = {}
    if password:
        # One hash per account, each with its own random salt (issue #13): one shared hash made the two
        # accounts' rows identical, telling anyone who can read them that the passwords are equal, and
        # would let one cracked hash open both. Demo data: the password rules do not apply.
        hasher = PasswordHasher(len(accounts), **OWASP_PARAMETERS)
        try:
            digests = await asyncio.gather(*(hasher.hash(password) for _ in accounts))
        finally:
            hasher.close()
        hashes = {str(spec["email"]): digest for spec, digest in zip(accounts, digests, strict=True)}
    conn = await connect(database_url)
    created: list[str] = []
    try:
        async with conn.transaction():
            await users_repo.lock_for_seeding(conn)
            client = await users_repo.get_client_by_name(conn, DEMO_CLIENT) or await users_repo.insert_client(
                conn, DEMO_CLIENT)
            for spec in accounts:
                user = await users_repo.get_by_email(conn, str(spec["email"]))
                password_hash = hashes.get(str(spec["email"]))
                if user is None:
                    client_id = client.id if spec["role"] == CLIENT_USER else None
                    user_id = await users_repo.insert(conn, client_id=client_id, password_hash=password_hash,
                                                      **spec)
                    await enqueue(conn, UserCreated(user_id=user_id, email=str(spec["email"]), name=str(spec["name"])),
                                  source=SERVICE)
                    created.append(str(spec["email"]))
                elif password_hash:
                    await users_repo.set_password_hash(conn, user.id, password_hash)
                    await throttle_repo.record_success(conn, user.id)
    finally:
        await conn.close()
    return SeedReport(created=created, passwords_set=bool(hashes))
