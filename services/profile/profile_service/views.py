"""The JSON shapes of the contract, built from records (one place, so every endpoint agrees)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal_shared import clock

from profile_service import sessions
from profile_service.models import Session, User


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the contract asks (portal_shared.clock.iso); None stays None."""
    return None if moment is None else clock.iso(moment)


def profile(user: User, impersonator: User | None) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "initial": user.name.strip()[:1].upper(),
        "phone": user.phone,
        "company": user.client.to_json() if user.client else None,
        "title": user.title,
        "mobile": user.mobile,
        "impersonator": impersonator.brief() if impersonator else None,
    }


def admin_user(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "client": user.client.to_json() if user.client else None,
        "title": user.title,
        "mobile": user.mobile,
        "phone": user.phone,
        "two_factor_enabled": user.two_factor_enabled,
        "created_at": iso(user.created_at),
    }


def session_info(session: Session, raw_session_id: str, key: str, *, sso_issuer: str | None = None,
                 second_factors: list[str] | None = None) -> dict[str, Any]:
    """GET /api/auth/session. `sso_issuer`: the issuer of the user's client SSO (null without one);
    `second_factors`: while the sign-in waits for its second factor, which ones the account has."""
    user = session.effective_user
    info = {
        "user": {"id": user.id, "email": user.email, "name": user.name, "role": user.role,
                 "has_password": user.password_hash is not None, "sso": sso_issuer},
        "state": session.state,
        "impersonator": session.impersonator.brief() if session.impersonator else None,
        "csrf_token": sessions.csrf_token(key, raw_session_id),
    }
    if second_factors is not None:
        info["second_factors"] = second_factors
    return info
