"""Reads settings from the environment; a missing required setting stops the service naming it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


class Env:
    """Typed accessors over an environment mapping (os.environ by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def str(self, name: str, default: str | None = None) -> str:
        value = self._environ.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise SettingsError(f"required setting {name} is not set")
        return default

    def secret(self, name: str) -> str:
        """A secret has no default: running with a guessable built-in value is worse than not running."""
        return self.str(name)

    def int(self, name: str, default: int | None = None) -> int:
        raw = self.str(name, None if default is None else str(default))
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"setting {name} must be an integer, got {raw!r}") from None

    def bool(self, name: str, default: bool = False) -> bool:
        raw = self.str(name, "true" if default else "false").lower()
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"setting {name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default)
        if value not in choices:
            raise SettingsError(f"setting {name} must be one of {', '.join(choices)}, got {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class CommonSettings:
    """What every service reads (see the contract's Services section)."""

    service_name: str
    database_url: str
    amqp_url: str
    http_host: str
    http_port: int
    log_level: str
    log_format: str
    portal_base_url: str

    @classmethod
    def from_env(cls, service_name: str, default_port: int, env: Env) -> CommonSettings:
        return cls(
            service_name=service_name,
            database_url=env.secret("DATABASE_URL"),
            amqp_url=env.secret("AMQP_URL"),
            http_host=env.str("HTTP_HOST", "127.0.0.1"),
            http_port=env.int("HTTP_PORT", default_port),
            log_level=env.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
            log_format=env.choice("LOG_FORMAT", "json", ("json", "console")),
            portal_base_url=env.str("PORTAL_BASE_URL", "http://localhost:8080").rstrip("/"),
        )
