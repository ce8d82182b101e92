"""Settings of the notifier service, read once from the environment into a frozen object."""

from __future__ import annotations

from dataclasses import dataclass

from portal_shared.config import CommonSettings, Env

SERVICE = "notifier"


@dataclass(frozen=True, slots=True)
class Settings:
    common: CommonSettings
    smtp_host: str
    smtp_port: int
    smtp_username: str
    smtp_password: str
    smtp_starttls: bool
    mail_from: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = Env(environ)
        return cls(
            common=CommonSettings.from_env(SERVICE, 8103, env),
            smtp_host=env.str("SMTP_HOST", "127.0.0.1"),
            smtp_port=env.int("SMTP_PORT", 1025),
            smtp_username=env.str("SMTP_USERNAME", ""),
            smtp_password=env.str("SMTP_PASSWORD", ""),
            smtp_starttls=env.bool("SMTP_STARTTLS", False),
            mail_from=env.str("MAIL_FROM", "Client Portal <no-reply@portal.localhost>"),
        )
