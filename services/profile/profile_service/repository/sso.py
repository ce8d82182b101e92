"""SQL of single sign-on: providers and their domains, linked identities, sign-ins under way."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from portal_shared.secretbox import Sealed

from profile_service.models import User
from profile_service.oidc import ProviderMetadata
from profile_service.repository.users import USER_SELECT, user_from_row

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class Provider:
    client_id: str
    issuer: str
    oidc_client_id: str
    secret: Sealed
    password_sign_in: bool
    trust_idp_mfa: bool
    metadata: ProviderMetadata
    email_domains: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PendingLogin:
    client_id: str
    browser_hash: bytes
    nonce_hash: bytes
    verifier: Sealed
    reauth_session: str | None  # the public id of the session a re-authentication steps up
    expires_at: datetime


_PROVIDER = """
SELECT p.client_id::text, p.issuer, p.oidc_client_id, p.secret_key_id, p.secret_sealed, p.password_sign_in,
       p.trust_idp_mfa, p.metadata,
       ARRAY(SELECT d.domain FROM sso_domains d WHERE d.client_id = p.client_id ORDER BY d.domain) AS domains
FROM sso_providers p
"""


def _provider(row: asyncpg.Record | None) -> Provider | None:
    if row is None:
        return None
    return Provider(client_id=row["client_id"], issuer=row["issuer"], oidc_client_id=row["oidc_client_id"],
                    secret=Sealed(row["secret_key_id"], row["secret_sealed"]),
                    password_sign_in=row["password_sign_in"], trust_idp_mfa=row["trust_idp_mfa"],
                    metadata=ProviderMetadata.from_json(json.loads(row["metadata"])),
                    email_domains=tuple(row["domains"]))


async def for_client(conn: Conn, client_id: str) -> Provider | None:
    return _provider(await conn.fetchrow(_PROVIDER + "WHERE p.client_id = $1", client_id))


async def for_domain(conn: Conn, domain: str) -> Provider | None:
    return _provider(await conn.fetchrow(
        _PROVIDER + "JOIN sso_domains sd ON sd.client_id = p.client_id WHERE sd.domain = $1", domain))


async def password_allowed(conn: Conn, client_id: str | None) -> bool:
    """False when the client's SSO settings turned password sign-in off (None: no client, allowed)."""
    return await conn.fetchval("SELECT password_sign_in FROM sso_providers WHERE client_id = $1",
                               client_id) is not False


async def issuer_for_client(conn: Conn, client_id: str) -> str | None:
    return await conn.fetchval("SELECT issuer FROM sso_providers WHERE client_id = $1", client_id)


async def domain_owners(conn: Conn, domains: list[str]) -> dict[str, str]:
    rows = await conn.fetch("SELECT domain, client_id::text FROM sso_domains WHERE domain = ANY($1::text[])",
                            domains)
    return {r["domain"]: r["client_id"] for r in rows}


async def save(conn: asyncpg.Connection, provider: Provider) -> None:
    """Insert or replace the client's provider and its domain list (in the caller's transaction)."""
    await conn.execute(
        """
        INSERT INTO sso_providers (client_id, issuer, oidc_client_id, secret_key_id, secret_sealed,
                                   password_sign_in, trust_idp_mfa, metadata)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
        ON CONFLICT (client_id) DO UPDATE SET
            issuer = EXCLUDED.issuer, oidc_client_id = EXCLUDED.oidc_client_id,
            secret_key_id = EXCLUDED.secret_key_id, secret_sealed = EXCLUDED.secret_sealed,
            password_sign_in = EXCLUDED.password_sign_in, trust_idp_mfa = EXCLUDED.trust_idp_mfa,
            metadata = EXCLUDED.metadata, updated_at = now()
        """,
        provider.client_id, provider.issuer, provider.oidc_client_id, provider.secret.key_id,
        provider.secret.blob, provider.password_sign_in, provider.trust_idp_mfa,
        json.dumps(provider.metadata.to_json()))
    await conn.execute("DELETE FROM sso_domains WHERE client_id = $1", provider.client_id)
    await conn.executemany("INSERT INTO sso_domains (domain, client_id) VALUES ($1, $2)",
                           [(d, provider.client_id) for d in provider.email_domains])


async def delete(conn: Conn, client_id: str) -> bool:
    return await conn.fetchval("DELETE FROM sso_providers WHERE client_id = $1 RETURNING true", client_id) is True


_LINKED_USER = USER_SELECT + """
JOIN sso_identities i ON i.user_id = u.id
WHERE i.issuer = $1 AND i.subject = $2 AND i.revoked_at IS NULL"""


async def linked_user(conn: Conn, issuer: str, subject: str) -> User | None:
    """The account the (iss, sub) identity is linked to, in the statement that finds the link."""
    return user_from_row(await conn.fetchrow(_LINKED_USER, issuer, subject))


async def user_has_identity(conn: Conn, user_id: str, issuer: str) -> bool:
    return await conn.fetchval("SELECT true FROM sso_identities "
                               "WHERE user_id = $1 AND issuer = $2 AND revoked_at IS NULL", user_id, issuer) is True


async def link(conn: Conn, issuer: str, subject: str, user_id: str) -> bool:
    """Link; False when the identity exists (linked meanwhile, or revoked) or the user has a link at this
    issuer already."""
    return await conn.fetchval(
        "INSERT INTO sso_identities (issuer, subject, user_id) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING true", issuer, subject, user_id) is True


async def set_link_event(conn: Conn, issuer: str, subject: str, event_id: str) -> None:
    await conn.execute("UPDATE sso_identities SET event_id = $3 WHERE issuer = $1 AND subject = $2",
                       issuer, subject, event_id)


async def revoke_by_event(conn: Conn, user_id: str, event_id: str) -> bool:
    """Undo the link a profile.sso_linked event reported: that identity never signs in or links again."""
    return await conn.fetchval("UPDATE sso_identities SET revoked_at = now() "
                               "WHERE user_id = $1 AND event_id = $2 AND revoked_at IS NULL RETURNING true",
                               user_id, event_id) is True


async def save_login(conn: Conn, state_hash: bytes, login: PendingLogin) -> None:
    await conn.execute(
        """
        INSERT INTO sso_logins (state_hash, browser_hash, client_id, nonce_hash, verifier_key_id,
                                verifier_sealed, reauth_session, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """,
        state_hash, login.browser_hash, login.client_id, login.nonce_hash, login.verifier.key_id,
        login.verifier.blob, login.reauth_session, login.expires_at)


# The claim commits without waiting for the WAL flush: a database crash could at worst forget a claim of
# the last fraction of a second, and then the provider's single-use code still refuses a replay. Waiting
# would add a disk flush to every callback, on top of the one its sign-in needs. The client's provider
# comes back with it (one round trip for both); none when it was removed during the sign-in.
_CLAIM_LOGIN = f"""
WITH claimed AS (
    DELETE FROM sso_logins WHERE state_hash = $1 AND expires_at > now()
    AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING client_id, browser_hash, nonce_hash, verifier_key_id, verifier_sealed, reauth_session, expires_at
)
SELECT l.client_id::text AS login_client_id, l.browser_hash, l.nonce_hash, l.verifier_key_id, l.verifier_sealed,
       l.reauth_session::text, l.expires_at, provider.*
FROM claimed l
LEFT JOIN LATERAL ({_PROVIDER} WHERE p.client_id = l.client_id) provider ON true
"""  # noqa: S608 (constant fragments)


async def claim_login(conn: Conn, state_hash: bytes) -> tuple[PendingLogin, Provider | None] | None:
    """Take a started sign-in by its state (at most one callback ever gets it: single use), with its
    client's provider."""
    row = await conn.fetchrow(_CLAIM_LOGIN, state_hash)
    if row is None:
        return None
    login = PendingLogin(client_id=row["login_client_id"], browser_hash=row["browser_hash"],
                         nonce_hash=row["nonce_hash"], verifier=Sealed(row["verifier_key_id"], row["verifier_sealed"]),
                         reauth_session=row["reauth_session"], expires_at=row["expires_at"])
    return login, (_provider(row) if row["client_id"] is not None else None)


async def prune_logins(conn: Conn) -> None:
    await conn.execute("DELETE FROM sso_logins WHERE expires_at <= now()")
