"""Settings of the profile service, read once from the environment into a frozen object."""

from __future__ import annotations

from dataclasses import dataclass

from portal_shared.config import CommonSettings, Env

SERVICE = "profile"


@dataclass(frozen=True, slots=True)
class Settings:
    common: CommonSettings
    service_auth_key: str  # signs the identity the gateway forwards and service-to-service calls
    mfa_url: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = Env(environ)
        return cls(
            common=CommonSettings.from_env(SERVICE, 8101, env),
            service_auth_key=env.secret("SERVICE_AUTH_KEY"),
            mfa_url=env.str("MFA_URL", "http://127.0.0.1:8102").rstrip("/"),
        )
