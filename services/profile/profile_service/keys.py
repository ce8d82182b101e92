"""Typed app and request keys of the profile service (web.AppKey), kept apart to break import loops."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from profile_service.context import Context
    from profile_service.models import Session

CONTEXT: web.AppKey[Context] = web.AppKey("profile_context")
# The request's session (None when the cookie names no live session), set by the auth middleware.
SESSION: web.RequestKey[Session | None] = web.RequestKey("profile_session")
CLIENT_IP: web.RequestKey[str] = web.RequestKey("client_ip")
# On a second-factor attempt: the session cookie (its CSRF token checked) whose load the middleware left to
# the attempt's own statement (guard.SECOND_STEP_PATHS); None otherwise.
PENDING_COOKIE: web.RequestKey[str | None] = web.RequestKey("profile_pending_cookie")
