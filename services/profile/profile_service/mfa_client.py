"""Calls to the mfa service's internal endpoints (docs/internal-api.md), with service authentication.

Any transport failure or unexpected answer raises MfaUnavailable, which the app answers with 503:
sign-in fails closed when the second-factor service cannot be asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from portal_shared.errors import Unavailable
from portal_shared.service_client import ServiceCallFailed, ServiceClient


class MfaUnavailable(Unavailable):
    """mfa did not answer, or answered something we do not understand: 503, sign-in fails closed.

    The reason is for logs and the admin CLI; the client is told only the class's detail.
    """

    detail = "Two-factor checks are unavailable; try again shortly."

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.args = (reason,)


@dataclass(frozen=True, slots=True)
class Factors:
    two_factor_enabled: bool
    second_factors: list[str]
    recovery_codes_remaining: int | None


@dataclass(frozen=True, slots=True)
class Verification:
    """mfa's answer to a second-factor check."""

    ok: bool
    user_id: str | None = None  # a WebAuthn check: the account the credential proved
    recovery_codes_remaining: int | None = None  # when mfa says (it does with every check since #17)


def _verification(data: dict[str, Any] | None) -> Verification:
    data = data or {}
    ok = data.get("ok") is True
    # `recovery_codes_remaining` is in every check's answer; older mfa builds sent `remaining` with
    # recovery codes only.
    remaining = data.get("recovery_codes_remaining", data.get("remaining"))
    proved = data.get("user_id")
    return Verification(ok=ok, user_id=str(proved) if ok and proved else None,
                        recovery_codes_remaining=remaining if isinstance(remaining, int) else None)


@dataclass(frozen=True, slots=True)
class Undo:
    undone: bool
    two_factor_enabled: bool
    at: datetime  # when mfa made the change: orders the two-factor latch like mfa's events


@dataclass(frozen=True, slots=True)
class Challenge:
    challenge_id: str
    options: dict[str, Any]


class MfaClient:
    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, key: str) -> None:
        self._client = ServiceClient(session, base_url=base_url, key=key, issuer="profile", audience="mfa")

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        try:
            return await self._client.call(method, path, body)
        except ServiceCallFailed as exc:
            raise MfaUnavailable(str(exc)) from exc

    async def factors(self, user_id: str) -> Factors:
        data = await self._call("GET", f"/internal/users/{user_id}/factors") or {}
        remaining = data.get("recovery_codes_remaining")
        return Factors(two_factor_enabled=bool(data.get("two_factor_enabled")),
                       second_factors=[str(f) for f in data.get("second_factors") or []],
                       recovery_codes_remaining=remaining if isinstance(remaining, int) else None)

    async def verify_totp(self, user_id: str, code: str) -> Verification:
        return _verification(await self._call("POST", "/internal/verify/totp", {"user_id": user_id, "code": code}))

    async def verify_recovery_code(self, user_id: str, code: str) -> Verification:
        return _verification(await self._call("POST", "/internal/verify/recovery-code",
                                              {"user_id": user_id, "code": code}))

    async def webauthn_options(self, user_id: str | None) -> Challenge:
        data = await self._call("POST", "/internal/webauthn/options", {"user_id": user_id}) or {}
        if not isinstance(data.get("challenge_id"), str) or not isinstance(data.get("options"), dict):
            raise MfaUnavailable("webauthn options without challenge_id/options")
        return Challenge(data["challenge_id"], data["options"])

    async def verify_webauthn(self, challenge_id: str, user_id: str | None, credential: Any) -> Verification:
        """`user_id` of the verification: whom the credential proved (None when it proved nobody)."""
        return _verification(await self._call("POST", "/internal/verify/webauthn",
                                              {"challenge_id": challenge_id, "user_id": user_id,
                                               "credential": credential}))

    async def reset(self, user_id: str, admin_id: str) -> None:
        await self._call("POST", f"/internal/users/{user_id}/reset", {"admin_id": admin_id})

    async def undo(self, user_id: str, *, event_id: str, event_type: str, key_id: str | None, at: str) -> Undo:
        """Undo the mfa change that event `event_id` reported ("This wasn't me"); idempotent."""
        data = await self._call("POST", f"/internal/users/{user_id}/undo",
                                {"event_id": event_id, "type": event_type, "key_id": key_id, "at": at}) or {}
        try:
            at = datetime.fromisoformat(str(data.get("at")))
        except ValueError:
            raise MfaUnavailable("undo answered without a valid `at`") from None
        return Undo(undone=data.get("undone") is True, two_factor_enabled=data.get("two_factor_enabled") is not False,
                    at=at)
