"""Serves the OpenAPI 3.1 description of the public API (openapi.json beside this module)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"


@cache
def document() -> dict[str, Any]:
    return json.loads(OPENAPI_FILE.read_text())


async def serve_openapi(_: web.Request) -> web.Response:
    return web.Response(text=json.dumps(document()), content_type="application/json")
