"""Fixtures shared by every tier: real servers, a fresh database and vhost, service settings, an SMTP sink."""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from portal_devstack.process import free_port
from portal_shared.db_bootstrap import bootstrap

from tests.support.backends import Backend, docker_available, open_backend
from tests.support.smtp import SmtpSink

DB_PASSWORDS = {"profile": "profile-test-pw", "mfa": "mfa-test-pw", "notifier": "notifier-test-pw"}


def pytest_report_header() -> str:
    choice = os.environ.get("TEST_BACKEND", "auto")
    used = "testcontainers" if choice == "containers" or (choice == "auto" and docker_available()) else "local"
    return f"servers for integration tests: {used} (TEST_BACKEND={choice})"


@pytest.fixture(scope="session")
def backend() -> Iterator[Backend]:
    opened = open_backend()
    print(f"\n[servers] integration backend: {opened.name}")
    yield opened
    opened.close()


async def new_stack_env(backend: Backend, smtp_port: int = 1025, **extra: str) -> dict[str, str]:
    """A new database (with the three roles and schemas) and a new vhost; every service's settings."""
    database = f"portal_{uuid.uuid4().hex[:12]}"
    urls = await bootstrap(backend.admin_dsn, database=database, passwords=DB_PASSWORDS)
    vhost = backend.new_vhost()
    key = secrets.token_urlsafe(32)
    env = {
        "AMQP_URL": backend.amqp_url(vhost),
        "ADMIN_DATABASE_URL": backend.admin_dsn.rsplit("/", 1)[0] + f"/{database}",
        "PROFILE_DATABASE_URL": urls["profile"],
        "MFA_DATABASE_URL": urls["mfa"],
        "NOTIFIER_DATABASE_URL": urls["notifier"],
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "warning",
        "PORTAL_BASE_URL": "http://localhost:8080",
        "WEBAUTHN_RP_ID": "localhost",
        "SERVICE_AUTH_KEY": key,
        "MFA_ENCRYPTION_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "RECOVERY_CODE_KEY": secrets.token_urlsafe(32),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "MAIL_FROM": "Client Portal <no-reply@portal.test>",
        "HTTP_HOST": "127.0.0.1",
    }
    env.update(extra)
    return env


def service_environ(stack_env: dict[str, str], service: str, **extra: Any) -> dict[str, str]:
    """The environment one service sees: its own DATABASE_URL, nothing of the others'."""
    env = {k: v for k, v in stack_env.items() if not k.endswith("_DATABASE_URL")}
    env["DATABASE_URL"] = stack_env[f"{service.upper()}_DATABASE_URL"]
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def stack_env(backend: Backend, smtp_sink: SmtpSink) -> AsyncIterator[dict[str, str]]:
    smtp_sink.messages.clear()
    yield await new_stack_env(backend, smtp_port=smtp_sink.port)


@pytest.fixture(scope="session")
def portal_stack() -> Iterator[Any]:
    """The whole stack as `make up` runs it (services as processes, nginx in front), random ports."""
    from tests.support.stack import throwaway_stack

    stack = throwaway_stack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
