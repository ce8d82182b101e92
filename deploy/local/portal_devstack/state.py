"""Where a `make up` stack's data lives and how to reach its database from outside the stack.

`make up` keeps everything under var/ (or PORTAL_VAR_DIR): secrets.json (the service roles' passwords,
mode 0600), postgres/data, and stack.json, written at every start, saying where the stack listens.
Tools run next to it (`uv run portal-admin ...`) use this module to find that database without
DATABASE_URL: the running stack's server when there is one, else the same data directory served by a
temporary PostgreSQL for as long as the tool needs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from portal_shared.db_bootstrap import SERVICE_SCHEMAS, dsn_for

from portal_devstack.postgres import LocalPostgres
from portal_devstack.process import StartError, free_port, tcp_open

DATABASE = "portal"  # the one database of the stack, a schema per service
STATE_FILE = "stack.json"
SECRETS_FILE = "secrets.json"


class NoStack(RuntimeError):
    """No stack data where we looked, or its database cannot be reached; the message says what to do."""


@dataclass(frozen=True)
class StackState:
    postgres_port: int
    base_url: str  # the gateway's origin: where links printed by tools must point
    database: str = DATABASE
    mfa_url: str | None = None  # mfa's internal base URL (portal-admin resets an admin's two-factor there)


def write_state(var: Path, state: StackState) -> None:
    path = var / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)  # readers never see half a file


def read_state(var: Path) -> StackState | None:
    try:
        return StackState(**json.loads((var / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def service_auth_key(var: Path) -> str | None:
    """The stack's SERVICE_AUTH_KEY (signs service-to-service calls), from secrets.json."""
    try:
        value = json.loads((var / SECRETS_FILE).read_text()).get("SERVICE_AUTH_KEY")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def find_var_dir(start: Path | None = None) -> Path | None:
    """PORTAL_VAR_DIR when set (as for make up), else the nearest `var/` with stack secrets at or above `start`."""
    if os.environ.get("PORTAL_VAR_DIR"):
        var = Path(os.environ["PORTAL_VAR_DIR"])
        return var if (var / SECRETS_FILE).exists() else None
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "var" / SECRETS_FILE).exists():
            return directory / "var"
    return None


def running_postgres_port(data_dir: Path) -> int | None:
    """The port of the live server on `data_dir`, from its postmaster.pid (pid on line 1, port on line 4).

    PostgreSQL's own lock file rather than stack.json: it exists exactly while a server owns the data,
    even when make up was killed without cleaning up.
    """
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # a stale lock file after a crash: PostgreSQL itself will replace it
    except PermissionError:
        pass  # alive, another user's
    return port if tcp_open(port) else None


@contextlib.contextmanager
def service_database_url(service: str, var: Path, *,
                         on_temporary_start: Callable[[], None] | None = None) -> Iterator[str]:
    """The DSN of `service`'s own role on the stack's database under `var`, valid inside the `with`.

    While the stack runs, its PostgreSQL; when it does not, PostgreSQL is started on the same data on a
    free loopback port (never the stack's, so a `make up` started meanwhile reports the data directory as
    in use rather than a port clash) and stopped at the end of the `with`.
    """
    try:
        secrets = json.loads((var / SECRETS_FILE).read_text())
        password = secrets[f"{service.upper()}_DB_PASSWORD"]
        role = SERVICE_SCHEMAS[service]
    except (OSError, ValueError, KeyError) as exc:
        raise NoStack(f"{var / SECRETS_FILE} has no password for the {service} role ({exc})") from exc
    state = read_state(var)
    database = state.database if state else DATABASE
    data_dir = var / "postgres" / "data"

    def url(port: int) -> str:
        return dsn_for(f"postgresql://127.0.0.1:{port}/", user=role, password=password, database=database)

    port = running_postgres_port(data_dir)
    if port is not None:
        yield url(port)
        return
    if not (data_dir / "PG_VERSION").exists():
        raise NoStack(f"{var} has no PostgreSQL data yet; start the stack once with `make up`")
    if on_temporary_start:
        on_temporary_start()
    postgres = LocalPostgres(data_dir, free_port(), var / "log" / "postgres-tool.log")
    with _stop_signals_raise():
        try:
            postgres.start()
        except StartError as exc:
            postgres.stop()
            raise NoStack(f"the stack is not running and its PostgreSQL could not be started from {data_dir}: "
                          f"{exc}\nStart the stack with `make up` and run this again") from exc
        try:
            yield url(postgres.port)
        finally:
            postgres.stop()


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """SIGTERM/SIGHUP end a short tool like Ctrl-C does, by an exception, so the `finally` stopping the
    temporary server runs: killed by the default action, the tool would leave it holding the data
    directory, and the next `make up` would fail on the data directory's lock."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
