"""Security keys and passkeys: registration, sign-in assertions, rename and removal.

Ceremony state lives on the server: each options call stores the SHA-256 of a fresh challenge with
its ceremony (registration / authentication / passkey), user and a 5-minute expiry; the response
consumes it once, before verification, so a replay or a challenge of another ceremony fails.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from portal_shared.events import (
    SecurityKeyAdded,
    SecurityKeyRemoved,
    SecurityKeyRenamed,
    TwoFactorDisabled,
    TwoFactorEnabled,
)
from portal_shared.outbox import enqueue
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json_dict
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from mfa_service import ceremony as cer
from mfa_service.checks import Check
from mfa_service.codes import CodeHasher
from mfa_service.errors import Conflict, NotFound, field_error
from mfa_service.principal import Identity, require_recent_authentication
from mfa_service.profile_client import ProfileClient
from mfa_service.repository import challenges as challenges_repo
from mfa_service.repository import credentials as credentials_repo
from mfa_service.repository import users as users_repo
from mfa_service.repository.credentials import Credential, NewCredential
from mfa_service.repository.factors import lock_user, two_factor_on
from mfa_service.state import issue_codes, void_codes

log = structlog.get_logger("mfa.webauthn")
NAME_MAX = 64
# Anything py_webauthn or our parsing raises for a bad response: never a 5xx for bad input.
_BAD_RESPONSE = (WebAuthnException, cer.MalformedCredential, ValueError, TypeError, KeyError)


def clean_name(name: object) -> str:
    """A key name: 1–64 characters after trimming."""
    if not isinstance(name, str) or not name.strip():
        raise field_error("name", "Enter a name for the key.")
    name = name.strip()
    if len(name) > NAME_MAX:
        raise field_error("name", f"The name can be at most {NAME_MAX} characters.")
    if not _printable(name):
        raise field_error("name", "The name cannot contain control characters.")
    return name


def _printable(text: str) -> bool:
    """No control characters (Postgres text refuses NUL) and no lone surrogates (not valid UTF-8)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return all(unicodedata.category(ch) not in {"Cc", "Cs"} for ch in text)


@dataclass(frozen=True, slots=True)
class Registered:
    key: Credential
    recovery_codes: list[str] | None


class WebAuthnService:
    def __init__(self, pool: asyncpg.Pool, rp: cer.RelyingParty, hasher: CodeHasher, profile: ProfileClient) -> None:
        self._pool = pool
        self._profile = profile
        self._rp = rp
        self._hasher = hasher

    async def _new_challenge(self, ceremony: str, user_id: str | None, challenge: bytes) -> uuid.UUID:
        await challenges_repo.purge_expired(self._pool)
        return await challenges_repo.insert(self._pool, cer.challenge_hash(challenge), ceremony, user_id,
                                            cer.CHALLENGE_SECONDS)

    async def registration_options(self, identity: Identity) -> dict[str, Any]:
        """Creation options (bare JSON) excluding the user's keys, asking for credProps (WebAuthn L2 §10.4).

        Refused without a recent sign-in before any challenge exists, so the browser asks for
        re-authentication before the key ceremony rather than after (a created credential is not wasted).
        """
        require_recent_authentication(identity, "add a security key")
        existing = await credentials_repo.list_for_user(self._pool, identity.user_id)
        email = await users_repo.email_of(self._pool, identity.user_id) or identity.email or identity.user_id
        options = generate_registration_options(
            rp_id=self._rp.rp_id, rp_name=cer.RP_NAME, user_name=email,
            user_id=cer.user_handle(identity.user_id), user_display_name=identity.name or email,
            timeout=cer.TIMEOUT_MS, attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED),
            exclude_credentials=cer.descriptors([(c.credential_id, c.transports) for c in existing]),
        )
        await self._new_challenge("registration", identity.user_id, options.challenge)
        body = options_to_json_dict(options)
        body["extensions"] = {"credProps": True}
        return body

    async def register(self, identity: Identity, credential: object, name: object) -> Registered:
        # Checked before the challenge is consumed: after re-authenticating, the same credential can be sent again.
        require_recent_authentication(identity, "add a security key")
        key_name = clean_name(name)
        if not isinstance(credential, dict):
            raise field_error("credential", "Send the credential the browser created.")
        user_id = identity.user_id
        try:
            challenge = cer.challenge_of(credential)
            if not await challenges_repo.consume(self._pool, cer.challenge_hash(challenge), "registration", user_id):
                raise field_error("credential", "This registration expired or was already used; start again.")
            verified = verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self._rp.rp_id,
                expected_origin=self._rp.origin)
        except _BAD_RESPONSE as exc:
            log.info("webauthn_registration_refused", user_id=user_id, reason=str(exc)[:200])
            raise field_error("credential", "The security key's response could not be verified.") from None
        new = NewCredential(
            user_id=user_id, credential_id=verified.credential_id, public_key=verified.credential_public_key,
            sign_count=verified.sign_count, transports=cer.transports_of(credential), aaguid=verified.aaguid,
            backed_up=verified.credential_backed_up,
            passkey=cer.is_discoverable(credential) and verified.user_verified, name=key_name)
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_user(conn, user_id)
            was_on = await two_factor_on(conn, user_id)
            key = await credentials_repo.insert(conn, new)
            if key is None:
                raise Conflict("This security key is already registered.")
            codes = None
            if was_on:
                await self._profile.end_other_sessions(user_id, identity.session_id)  # before the commit
                event: Any = SecurityKeyAdded(user_id=user_id, key_id=str(key.id), name=key.name)
            else:
                await self._profile.raise_two_factor(user_id)  # before the commit: see ProfileClient
                await self._profile.end_other_sessions(user_id, identity.session_id)
                codes = await issue_codes(conn, self._hasher, user_id)
                event = TwoFactorEnabled(user_id=user_id, method="webauthn", key_id=str(key.id), name=key.name)
            await enqueue(conn, event, source="mfa")
        return Registered(key, codes)

    async def rename(self, identity: Identity, key_id: uuid.UUID, name: object) -> Credential:
        new_name = clean_name(name)
        async with self._pool.acquire() as conn, conn.transaction():
            renamed = await credentials_repo.rename(conn, key_id, identity.user_id, new_name)
            if renamed is None:
                raise NotFound("No such security key.")
            key, old_name = renamed
            if old_name != key.name:  # the same name again changes nothing and says nothing
                await enqueue(conn, SecurityKeyRenamed(user_id=identity.user_id, key_id=str(key.id), name=key.name,
                                                       old_name=old_name), source="mfa")
        return key

    async def remove(self, identity: Identity, key_id: uuid.UUID) -> None:
        require_recent_authentication(identity, "remove a security key")
        user_id = identity.user_id
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_user(conn, user_id)
            key = await credentials_repo.delete(conn, key_id, user_id)
            if key is None:
                raise NotFound("No such security key.")
            await self._profile.end_other_sessions(user_id, identity.session_id)  # before the commit
            if await two_factor_on(conn, user_id):
                event: Any = SecurityKeyRemoved(user_id=user_id, key_id=str(key.id), name=key.name)
            else:
                await void_codes(conn, user_id)
                event = TwoFactorDisabled(user_id=user_id, method="webauthn", key_id=str(key.id), name=key.name)
            await enqueue(conn, event, source="mfa")

    async def authentication_options(self, user_id: str | None) -> tuple[uuid.UUID, dict[str, Any]]:
        """Request options for a user's keys, or for any passkey (user_id None; user verification required)."""
        if user_id is None:
            options = generate_authentication_options(
                rp_id=self._rp.rp_id, timeout=cer.TIMEOUT_MS, user_verification=UserVerificationRequirement.REQUIRED)
            challenge_id = await self._new_challenge("passkey", None, options.challenge)
        else:
            keys = await credentials_repo.list_for_user(self._pool, user_id)
            options = generate_authentication_options(
                rp_id=self._rp.rp_id, timeout=cer.TIMEOUT_MS,
                allow_credentials=cer.descriptors([(k.credential_id, k.transports) for k in keys]),
                user_verification=UserVerificationRequirement.PREFERRED)
            challenge_id = await self._new_challenge("authentication", user_id, options.challenge)
        return challenge_id, options_to_json_dict(options)

    async def verify_assertion(self, challenge_id: uuid.UUID, user_id: str | None, credential: object) -> Check:
        """Whether the assertion passed, and whose key made it. With user_id None only a passkey with UV passes."""
        try:
            check = await self._verify(challenge_id, user_id, credential)
        except _BAD_RESPONSE as exc:
            log.info("webauthn_assertion_refused", user_id=user_id, reason=str(exc)[:200])
            return Check.refused()
        log.info("webauthn_assertion_checked", user_id=user_id or check.user_id, ok=check.ok)
        return check

    async def _verify(self, challenge_id: uuid.UUID, user_id: str | None, credential: object) -> Check:
        if not isinstance(credential, dict):
            raise cer.MalformedCredential("credential is not an object")
        challenge = cer.challenge_of(credential)
        ceremony = "authentication" if user_id is not None else "passkey"
        if not await challenges_repo.consume(self._pool, cer.challenge_hash(challenge), ceremony, user_id,
                                             challenge_id):
            raise cer.MalformedCredential("challenge unknown, expired, spent or of another ceremony")
        key = await credentials_repo.by_credential_id(self._pool, cer.raw_id_of(credential))
        if key is None:
            raise cer.MalformedCredential("unknown credential")
        # py_webauthn does not check who owns the credential: a valid assertion by someone else's key
        # must not sign this user in (WebAuthn L2 §7.2 step 6).
        if user_id is not None and key.user_id != user_id:
            raise cer.MalformedCredential("credential belongs to another user")
        if user_id is None and not key.passkey:
            raise cer.MalformedCredential("not a passkey")
        handle = cer.user_handle_of(credential)
        if (handle is None and user_id is None) or (handle is not None and handle != cer.user_handle(key.user_id)):
            raise cer.MalformedCredential("userHandle does not match the credential's owner")
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=self._rp.rp_id,
            expected_origin=self._rp.origin, credential_public_key=key.public_key,
            credential_current_sign_count=key.sign_count, require_user_verification=user_id is None)
        remaining = await credentials_repo.record_use(self._pool, key, verified.new_sign_count,
                                                      verified.credential_backed_up)
        if remaining is None:
            raise cer.MalformedCredential("concurrent use of the credential")
        return Check.passed(key.user_id, remaining)
