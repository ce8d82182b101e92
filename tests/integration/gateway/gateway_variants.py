"""Each deployment's gateway (local, compose, k8s main file over the shared routes) run as real nginx on
loopback, in front of small real aiohttp stand-ins for the services.

The local variant is rendered by the stack's own code (portal_devstack.nginx.render_config). The compose
and Kubernetes main files are copied with only what cannot work on a test machine rewritten (service
host names, the listen port, the UI root, /tmp and /dev/std* paths), each rewrite required to match
exactly once; the shared files (SHARED_CONFIG) are copied byte for byte. So a difference in answers
between variants is a difference between the deployments' main files.
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from portal_devstack.nginx import NGINX_DIR, SHARED_CONFIG, build_ui, nginx_binary, render_config
from portal_devstack.process import Child, free_port, spawn, tcp_open, wait_until

from tests.e2e.stubs import NAME

VARIANTS = ("local", "compose", "k8s")
SERVICES = {"profile": 8101, "mfa": 8102, "notifier": 8103}
ADMIN_SESSION = "admin-session"
CLIENT_SESSION = "client-session"
IDENTITY = "identity-of-the-session"
ROLES = {ADMIN_SESSION: "msp_admin", CLIENT_SESSION: "client_user"}
ADMIN_PAGE_MARK = "stand-in admin page"


def _role_of(request: web.Request) -> str | None:
    for session, role in ROLES.items():
        if f"portal_session={session}" in request.headers.get("Cookie", ""):
            return role
    return None


async def _internal_auth(request: web.Request) -> web.Response:
    """profile's answer to the gateway's auth_request (since 37abc85: with the person's own role)."""
    role = _role_of(request)
    if role is None:
        return web.json_response({"status": 401, "detail": "not signed in"}, status=401)
    if request.headers.get("X-Original-Method") in {"POST", "PUT", "PATCH", "DELETE"} \
            and request.headers.get("X-CSRF-Token") != "good-csrf":
        return web.json_response({"status": 403, "detail": "bad csrf"}, status=403)
    return web.Response(status=204, headers={"X-Portal-Identity": IDENTITY, "X-Portal-Role": role})


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    # X-Portal-Role and X-Portal-Identity on an answer: the gateway must never show them to the client.
    return web.json_response({"service": request.app[NAME], "method": request.method, "path": request.path,
                              "headers": dict(request.headers), "body_length": len(body)},
                             headers={"X-Portal-Role": "msp_admin", "X-Portal-Identity": "leaked"})


async def _ready(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def stand_in(name: str) -> web.Application:
    """A service stand-in: /health/ready, profile's GET /internal/auth, and an echo of anything else."""
    app = web.Application(client_max_size=1024**2)
    app[NAME] = name
    app.router.add_get("/health/ready", _ready)
    if name == "profile":
        app.router.add_get("/internal/auth", _internal_auth)
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


def ui_with_admin_pages(target: Path) -> Path:
    """A copy of ui/ with stand-in admin pages (the real ones are another engineer's work in progress)."""
    source = Path(__file__).resolve().parents[3] / "ui"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("admin"))
    (target / "admin").mkdir()
    for page in ("index", "client", "user"):
        (target / "admin" / f"{page}.html").write_text(
            f'<!doctype html><html lang="en"><head><title>{page}</title>'
            f'<link rel="stylesheet" href="{{{{ASSETS}}}}/css/portal.css"></head>'
            f"<body><main><h1>{ADMIN_PAGE_MARK}: {page}</h1></main></body></html>\n")
    return target


def _rewrite(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once in the main file, found it {text.count(old)} times"
    return text.replace(old, new)


@dataclass
class VariantGateway:
    """One deployment's nginx on a loopback port."""

    variant: str
    prefix: Path
    port: int
    child: Child

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def stop(self) -> None:
        self.child.stop(timeout=10)


def _deployment_main(variant: str, prefix: Path, *, port: int, upstreams: dict[str, int], html: Path) -> Path:
    """nginx.<variant>.conf under prefix/conf with the shared files, paths pointed at the test's."""
    conf = prefix / "conf"
    conf.mkdir(parents=True)
    text = (NGINX_DIR / f"nginx.{variant}.conf").read_text().replace("/tmp/", f"{prefix}/tmp/")
    for service, default_port in SERVICES.items():
        text = _rewrite(text, f"server {service}:{default_port} ", f"server 127.0.0.1:{upstreams[service]} ")
    text = _rewrite(text, "listen 8080 default_server;", f"listen 127.0.0.1:{port} default_server;")
    text = _rewrite(text, "root /usr/share/portal/html;", f"root {html};")
    text = _rewrite(text, "access_log /dev/stdout", f"access_log {prefix}/access.log")
    text = _rewrite(text, "error_log /dev/stderr", f"error_log {prefix}/error.log")
    if os.geteuid() == 0:
        text = "user root;\n" + text  # else workers run as nobody, who cannot enter pytest's tmp dirs
    (conf / "nginx.conf").write_text(text)
    for name in SHARED_CONFIG:
        shutil.copyfile(NGINX_DIR / name, conf / name)
    return conf / "nginx.conf"


def start_variant(variant: str, workdir: Path, *, upstreams: dict[str, int], ui_root: Path) -> VariantGateway:
    """Build the UI and start the variant's nginx; upstreams maps each service to a loopback port."""
    prefix = workdir / f"nginx-{variant}"
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
    html = prefix / "html"
    build_ui(ui_root, html)
    port = free_port()
    if variant == "local":
        main = render_config(prefix=prefix, listen=f"127.0.0.1:{port}",
                             profile_addr=f"127.0.0.1:{upstreams['profile']}",
                             mfa_addr=f"127.0.0.1:{upstreams['mfa']}",
                             notifier_addr=f"127.0.0.1:{upstreams['notifier']}", html_root=html,
                             access_log=str(prefix / "access.log"), error_log=str(prefix / "error.log"),
                             user="root" if os.geteuid() == 0 else None)
    else:
        main = _deployment_main(variant, prefix, port=port, upstreams=upstreams, html=html)
    child = spawn(f"gateway ({variant})", [nginx_binary(), "-p", f"{prefix}/", "-c", str(main),
                                           "-e", str(prefix / "error.log"), "-g", "daemon off;"],
                  log_path=prefix / "nginx.log", stop_signal=signal.SIGQUIT)
    wait_until(child, lambda: tcp_open(port), timeout=15, what=f"port {port}")
    return VariantGateway(variant, prefix, port, child)
