"""Calls to the profile service: the password check behind "confirm with your password", the two-factor
latch raised before two-factor turns on, and ending the user's other sessions when a factor is added or
removed (docs/internal-api.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import aiohttp
import structlog
from portal_shared.service_client import ServiceCallFailed, ServiceClient

from mfa_service.errors import ProfileUnavailable

log = structlog.get_logger("mfa.profile_client")
NOT_TURNED_ON = "Two-factor authentication could not be turned on; try again shortly."
NOT_CHANGED = "Your two-factor settings could not be changed; try again shortly."


class ProfileClient:
    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, service_auth_key: str) -> None:
        self._client = ServiceClient(session, base_url=base_url, key=service_auth_key, issuer="mfa",
                                     audience="profile")

    async def verify_password(self, user_id: str, password: str) -> bool:
        """True when profile confirms the password (a throttled account answers False).

        Raises ProfileUnavailable when profile cannot answer: we never guess in the user's favour.
        """
        try:
            body = await self._client.call("POST", "/internal/verify-password",
                                           {"user_id": user_id, "password": password}, expect=frozenset({200}))
        except ServiceCallFailed as exc:
            log.warning("verify_password_failed", reason=str(exc))
            raise ProfileUnavailable("The password could not be checked; try again shortly.") from None
        return body is not None and body.get("ok") is True

    async def raise_two_factor(self, user_id: str) -> None:
        """Have profile mark the user as having two-factor on; call it before committing the first factor.

        Profile's password sign-in asks mfa only while that mark is up, so the first factor must never
        be committed without it. Raises ProfileUnavailable when profile does not confirm.
        """
        await self._confirmed(f"/internal/users/{user_id}/two-factor-on", {"at": datetime.now(UTC).isoformat()},
                              what="raise_two_factor", refusal=NOT_TURNED_ON)

    async def end_other_sessions(self, user_id: str, keep_session_id: str | None) -> None:
        """Have profile end every session of the user but `keep_session_id` (the caller's, by public id).

        Call it inside the transaction that adds or removes a factor, before the commit: a session
        someone else holds must not outlive a change to how the account signs in. Raises
        ProfileUnavailable when profile does not confirm, so the change rolls back (fail closed). Should
        the commit fail after profile answered, the sessions are ended for nothing: harmless.
        """
        await self._confirmed(f"/internal/users/{quote(user_id, safe='')}/sessions/end-others",
                              {"keep_session_id": keep_session_id}, what="end_other_sessions", refusal=NOT_CHANGED)

    async def _confirmed(self, path: str, body: dict[str, object], *, what: str, refusal: str) -> None:
        """POST `body` to profile's `path`; anything but a 204 raises ProfileUnavailable(refusal)."""
        try:
            await self._client.call("POST", path, body, expect=frozenset({204}))
        except ServiceCallFailed as exc:
            log.warning(f"{what}_failed", reason=str(exc))
            raise ProfileUnavailable(refusal) from None
