"""The demo seed hashes DEMO_PASSWORD once per account, each with its own salt (issue #13)."""

from __future__ import annotations

import asyncpg
from profile_service.bootstrap import DEMO_ADMIN, DEMO_USER, seed_demo
from profile_service.passwords import OWASP_PARAMETERS, PasswordHasher

DEMO_EMAILS = (str(DEMO_ADMIN["email"]), str(DEMO_USER["email"]))


async def _stored_hashes(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT email, password_hash FROM profile.users WHERE email = ANY($1::text[])",
                                list(DEMO_EMAILS))
    finally:
        await conn.close()
    return {row["email"]: row["password_hash"] for row in rows}


def _salt(phc: str) -> str:
    # $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
    return phc.split("$")[4]


async def test_both_demo_accounts_get_their_own_hash_and_salt_at_creation_and_at_every_reset(
        stack_env: dict[str, str]) -> None:
    hasher = PasswordHasher(1, **OWASP_PARAMETERS)
    try:
        # First run creates the accounts (insert path); the second re-sets the password (update path).
        for password in ("demo-password-one", "demo-password-two"):
            report = await seed_demo(stack_env["PROFILE_DATABASE_URL"], password=password)
            assert report.passwords_set
            hashes = await _stored_hashes(stack_env["PROFILE_DATABASE_URL"])
            admin, user = (hashes[email] for email in DEMO_EMAILS)
            assert admin != user
            assert _salt(admin) != _salt(user)
            for stored in (admin, user):
                assert await hasher.verify(stored, password)
                assert not await hasher.verify(stored, password + "x")
    finally:
        hasher.close()
