"""/health/live, /health/ready and /metrics: ready only when every dependency answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from portal_shared.web import json_response

Check = Callable[[], Awaitable[None]]
READINESS_TIMEOUT_SECONDS = 2.0


def add_health_routes(app: web.Application, checks: dict[str, Check]) -> None:
    async def live(_: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        results = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), READINESS_TIMEOUT_SECONDS)
                results[name] = "ok"
            except Exception as exc:  # any failure means not ready; the reason helps the operator
                results[name] = f"failing: {type(exc).__name__}"
        ok = all(v == "ok" for v in results.values())
        return json_response({"status": "ok" if ok else "unavailable", "checks": results},
                             status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
