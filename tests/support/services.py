"""Run a service's real app in the test's event loop on a loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import service_environ


def settings_for(service: str, stack_env: dict[str, str], **extra: Any) -> Any:
    env = service_environ(stack_env, service, **extra)
    if service == "profile":
        from profile_service.config import Settings
    elif service == "mfa":
        from mfa_service.config import Settings  # type: ignore[assignment]
    else:
        from notifier_service.config import Settings  # type: ignore[assignment]
    return Settings.from_env(env)


def app_for(service: str, settings: Any) -> web.Application:
    if service == "profile":
        from profile_service.app import create_app
    elif service == "mfa":
        from mfa_service.app import create_app  # type: ignore[assignment]
    else:
        from notifier_service.app import create_app  # type: ignore[assignment]
    return create_app(settings)


@contextlib.asynccontextmanager
async def running_service(service: str, stack_env: dict[str, str], **extra: Any) -> AsyncIterator[TestClient]:
    """The service's app, started for real (migrations, broker, relay), with a client bound to it."""
    settings = settings_for(service, stack_env, **extra)
    server = TestServer(app_for(service, settings), host="127.0.0.1", port=extra.get("HTTP_PORT") or None)
    client = TestClient(server)
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
