"""JSON shapes of the contract's Two-factor answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal_shared.clock import iso

from mfa_service.factors import Overview
from mfa_service.repository.credentials import Credential


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z (portal_shared.clock.iso), as the contract wants every timestamp; None stays null."""
    return None if value is None else iso(value)


def key(credential: Credential) -> dict[str, Any]:
    return {
        "id": str(credential.id),
        "name": credential.name,
        "passkey": credential.passkey,
        "created_at": timestamp(credential.created_at),
        "last_used_at": timestamp(credential.last_used_at),
    }


def overview(view: Overview) -> dict[str, Any]:
    return {
        "two_factor_enabled": view.two_factor_enabled,
        "totp": {"enabled": view.totp_enabled_at is not None, "enabled_at": timestamp(view.totp_enabled_at)},
        "security_keys": [key(k) for k in view.keys],
        "recovery_codes": {"remaining": view.recovery_codes_remaining} if view.two_factor_enabled else None,
    }
