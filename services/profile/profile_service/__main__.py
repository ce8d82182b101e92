"""`python -m profile_service` serves; `python -m profile_service seed-demo` creates the demo data (make up)."""

from __future__ import annotations

import asyncio
import os
import sys

from portal_shared.service_main import serve_service

from profile_service.app import create_app
from profile_service.bootstrap import DEMO_ADMIN, DEMO_USER, seed_demo
from profile_service.config import Settings


def serve_forever() -> None:
    serve_service("profile", Settings.from_env, create_app)


def seed() -> None:
    """Reads DATABASE_URL and DEMO_PASSWORD (when set, both demo accounts get it at every run)."""
    database_url = os.environ.get("DATABASE_URL", "").strip()
    if not database_url:
        sys.exit("profile-service seed-demo: required setting DATABASE_URL is not set")
    report = asyncio.run(seed_demo(database_url, password=os.environ.get("DEMO_PASSWORD") or None))
    for email in report.created:
        print(f"created {email}")
    print(f"demo accounts: {DEMO_ADMIN['email']} (MSP admin), {DEMO_USER['email']} (client user)"
          + ("; password set from DEMO_PASSWORD" if report.passwords_set else ""))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        serve_forever()
    elif args == ["seed-demo"]:
        seed()
    else:
        sys.exit("usage: python -m profile_service [seed-demo]")


if __name__ == "__main__":
    main()
