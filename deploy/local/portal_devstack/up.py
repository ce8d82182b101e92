"""`make up`: start the whole stack on loopback with its data under var/, run until Ctrl-C or SIGTERM.

Besides the documented variables (GATEWAY_PORT, DEMO_PASSWORD, SMTP_HOST/SMTP_PORT), PORTAL_VAR_DIR
moves the data directory and PORTAL_DEVSTACK_PORTS (a JSON object of `Ports` fields, e.g.
`{"postgres": 15432}`) moves the other ports: the tests use both to run `make up` beside another stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
from pathlib import Path

from portal_devstack.process import StartError
from portal_devstack.stack import REPO, LocalStack, Ports

# SIGHUP too: closing the terminal sends it to the foreground group, and the default action would kill
# us and leave every component (each in its own session) running.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """Notices SIGINT/SIGTERM/SIGHUP without running anything that takes a lock in the signal path.

    Why (issue #13): the handler used to call `threading.Event.set()` while the main thread slept in
    `Event.wait(1)`. Both take the Event's Condition lock, a plain non-reentrant `threading.Lock`.
    `kill -TERM -- -PGID` (and Ctrl-C) reaches this process twice about 0.1 ms apart: once directly and
    once forwarded by `uv run` (make waits for uv, uv for us). CPython runs a Python signal handler
    between bytecodes of the main thread, so the second handler can run *inside* the first one's
    `Event.set()` (or inside `Event.wait()` while it re-takes the lock after a timeout), and its own
    `set()` then blocks forever on a lock its thread already holds. The loop never ends, nothing prints
    "Stopping ...", and make and uv wait on us forever with every component still running (a py-spy dump
    shows `Condition.__enter__ <- Event.set <- <lambda> <- Condition.notify_all <- Event.set <- <lambda>
    <- Condition.wait <- Event.wait`).

    Now the Python-level handler only appends to a list (one C call, no lock, safe to nest), the C-level
    handler writes a byte into a non-blocking pipe (`signal.set_wakeup_fd`), and `wait()` is a `select()`
    on that pipe: any number of signals, arriving at any moment, only make the pipe readable. (A Python
    handler rather than SIG_IGN: ignored dispositions would be inherited by the children we exec.)
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)  # set_wakeup_fd requires it: a signal must never block
        self.received: list[int] = []

    def install(self) -> StopSignals:
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._record)
        return self

    def _record(self, signum: int, frame: object) -> None:
        # Nothing here may take a lock, print or raise: it can run nested inside itself or inside stop().
        self.received.append(signum)

    def wait(self, timeout: float) -> bool:
        """True once a stop signal has arrived (now or before); else after `timeout` seconds, False."""
        if not self.received:
            # PEP 475: select() is retried after EINTR, and returns as soon as the pipe is readable.
            select.select([self._read_fd], [], [], timeout)
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read_fd, 512):
                    pass
        # A signal that made select() return before its Python handler ran is seen on the next call.
        return bool(self.received)


def _say(message: str, *, err: bool = False) -> None:
    """Print without ever raising: with the terminal gone (SIGHUP, a closed pipe), stop must still run."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr if err else sys.stdout, flush=True)


def ports_from_env() -> Ports:
    ports = Ports(**json.loads(os.environ.get("PORTAL_DEVSTACK_PORTS") or "{}"))
    if os.environ.get("GATEWAY_PORT"):
        ports.gateway = int(os.environ["GATEWAY_PORT"])
    return ports


def main() -> None:
    # First thing: from here on a stop signal is noticed; before it no component has been started.
    signals = StopSignals().install()
    smtp_external = bool(os.environ.get("SMTP_HOST") or os.environ.get("SMTP_PORT"))
    ports = ports_from_env()
    if smtp_external:
        ports.smtp = int(os.environ.get("SMTP_PORT", "25"))
    stack = LocalStack(
        var=Path(os.environ.get("PORTAL_VAR_DIR", REPO / "var")),
        ports=ports,
        smtp_host=os.environ.get("SMTP_HOST", "127.0.0.1") if smtp_external else None,
        demo_password=os.environ.get("DEMO_PASSWORD") or None,
        log_format=os.environ.get("LOG_FORMAT", "console"),
    )
    try:
        _say("Starting PostgreSQL, RabbitMQ, the mail sink, the services and nginx (logs in var/log/) ...")
        # A signal during start is kept in the pipe and answered as soon as start returns.
        stack.start()
    except StartError as exc:
        _say(f"\nmake up: {exc}", err=True)
        stack.stop()
        sys.exit(1)
    except BaseException:
        stack.stop()
        raise

    try:
        _say(f"\nPortal: {stack.base_url}/portal/")
        _say("Demo logins: admin@msp.example (MSP admin) and demo@client.example (client user)")
        if stack.generated_demo_password:
            _say(f"Demo password (generated at this first start; set DEMO_PASSWORD to choose one): "
                 f"{stack.demo_password}")
        elif stack.demo_password:
            _say("Demo password: the value of DEMO_PASSWORD")
        else:
            _say("Demo password: as printed at the first start (set DEMO_PASSWORD to reset it)")
        _say(f"RabbitMQ management: http://127.0.0.1:{stack.ports.amqp_management}/ (guest/guest, loopback only)")
        if not smtp_external:
            _say(f"Emails are saved under {stack.mail_dir}/")
        _say("Press Ctrl-C to stop.")
        while not signals.wait(1):
            dead = [c.name for c in stack.children if not c.running()]
            if dead:
                _say(f"make up: {', '.join(dead)} stopped unexpectedly; see var/log/", err=True)
                break
    finally:
        _say("\nStopping ...")
        stack.stop()
        _say("Stopped.")


if __name__ == "__main__":
    main()
