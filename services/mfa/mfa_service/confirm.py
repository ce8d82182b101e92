"""Confirming a sensitive change: the password (checked by profile) or a recent re-authentication.

The contract: endpoints that take `{password}` also accept a body without it when the session
re-authenticated in the last 10 minutes (max(auth_at, reauth_at) in the identity token).
"""

from __future__ import annotations

from mfa_service.errors import field_error
from mfa_service.principal import Identity
from mfa_service.profile_client import ProfileClient

MAX_PASSWORD_LENGTH = 1024


class Confirmer:
    def __init__(self, profile: ProfileClient) -> None:
        self._profile = profile

    async def confirm(self, identity: Identity, password: object) -> None:
        """Return when the change may go ahead; raise a 422 on `password` otherwise."""
        if password is None or password == "":
            if identity.recently_authenticated():
                return
            raise field_error("password", "Enter your password to confirm.")
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            raise field_error("password", "The password is incorrect.")
        if not await self._profile.verify_password(identity.user_id, password):
            raise field_error("password", "The password is incorrect.")
