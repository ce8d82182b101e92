"""The SMTP sink of the notifier benchmark, run as its own process: an aiosmtpd server that accepts every
message and records (Message-ID left part, accept time) instead of keeping the message.

    python -m bench.notifier_sink PORT

Driven over stdin/stdout, one command a line:
    count  -> the number of messages accepted so far
    dump   -> one JSON line {"<id>": accept time (time.time()), ...} of every message, then forgets them
    reset  -> forget every message
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time

from aiosmtpd.smtp import SMTP, Envelope, Session

_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*<([^>@\r\n]+)@")


class CountingHandler:
    def __init__(self) -> None:
        self.accepted: list[tuple[str, float]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        head = content.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(head)
        self.accepted.append((found.group(1).decode() if found else "", time.time()))
        return "250 OK"


async def main(port: int) -> None:
    handler = CountingHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.bench", decode_data=False),
                                      host="127.0.0.1", port=port)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := await reader.readline():
        command = line.decode().strip()
        if command == "count":
            print(len(handler.accepted), flush=True)
        elif command == "dump":
            accepted, handler.accepted = handler.accepted, []
            print(json.dumps(dict(accepted)), flush=True)
        elif command == "reset":
            handler.accepted = []
            print("ok", flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
