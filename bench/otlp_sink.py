"""An OTLP/HTTP trace endpoint that accepts everything, in a process of its own (bench_tracing).

    python -m bench.otlp_sink

Prints `ready <port>` once it listens; GET /stats answers {"requests": n, "bytes": n}. Its own process so
that receiving the spans does not slow the load generator, whose event loop sets the bench's pace (a real
collector runs on other machines; its cost is not ours to measure).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from portal_devstack.process import free_port

STATS = {"requests": 0, "bytes": 0}


async def traces(request: web.Request) -> web.Response:
    STATS["requests"] += 1
    STATS["bytes"] += len(await request.read())
    return web.Response(body=b"", content_type="application/x-protobuf")


async def stats(_request: web.Request) -> web.Response:
    return web.json_response(STATS)


async def main() -> None:
    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"ready {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
