"""The nginx gateway on a loopback port, configured from deploy/nginx/, serving the built portal UI.

`LocalNginx(...).start()` builds the UI (content-hashed asset directory), renders the local main file
deploy/nginx/nginx.local.conf.template into PREFIX/conf/nginx.conf beside copies of the routes every
deployment shares (SHARED_CONFIG), and runs `nginx -p PREFIX -c conf/nginx.conf -e PREFIX/error.log
-g 'daemon off;'` with every temp path under the prefix. `python -m portal_devstack.nginx build-ui OUT`
builds the UI alone (the gateway image does).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from portal_devstack.process import Child, StartError, require_free_port, spawn, tcp_open, wait_until

REPO = Path(__file__).resolve().parents[3]
NGINX_DIR = REPO / "deploy" / "nginx"
UI_PAGES = ("login", "profile", "forgot-password", "reset-password", "accept-invite", "not-me", "forbidden")
# ui/admin/<page>.html -> portal/admin/<page>.html, served to msp_admin sessions only (routes.conf).
ADMIN_PAGES = ("index", "client", "user")
# Included by every deployment's main file (nginx.local.conf.template, nginx.compose.conf, nginx.k8s.conf).
SHARED_CONFIG = ("http.conf", "routes.conf", "security-headers.conf")
ASSETS_PLACEHOLDER = "{{ASSETS}}"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise StartError("gateway (nginx): no nginx binary on PATH or at /usr/sbin/nginx (install nginx)")
    return found


def assets_hash(ui_root: Path) -> str:
    """One content hash over every asset (path and bytes): it names the versioned asset directory."""
    digest = hashlib.sha256()
    assets = ui_root / "assets"
    for path in sorted(p for p in assets.rglob("*") if p.is_file()):
        digest.update(path.relative_to(assets).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def build_ui(ui_root: Path, html_root: Path) -> str:
    """Write the served tree: html_root/portal/<page>.html, portal/admin/<page>.html (those of ui/admin/
    that exist) and portal/assets/<hash>/...

    Pages reference assets through `{{ASSETS}}`, replaced by `/portal/assets/<hash>`; the asset
    directory changes name whenever any asset changes, so it can be cached forever. Returns the hash.
    """
    version = assets_hash(ui_root)
    html_root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".html-", dir=html_root.parent))
    portal = staging / "portal"
    shutil.copytree(ui_root / "assets", portal / "assets" / version)
    for page in UI_PAGES:
        _write_page(ui_root / "pages" / f"{page}.html", portal / f"{page}.html", version)
    for page in ADMIN_PAGES:
        source = ui_root / "admin" / f"{page}.html"
        if source.is_file():  # the admin pages are optional: without them the gateway answers 403/404
            _write_page(source, portal / "admin" / f"{page}.html", version)
    _make_readable(staging)
    if html_root.exists():
        shutil.rmtree(html_root)
    staging.rename(html_root)
    return version


def _write_page(source: Path, target: Path, version: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    text = source.read_text(encoding="utf-8").replace(ASSETS_PLACEHOLDER, f"/portal/assets/{version}")
    target.write_text(text, encoding="utf-8")


def _make_readable(root: Path) -> None:
    # nginx workers may run as another user: the served tree must be world-readable.
    for directory, _dirs, files in os.walk(root):
        os.chmod(directory, 0o755)  # noqa: S103 (static files, served read-only)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)


def upstream_servers(addresses: str | Sequence[str]) -> str:
    """The `server` lines of one upstream block: one per address (a replica), in the given order.

    A single address is either a string or a one-item list; several are balanced round robin by nginx.
    """
    listed = [addresses] if isinstance(addresses, str) else list(addresses)
    if not listed or any(not a or any(c.isspace() or c in ";{}" for c in a) for a in listed):
        raise ValueError(f"an upstream needs at least one address of the form host:port, got {addresses!r}")
    return "\n        ".join(f"server {address} max_fails=0;" for address in listed)


def render_config(*, prefix: Path, listen: str, profile_addr: str | Sequence[str], mfa_addr: str | Sequence[str],
                  notifier_addr: str | Sequence[str], html_root: Path, access_log: str, error_log: str = "stderr",
                  worker_processes: str = "1", user: str | None = None) -> Path:
    """Render the local main file into prefix/conf/nginx.conf beside the shared files; returns its path.

    Each `*_addr` is one `host:port` or a list of them (the service's replicas, balanced round robin).
    Temp and pid paths are under prefix.
    """
    conf = prefix / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
    values = {
        "USER_DIRECTIVE": f"user {user};" if user else "",
        "WORKER_PROCESSES": worker_processes,
        "PREFIX": str(prefix),
        "ERROR_LOG": error_log,
        "ACCESS_LOG": access_log,
        "PROFILE_SERVERS": upstream_servers(profile_addr),
        "MFA_SERVERS": upstream_servers(mfa_addr),
        "NOTIFIER_SERVERS": upstream_servers(notifier_addr),
        "LISTEN": listen,
        "HTML_ROOT": str(html_root),
    }
    text = (NGINX_DIR / "nginx.local.conf.template").read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise ValueError(f"unrendered placeholder in nginx.local.conf.template near: {text[text.index('{{'):][:40]}")
    (conf / "nginx.conf").write_text(text)
    for name in SHARED_CONFIG:
        shutil.copyfile(NGINX_DIR / name, conf / name)
    return conf / "nginx.conf"


@dataclass
class LocalNginx:
    prefix: Path
    port: int
    profile_port: int
    mfa_port: int
    ui_root: Path
    log_path: Path
    notifier_port: int = 8103
    host: str = "127.0.0.1"
    # Several replicas behind one upstream: when set, the full list of that service's ports (the single
    # `*_port` above is then not used); None means the one `*_port`.
    profile_ports: list[int] | None = None
    mfa_ports: list[int] | None = None
    notifier_ports: list[int] | None = None
    child: Child | None = field(default=None, init=False)
    assets_version: str | None = field(default=None, init=False)

    @property
    def access_log_path(self) -> Path:
        """JSON lines, one per request, with its request id."""
        return self.log_path.with_name(f"{self.log_path.stem}-access.log")

    def upstream_ports(self, service: str) -> list[int]:
        """The ports nginx balances `service` ("profile", "mfa" or "notifier") over."""
        ports: list[int] | None = getattr(self, f"{service}_ports")
        return list(ports) if ports else [getattr(self, f"{service}_port")]

    @property
    def html_root(self) -> Path:
        return self.prefix / "html"

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self, timeout: float = 15) -> None:
        require_free_port("gateway (nginx)", self.port)
        binary = nginx_binary()
        self.prefix = self.prefix.resolve()
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.assets_version = build_ui(self.ui_root, self.html_root)
        except OSError as exc:
            raise StartError(f"gateway (nginx): building the UI from {self.ui_root} failed: {exc}") from exc
        render_config(
            prefix=self.prefix, listen=f"{self.host}:{self.port}",
            profile_addr=[f"127.0.0.1:{p}" for p in self.upstream_ports("profile")],
            mfa_addr=[f"127.0.0.1:{p}" for p in self.upstream_ports("mfa")],
            notifier_addr=[f"127.0.0.1:{p}" for p in self.upstream_ports("notifier")], html_root=self.html_root,
            access_log=str(self.access_log_path), error_log="stderr",
            # As root, nginx would switch its workers to `nobody`, who cannot enter private temp dirs.
            user="root" if os.geteuid() == 0 else None,
        )
        self.child = spawn("gateway (nginx)", [binary, "-p", f"{self.prefix}/", "-c", "conf/nginx.conf",
                                               "-e", str(self.prefix / "error.log"), "-g", "daemon off;"],
                           log_path=self.log_path, stop_signal=signal.SIGQUIT)
        wait_until(self.child, lambda: tcp_open(self.port), timeout=timeout, what=f"port {self.port}")

    def stop(self) -> None:
        if self.child:
            self.child.stop(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m portal_devstack.nginx", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build-ui", help="build the served UI tree (content-hashed assets) into OUT")
    build.add_argument("out", type=Path)
    build.add_argument("--ui-root", type=Path, default=REPO / "ui")
    args = parser.parse_args(argv)
    print(build_ui(args.ui_root, args.out))


if __name__ == "__main__":
    main()
