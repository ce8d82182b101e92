"""What the service layer needs at hand, built once per app in a cleanup_ctx and passed explicitly."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from portal_shared.secretbox import SecretBox

from profile_service.config import Settings
from profile_service.mfa_client import MfaClient
from profile_service.oidc import OidcClient
from profile_service.passwords import PasswordHasher
from profile_service.throttle import IpRateLimiter

log = structlog.get_logger("profile.context")


@dataclass
class Context:
    pool: asyncpg.Pool
    settings: Settings
    hasher: PasswordHasher
    mfa: MfaClient
    ip_limiter: IpRateLimiter
    box: SecretBox  # seals SSO client secrets and PKCE verifiers
    oidc: OidcClient
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run work after the response (kept referenced; awaited at shutdown; failures logged)."""
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_task_failed", task=task.get_name(), error=repr(task.exception()))

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
