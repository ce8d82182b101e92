"""Small real aiohttp apps standing in for the services behind LocalNginx, run in a background thread.

They answer what the gateway needs (`/health/ready`, `GET /internal/auth` on profile) and echo every
other request as JSON (path, method, headers) so tests can see exactly what reached the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from portal_devstack.nginx import LocalNginx
from portal_devstack.process import free_port

REPO = Path(__file__).resolve().parents[2]
UI_ROOT = REPO / "ui"

GOOD_SESSION = "good-session"
GOOD_CSRF = "good-csrf"
IDENTITY = "identity-token-for-good-session"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
NAME = web.AppKey("name", str)
ORIGIN = web.AppKey("origin", str)
AUTH_CALLS = web.AppKey("auth_calls", list)


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"type": "about:blank", "title": "stub", "status": status, "detail": detail},
                             status=status, content_type="application/problem+json")


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "service": request.app[NAME], "method": request.method, "path": request.path,
        "query": request.query_string, "headers": dict(request.headers), "body_length": len(body),
    })


async def _ready(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def echo_app(name: str) -> web.Application:
    app = web.Application(client_max_size=1024**2)
    app[NAME] = name
    app[AUTH_CALLS] = []
    app.router.add_get("/health/ready", _ready)
    if name == "profile":
        app.router.add_get("/internal/auth", _internal_auth)
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


async def _internal_auth(request: web.Request) -> web.Response:
    """The profile service's contract for the gateway's auth_request (docs/internal-api.md)."""
    request.app[AUTH_CALLS].append(dict(request.headers))
    if f"portal_session={GOOD_SESSION}" not in request.headers.get("Cookie", ""):
        return _problem(401, "not signed in")
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.app.get(ORIGIN, origin):
        return _problem(403, "bad origin")
    if request.headers.get("X-Original-Method", "GET") in UNSAFE and request.headers.get("X-CSRF-Token") != GOOD_CSRF:
        return _problem(403, "bad csrf")
    return web.Response(status=204, headers={"X-Portal-Identity": IDENTITY})


@dataclass
class ThreadedApps:
    """aiohttp apps on loopback ports, served by an event loop in a daemon thread."""

    apps: dict[str, web.Application]
    ports: dict[str, int] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runners: dict[str, web.AppRunner] = field(default_factory=dict)

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stub-apps", daemon=True)
        self._thread.start()
        for name in self.apps:
            self.call(self._start(name))

    def call(self, coro: Any, timeout: float = 10) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self, name: str) -> None:
        runner = web.AppRunner(self.apps[name], access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.ports.get(name, 0))  # 0: the OS picks, no race
        await site.start()
        self._runners[name] = runner
        server = site._server
        assert server is not None and server.sockets
        self.ports[name] = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is None:
            return
        for runner in list(self._runners.values()):
            with contextlib.suppress(Exception):
                self.call(runner.cleanup())
        self._runners.clear()
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop.close()
        self._loop = None


@contextlib.contextmanager
def gateway_in_front_of(apps: dict[str, web.Application], workdir: Path,
                        **nginx_options: Any) -> Iterator[tuple[LocalNginx, ThreadedApps]]:
    """LocalNginx in front of the given apps (any of profile, mfa, notifier; a missing one is down)."""
    gateway_port = free_port()
    nginx: LocalNginx | None = None
    for app in apps.values():
        app[ORIGIN] = f"http://localhost:{gateway_port}"
    servers = ThreadedApps(apps)
    try:
        servers.start()
        # a service that is not given is down: its port has nothing listening
        ports = {name: servers.ports.get(name) or free_port() for name in ("profile", "mfa", "notifier")}
        nginx = LocalNginx(prefix=workdir / "nginx", port=gateway_port, profile_port=ports["profile"],
                           mfa_port=ports["mfa"], notifier_port=ports["notifier"], ui_root=UI_ROOT,
                           log_path=workdir / "nginx.log", **nginx_options)
        nginx.start()
        yield nginx, servers
    finally:
        if nginx is not None:
            nginx.stop()
        servers.stop()


def stub_apps(make: Callable[[str], web.Application] = echo_app) -> dict[str, web.Application]:
    return {name: make(name) for name in ("profile", "mfa", "notifier")}
