"""Settings of the profile service, read once from the environment into a frozen object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from portal_shared.config import CommonSettings, Env

SERVICE = "profile"


@dataclass(frozen=True, slots=True)
class Settings:
    common: CommonSettings
    service_auth_key: str  # signs the identity the gateway forwards, service calls and CSRF tokens
    mfa_url: str
    hash_concurrency: int = 4  # argon2id hashes running at once (each takes 19 MiB)
    auth_rate_per_minute: int = 600  # per-IP limit on /api/auth/*; the contract needs at least 300
    # Encrypts SSO client secrets at rest ("kid:base64key,..." as MFA_ENCRYPTION_KEYS). Unset: one key
    # derived from SERVICE_AUTH_KEY (secrets.secret_box) — set it in production, so that rotating
    # SERVICE_AUTH_KEY does not make the stored client secrets unreadable.
    encryption_keys: str = ""
    sso_timeout_seconds: float = 5.0  # each call to an identity provider (discovery, JWKS, token)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = Env(environ)
        return cls(
            common=CommonSettings.from_env(SERVICE, 8101, env),
            service_auth_key=env.secret("SERVICE_AUTH_KEY"),
            mfa_url=env.str("MFA_URL", "http://127.0.0.1:8102").rstrip("/"),
            hash_concurrency=env.int("HASH_CONCURRENCY", max(2, os.cpu_count() or 2)),
            auth_rate_per_minute=env.int("AUTH_RATE_PER_MINUTE", 600),
            encryption_keys=env.str("PROFILE_ENCRYPTION_KEYS", ""),
            sso_timeout_seconds=float(env.int("SSO_TIMEOUT_SECONDS", 5)),
        )

    @property
    def sso_redirect_uri(self) -> str:
        """The redirect URI an MSP registers at the client's identity provider."""
        return f"{self.common.portal_base_url}/api/auth/sso/callback"

    @property
    def base_url(self) -> str:
        return self.common.portal_base_url

    @property
    def origin(self) -> str:
        """The portal's origin (RFC 6454): scheme://host[:port], compared with the Origin header."""
        parts = urlsplit(self.common.portal_base_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def secure_cookies(self) -> bool:
        return self.common.portal_base_url.lower().startswith("https://")
