"""The local mail sink of `make up`: an SMTP server on loopback that keeps each message as a file.

`python -m portal_devstack.mailsink --port 1025 --dir var/mail`
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class FileHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self._count += 1
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{self._count:05d}.eml"
        content = envelope.original_content or envelope.content or b""
        header = f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        path = self.directory / name
        path.write_bytes(header + (content if isinstance(content, bytes) else content.encode()))
        print(f"mail for {', '.join(envelope.rcpt_tos)} saved as {path}", flush=True)
        return "250 Message accepted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"))
    args = parser.parse_args()
    controller = Controller(FileHandler(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"mail sink listening on 127.0.0.1:{args.port}, saving to {args.dir}", flush=True)

    async def wait_for_signal() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    asyncio.run(wait_for_signal())
    controller.stop()


if __name__ == "__main__":
    main()
