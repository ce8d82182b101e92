"""`python -m notifier_service`: serve until SIGTERM; `python -m notifier_service jobs ...`: operator commands."""

from __future__ import annotations

import sys

from aiohttp import web
from portal_shared.config import SettingsError
from portal_shared.logging import configure_logging
from portal_shared.runtime import serve

from notifier_service.app import create_app
from notifier_service.config import Settings


def main() -> None:
    if len(sys.argv) > 1:
        from notifier_service import cli

        sys.exit(cli.main(sys.argv[1:]))
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"notifier-service: {exc}")
    configure_logging(service="notifier", level=settings.common.log_level, fmt=settings.common.log_format)

    async def factory() -> web.Application:
        return create_app(settings)

    serve(factory, host=settings.common.http_host, port=settings.common.http_port)


if __name__ == "__main__":
    main()
