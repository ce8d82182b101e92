"""The R1 baseline: a bare aiohttp + asyncpg server answering GET /api/profile with profile's own query.

    python -m bench.http_bare --dsn DSN --port PORT

No middlewares, no logging, no metrics: read the session cookie, SHA-256 it, run the session-load query
profile runs for GET /api/profile (profile_service.repository.sessions._LOAD, the same text), answer the
profile JSON. Runs in its own process (its own event loop, as the real service has), with a pool of the
same size as profile's, and prints `ready` when it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json

import asyncpg
from aiohttp import web
from portal_shared.runtime import run_on_service_loop
from profile_service.repository.sessions import _LOAD  # the very SQL text of GET /api/profile


async def get_profile(request: web.Request) -> web.Response:
    raw = request.cookies.get("portal_session")
    if not raw:
        return web.Response(status=401)
    row = await request.app["pool"].fetchrow(_LOAD, hashlib.sha256(raw.encode()).digest())
    if row is None:
        return web.Response(status=401)
    client = {"id": str(row["u_client_id"]), "name": row["u_client_name"]} if row["u_client_id"] else None
    body = {"id": str(row["u_id"]), "email": row["u_email"], "name": row["u_name"],
            "initial": row["u_name"].strip()[:1].upper(), "phone": row["u_phone"], "company": client,
            "title": row["u_title"], "mobile": row["u_mobile"], "impersonator": None}
    return web.Response(text=json.dumps(body), content_type="application/json")


async def main(dsn: str, port: int) -> None:
    app = web.Application()
    app["pool"] = await asyncpg.create_pool(dsn, min_size=2, max_size=10,
                                            server_settings={"search_path": "profile"})
    app.router.add_get("/api/profile", get_profile)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_on_service_loop(main(args.dsn, args.port))
