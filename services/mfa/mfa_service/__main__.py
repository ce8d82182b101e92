"""`python -m mfa_service`: read settings, configure logging, serve until SIGTERM."""

from __future__ import annotations

from portal_shared.service_main import serve_service

from mfa_service.app import create_app
from mfa_service.config import Settings


def main() -> None:
    serve_service("mfa", Settings.from_env, create_app)


if __name__ == "__main__":
    main()
