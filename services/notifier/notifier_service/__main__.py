"""`python -m notifier_service`: serve until SIGTERM; `python -m notifier_service jobs ...`: operator commands."""

from __future__ import annotations

import sys

from portal_shared.service_main import serve_service

from notifier_service.app import create_app
from notifier_service.config import Settings


def main() -> None:
    if len(sys.argv) > 1:
        from notifier_service import cli

        sys.exit(cli.main(sys.argv[1:]))
    serve_service("notifier", Settings.from_env, create_app)


if __name__ == "__main__":
    main()
