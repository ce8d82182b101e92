"""`python -m notifier_service`: read settings, configure logging, serve until SIGTERM."""

from __future__ import annotations

import sys

from portal_shared.config import SettingsError
from portal_shared.logging import configure_logging
from portal_shared.runtime import serve

from notifier_service.app import create_app
from notifier_service.config import Settings


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"notifier-service: {exc}")
    configure_logging(service="notifier", level=settings.common.log_level, fmt=settings.common.log_format)

    async def factory():  # type: ignore[no-untyped-def]
        return create_app(settings)

    serve(factory, host=settings.common.http_host, port=settings.common.http_port)


if __name__ == "__main__":
    main()
