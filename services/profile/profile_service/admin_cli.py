"""`portal-admin`: the operators' tool for MSP admin accounts, which admins cannot manage among themselves.

  create-admin --email E --name N          create an admin and print a one-time set-password link
  list-admins                              the admins, with two-factor and password state
  change-admin-email --email E --new-email N
                                           move an admin's sign-in address (both addresses are emailed)
  reset-admin-two-factor --email E         remove an admin's factors and codes, end their sessions
                                           (calls mfa: MFA_URL and SERVICE_AUTH_KEY, or the stack's)

Which database: DATABASE_URL (the profile role's) when set; else, run in the repo (`uv run portal-admin`),
the `make up` stack's, found under var/ (or PORTAL_VAR_DIR), while the stack runs or after it stopped.
The link's origin: PORTAL_BASE_URL when set, else that stack's gateway, else http://localhost:8080.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from profile_service import operators
from profile_service.bootstrap import AlreadyExists, create_admin
from profile_service.mfa_client import MfaUnavailable
from profile_service.validation import FieldError, clean_email, clean_name

DEFAULT_BASE_URL = "http://localhost:8080"


class CliError(Exception):
    """Ends the command with `portal-admin: <message>` and exit status 1."""


def _stack_var_dir() -> Path | None:
    """The `make up` data directory, or None where the devstack is not installed (service images)."""
    try:
        from portal_devstack.state import find_var_dir
    except ImportError:
        return None
    return find_var_dir()


@contextlib.contextmanager
def resolve_database_url() -> Iterator[str]:
    """The profile role's DSN that every portal-admin subcommand works on, valid inside the `with`.

    `with resolve_database_url() as url: ...`. A context manager, not a plain function, because when the
    stack is stopped its PostgreSQL is started from var/ for the duration of the command and stopped
    at the end (portal_devstack.state.service_database_url). Raises CliError when there is none.
    """
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        yield url
        return
    var = _stack_var_dir()
    if var is None:
        where = (f"PORTAL_VAR_DIR ({os.environ['PORTAL_VAR_DIR']})" if os.environ.get("PORTAL_VAR_DIR")
                 else f"{Path.cwd()} or above")
        raise CliError(f"DATABASE_URL is not set, and no `make up` data (var/secrets.json) was found in {where}; "
                       f"run this in the repo once `make up` has started the stack, or set DATABASE_URL")
    # Imported here: only the repo's workspace has the devstack, and _stack_var_dir found it.
    from portal_devstack.state import NoStack, service_database_url

    def say_temporary() -> None:
        print(f"portal-admin: the stack under {var} is not running; serving its database for this command",
              file=sys.stderr, flush=True)

    try:
        with service_database_url("profile", var, on_temporary_start=say_temporary) as stack_url:
            yield stack_url
    except NoStack as exc:
        raise CliError(str(exc)) from exc


def resolve_base_url() -> str:
    """Where the links printed by portal-admin point: PORTAL_BASE_URL, else the stack's gateway."""
    configured = os.environ.get("PORTAL_BASE_URL", "").strip()
    if configured:
        return configured.rstrip("/")
    var = None if os.environ.get("DATABASE_URL", "").strip() else _stack_var_dir()
    if var is not None:
        from portal_devstack.state import read_state

        state = read_state(var)
        if state is not None:
            return state.base_url.rstrip("/")
    return DEFAULT_BASE_URL


def _create_admin(args: argparse.Namespace) -> None:
    try:
        email, name = clean_email(args.email), clean_name(args.name)
    except FieldError as exc:
        raise CliError(str(exc)) from exc
    base_url = resolve_base_url()
    with resolve_database_url() as database_url:
        try:
            url = asyncio.run(create_admin(database_url, email=email, name=name, base_url=base_url))
        except AlreadyExists as exc:
            raise CliError(f"an account with the email address {email} already exists") from exc
        except OSError as exc:  # refused, reset or timed out (TimeoutError is an OSError)
            raise CliError(f"cannot reach the database ({exc}); is the stack running (`make up`)?") from exc
    print(f"Created MSP admin {email}.")
    print(f"Set the password within 3 days (the link works once): {url}")


def resolve_mfa() -> tuple[str, str]:
    """mfa's internal URL and the service key that signs calls to it: MFA_URL and SERVICE_AUTH_KEY, else the
    running stack's (var/stack.json, var/secrets.json)."""
    url, key = os.environ.get("MFA_URL", "").strip(), os.environ.get("SERVICE_AUTH_KEY", "").strip()
    var = None if url and key else _stack_var_dir()
    if var is not None:
        from portal_devstack.state import read_state, service_auth_key

        state = read_state(var)
        url = url or (state.mfa_url if state and state.mfa_url else "")
        key = key or service_auth_key(var) or ""
    if not url or not key:
        raise CliError("set MFA_URL and SERVICE_AUTH_KEY (the mfa service's internal URL and the services' key), "
                       "or run this in the repo while `make up` runs")
    return url, key


def _address(value: str) -> str:
    try:
        return clean_email(value)
    except FieldError as exc:
        raise CliError(f"{value!r}: {exc}") from exc


def _run(action: Any) -> Any:
    try:
        return asyncio.run(action)
    except operators.NotAnAdmin as exc:
        raise CliError(f"no MSP admin has the email address {exc}") from exc
    except AlreadyExists as exc:
        raise CliError(f"an account with the email address {exc} already exists") from exc
    except MfaUnavailable as exc:
        raise CliError(f"the mfa service did not answer ({exc}); is the stack running?") from exc
    except OSError as exc:
        raise CliError(f"cannot reach the database ({exc}); is the stack running (`make up`)?") from exc


def _list_admins(_: argparse.Namespace) -> None:
    with resolve_database_url() as database_url:
        admins = _run(operators.list_admins(database_url))
    for user in admins:
        state = "two-factor on" if user.two_factor_enabled else "two-factor off"
        password = "password set" if user.password_hash else "no password yet"
        print(f"{user.email}\t{user.name}\t{state}\t{password}")


def _change_admin_email(args: argparse.Namespace) -> None:
    email, new_email = _address(args.email), _address(args.new_email)
    with resolve_database_url() as database_url:
        _run(operators.change_admin_email(database_url, email=email, new_email=new_email))
    print(f"Moved MSP admin {email} to {new_email}; both addresses are emailed.")


def _reset_admin_two_factor(args: argparse.Namespace) -> None:
    email = _address(args.email)
    mfa_url, key = resolve_mfa()
    with resolve_database_url() as database_url:
        _run(operators.reset_admin_two_factor(database_url, email=email, mfa_url=mfa_url, service_key=key))
    print(f"Removed every second factor and recovery code of {email} and ended their sessions.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="portal-admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create an MSP admin and print a set-password link")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.set_defaults(run=_create_admin)
    commands.add_parser("list-admins", help="list the MSP admins").set_defaults(run=_list_admins)
    move = commands.add_parser("change-admin-email", help="move an MSP admin's sign-in address")
    move.add_argument("--email", required=True)
    move.add_argument("--new-email", required=True)
    move.set_defaults(run=_change_admin_email)
    reset = commands.add_parser("reset-admin-two-factor", help="remove an MSP admin's second factors")
    reset.add_argument("--email", required=True)
    reset.set_defaults(run=_reset_admin_two_factor)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except CliError as exc:
        sys.exit(f"portal-admin: {exc}")


if __name__ == "__main__":
    main()
