"""Settings of the MFA service, read once from the environment into a frozen object."""

from __future__ import annotations

from dataclasses import dataclass

from portal_shared.config import CommonSettings, Env

SERVICE = "mfa"


@dataclass(frozen=True, slots=True)
class Settings:
    common: CommonSettings
    service_auth_key: str
    profile_url: str
    webauthn_rp_id: str
    encryption_keys: str  # "kid:base64key[,kid:base64key...]", the first encrypts, all decrypt
    recovery_code_key: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = Env(environ)
        return cls(
            common=CommonSettings.from_env(SERVICE, 8102, env),
            service_auth_key=env.secret("SERVICE_AUTH_KEY"),
            profile_url=env.str("PROFILE_URL", "http://127.0.0.1:8101").rstrip("/"),
            webauthn_rp_id=env.str("WEBAUTHN_RP_ID", "localhost"),
            encryption_keys=env.secret("MFA_ENCRYPTION_KEYS"),
            recovery_code_key=env.secret("RECOVERY_CODE_KEY"),
        )
