"""`portal-admin create-admin --email E --name N`: bootstrap an MSP admin and print a one-time set-password link.

Reads DATABASE_URL (the profile role's) and PORTAL_BASE_URL (default http://localhost:8080).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from profile_service.bootstrap import AlreadyExists, create_admin
from profile_service.validation import FieldError, clean_email, clean_name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="portal-admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create an MSP admin and print a set-password link")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    args = parser.parse_args(argv)

    database_url = os.environ.get("DATABASE_URL", "").strip()
    if not database_url:
        sys.exit("portal-admin: required setting DATABASE_URL is not set")
    base_url = os.environ.get("PORTAL_BASE_URL", "http://localhost:8080").strip().rstrip("/")
    try:
        email, name = clean_email(args.email), clean_name(args.name)
    except FieldError as exc:
        sys.exit(f"portal-admin: {exc}")
    try:
        url = asyncio.run(create_admin(database_url, email=email, name=name, base_url=base_url))
    except AlreadyExists:
        sys.exit(f"portal-admin: an account with the email address {email} already exists")
    print(f"Created MSP admin {email}.")
    print(f"Set the password within 3 days (the link works once): {url}")


if __name__ == "__main__":
    main()
