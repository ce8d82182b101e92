"""An MSP admin configures a client's OpenID Connect provider (PUT/DELETE /api/admin/clients/{id}/sso).

The issuer is checked by running discovery when it is saved, so a typo fails here and not at a user's
first sign-in. The client secret is sealed at rest and never answered. Changing where a client's users
sign in is taking over their sign-in: it needs the admin's recent re-authentication, like an address
change.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import structlog
from portal_shared.ids import is_uuid

from profile_service import admin
from profile_service.context import Context
from profile_service.errors import NotFound, ValidationFailed
from profile_service.models import Session
from profile_service.oidc import OidcError, ProviderMetadata, valid_issuer
from profile_service.repository import audit
from profile_service.repository import sso as sso_repo
from profile_service.repository import users as users_repo
from profile_service.repository.sso import Provider

log = structlog.get_logger("profile.sso")
MAX_DOMAINS = 50
# A DNS name of ASCII labels (IDNs in their xn-- form), lower case: what the domain of an address is.
DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
PASSWORD_SIGN_IN = {"allowed": True, "disabled": False}


def sso_json(provider: Provider) -> dict[str, Any]:
    """The contract's `sso` object (never the secret)."""
    return {"issuer": provider.issuer, "client_id": provider.oidc_client_id,
            "email_domains": list(provider.email_domains),
            "password_sign_in": "allowed" if provider.password_sign_in else "disabled",
            "trust_idp_mfa": provider.trust_idp_mfa}


async def sso_view(conn: asyncpg.Connection | asyncpg.Pool, client_id: str) -> dict[str, Any] | None:
    provider = await sso_repo.for_client(conn, client_id)
    return sso_json(provider) if provider else None


def metadata_json(metadata: ProviderMetadata) -> dict[str, Any]:
    """What discovery found, for the console's "Test sign-in"."""
    return {"issuer": metadata.issuer, "authorization_endpoint": metadata.authorization_endpoint,
            "token_endpoint": metadata.token_endpoint, "jwks_uri": metadata.jwks_uri,
            "signing_algs": list(metadata.signing_algs), "token_auth": metadata.token_auth}


def _client_id(value: str) -> str:
    if not is_uuid(value):
        raise NotFound("No such client.")
    return value.lower()


def _issuer(body: dict[str, Any]) -> str:
    issuer = valid_issuer(body.get("issuer"))
    if issuer is None:
        raise ValidationFailed({"issuer": ["Enter the provider's issuer: an https URL such as "
                                           "https://login.microsoftonline.com/<tenant id>/v2.0."]})
    return issuer


def _domains(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_DOMAINS:
        raise ValidationFailed({"email_domains": [f"List the email domains this provider signs in (1 to "
                                                  f"{MAX_DOMAINS}), e.g. [\"example.com\"]."]})
    domains = []
    for item in value:
        domain = item.strip().lower().rstrip(".") if isinstance(item, str) else ""
        if not DOMAIN.match(domain):
            raise ValidationFailed({"email_domains": [f"{str(item)[:80]!r} is not a domain name."]})
        if domain not in domains:
            domains.append(domain)
    return tuple(domains)


def _text(body: dict[str, Any], name: str, *, max_length: int, message: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value != value.strip() or len(value) > max_length or not value.isprintable():
        raise ValidationFailed({name: [message]})
    return value


async def test(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    """Run discovery for an issuer without saving anything."""
    return metadata_json(await _discover(ctx, _issuer(body)))


async def _discover(ctx: Context, issuer: str) -> ProviderMetadata:
    try:
        return await ctx.oidc.discover(issuer)
    except OidcError as exc:
        log.info("sso_discovery_failed", issuer=issuer, reason=str(exc))
        raise ValidationFailed({"issuer": [f"Discovery at this issuer failed: {exc}"]}) from None


async def configure(ctx: Context, acting: Session, client_id: str, body: dict[str, Any], *, ip: str) -> Provider:
    admin.require_recent_auth(acting)
    client_id = _client_id(client_id)
    if await users_repo.get_client(ctx.pool, client_id) is None:
        raise NotFound("No such client.")
    existing = await sso_repo.for_client(ctx.pool, client_id)
    issuer, domains = _issuer(body), _domains(body.get("email_domains"))
    errors: dict[str, list[str]] = {}
    oidc_client_id = _text(body, "client_id", max_length=255, message="Enter the client id the provider gave.")
    secret = _text(body, "client_secret", max_length=1024, message="Enter the client secret the provider gave.")
    if oidc_client_id is None:
        errors["client_id"] = ["Enter the client id the provider gave."]
    if secret is None and existing is None:  # write-only: an update may leave the stored secret as it is
        errors["client_secret"] = ["Enter the client secret the provider gave."]
    if body.get("password_sign_in", "allowed") not in PASSWORD_SIGN_IN:
        errors["password_sign_in"] = ['Choose "allowed" or "disabled".']
    if not isinstance(body.get("trust_idp_mfa", False), bool):
        errors["trust_idp_mfa"] = ["Choose true or false."]
    taken = {d for d, owner in (await sso_repo.domain_owners(ctx.pool, list(domains))).items() if owner != client_id}
    if taken:
        errors["email_domains"] = [f"Another client already signs in {', '.join(sorted(taken))}."]
    if errors:
        raise ValidationFailed(errors)
    assert oidc_client_id is not None
    metadata = await _discover(ctx, issuer)
    sealed = (ctx.box.encrypt(secret.encode(), associated_data=client_id.encode()) if secret is not None
              else existing.secret if existing else None)
    assert sealed is not None
    provider = Provider(client_id=client_id, issuer=issuer, oidc_client_id=oidc_client_id, secret=sealed,
                        password_sign_in=PASSWORD_SIGN_IN[body.get("password_sign_in", "allowed")],
                        trust_idp_mfa=body.get("trust_idp_mfa", False) is True, metadata=metadata,
                        email_domains=domains)
    async with ctx.pool.acquire() as conn, conn.transaction():
        try:
            await sso_repo.save(conn, provider)
        except asyncpg.UniqueViolationError:  # another client took one of the domains meanwhile
            raise ValidationFailed({"email_domains": ["Another client already signs in one of these domains."]}) \
                from None
        await audit.record(conn, acting.user.id, "sso_configured", ip=ip,
                           detail=f"client {client_id}: {issuer} for {', '.join(domains)}")
    log.info("sso_configured", client_id=client_id, issuer=issuer, admin_id=acting.user.id)
    return provider


async def remove(ctx: Context, acting: Session, client_id: str, *, ip: str) -> None:
    admin.require_recent_auth(acting)
    client_id = _client_id(client_id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await sso_repo.delete(conn, client_id):
            raise NotFound("This client has no single sign-on.")
        await audit.record(conn, acting.user.id, "sso_removed", ip=ip, detail=f"client {client_id}")
