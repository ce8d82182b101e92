"""`make up`: start the whole stack on loopback with its data under var/, run until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from portal_devstack.process import StartError
from portal_devstack.stack import REPO, LocalStack, Ports


def main() -> None:
    smtp_external = bool(os.environ.get("SMTP_HOST") or os.environ.get("SMTP_PORT"))
    ports = Ports(gateway=int(os.environ.get("GATEWAY_PORT", "8080")))
    if smtp_external:
        ports.smtp = int(os.environ.get("SMTP_PORT", "25"))
    stack = LocalStack(
        var=Path(os.environ.get("PORTAL_VAR_DIR", REPO / "var")),
        ports=ports,
        smtp_host=os.environ.get("SMTP_HOST", "127.0.0.1") if smtp_external else None,
        demo_password=os.environ.get("DEMO_PASSWORD") or None,
        log_format=os.environ.get("LOG_FORMAT", "console"),
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print("Starting PostgreSQL, RabbitMQ, the mail sink, the services and nginx (logs in var/log/) ...",
              flush=True)
        stack.start()
    except StartError as exc:
        print(f"\nmake up: {exc}", file=sys.stderr)
        stack.stop()
        sys.exit(1)
    except BaseException:
        stack.stop()
        raise

    print(f"\nPortal: {stack.base_url}/portal/")
    print("Demo logins: admin@msp.example (MSP admin) and demo@client.example (client user)")
    if stack.generated_demo_password:
        print(f"Demo password (generated at this first start; set DEMO_PASSWORD to choose one): "
              f"{stack.demo_password}")
    elif stack.demo_password:
        print("Demo password: the value of DEMO_PASSWORD")
    else:
        print("Demo password: as printed at the first start (set DEMO_PASSWORD to reset it)")
    print(f"RabbitMQ management: http://127.0.0.1:{stack.ports.amqp_management}/ (guest/guest, loopback only)")
    if not smtp_external:
        print(f"Emails are saved under {stack.mail_dir}/")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while not stop.wait(1):
            dead = [c.name for c in stack.children if not c.running()]
            if dead:
                print(f"make up: {', '.join(dead)} stopped unexpectedly; see var/log/", file=sys.stderr)
                break
    finally:
        print("\nStopping ...", flush=True)
        stack.stop()
        print("Stopped.")


if __name__ == "__main__":
    main()
