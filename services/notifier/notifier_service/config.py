"""Settings of the notifier service, read once from the environment into a frozen object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from portal_shared.config import CommonSettings, Env, SettingsError

SERVICE = "notifier"


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """How the courier sends: the defaults suit production; tests shorten the timings."""

    workers: int = 8               # jobs in flight at once, one SMTP connection each
    batch_size: int = 10           # jobs a worker claims at a time
    lease_seconds: int = 60        # a claimed job comes due again after this if its sender died
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    max_attempts: int = 30         # then the job is failed; operators can retry it
    poll_seconds: float = 0.5      # timers (retries, leases) are polled; new jobs wake by NOTIFY
    smtp_timeout_seconds: float = 15.0


_DEFAULTS = DispatchSettings()


@dataclass(frozen=True, slots=True)
class Settings:
    common: CommonSettings
    service_auth_key: str
    smtp_host: str
    smtp_port: int
    smtp_username: str
    smtp_password: str
    smtp_starttls: bool
    mail_from: str
    dispatch: DispatchSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env(environ)
        return cls(
            common=CommonSettings.from_env(SERVICE, 8103, env),
            service_auth_key=env.secret("SERVICE_AUTH_KEY"),
            smtp_host=env.str("SMTP_HOST", "127.0.0.1"),
            smtp_port=env.int("SMTP_PORT", 1025),
            smtp_username=env.str("SMTP_USERNAME", ""),
            smtp_password=env.str("SMTP_PASSWORD", ""),
            smtp_starttls=env.bool("SMTP_STARTTLS", False),
            mail_from=env.str("MAIL_FROM", "Client Portal <no-reply@portal.localhost>"),
            dispatch=DispatchSettings(
                workers=_positive(env, "NOTIFIER_WORKERS", _DEFAULTS.workers),
                batch_size=_positive(env, "NOTIFIER_BATCH_SIZE", _DEFAULTS.batch_size),
                lease_seconds=_positive(env, "NOTIFIER_LEASE_SECONDS", _DEFAULTS.lease_seconds),
                retry_base_seconds=_seconds(env, "NOTIFIER_RETRY_BASE_SECONDS", _DEFAULTS.retry_base_seconds),
                retry_max_seconds=_seconds(env, "NOTIFIER_RETRY_MAX_SECONDS", _DEFAULTS.retry_max_seconds),
                max_attempts=_positive(env, "NOTIFIER_MAX_ATTEMPTS", _DEFAULTS.max_attempts),
                poll_seconds=_seconds(env, "NOTIFIER_POLL_SECONDS", _DEFAULTS.poll_seconds),
                smtp_timeout_seconds=_seconds(env, "SMTP_TIMEOUT_SECONDS", _DEFAULTS.smtp_timeout_seconds),
            ),
        )


def _positive(env: Env, name: str, default: int) -> int:
    value = env.int(name, default)
    if value < 1:
        raise SettingsError(f"setting {name} must be at least 1, got {value}")
    return value


def _seconds(env: Env, name: str, default: float) -> float:
    raw = env.str(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"setting {name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"setting {name} must be positive, got {raw!r}")
    return value
