"""The nginx gateway on a loopback port, configured from deploy/nginx/, serving the built portal UI.

`LocalNginx(...).start()` builds the UI (content-hashed asset directory), renders
deploy/nginx/nginx.conf.template into PREFIX/conf/nginx.conf, and runs
`nginx -p PREFIX -c conf/nginx.conf -e PREFIX/error.log -g 'daemon off;'` with every temp path under
the prefix. `python -m portal_devstack.nginx build-ui OUT` and `... render-config ...` do the same
steps for other deployments (e.g. a container image).
"""

from __future__ import annotations

import argparse
import hashlib
import math
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
UI_PAGES = ("login", "profile", "forgot-password", "reset-password", "accept-invite", "not-me")
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
    """Write the served tree: html_root/portal/<page>.html and html_root/portal/assets/<hash>/...

    Pages reference assets through `{{ASSETS}}`, replaced by `/portal/assets/<hash>`; the asset
    directory changes name whenever any asset changes, so it can be cached forever. Returns the hash.
    """
    version = assets_hash(ui_root)
    html_root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".html-", dir=html_root.parent))
    portal = staging / "portal"
    shutil.copytree(ui_root / "assets", portal / "assets" / version)
    for page in UI_PAGES:
        source = ui_root / "pages" / f"{page}.html"
        text = source.read_text(encoding="utf-8").replace(ASSETS_PLACEHOLDER, f"/portal/assets/{version}")
        (portal / f"{page}.html").write_text(text, encoding="utf-8")
    _make_readable(staging)
    if html_root.exists():
        shutil.rmtree(html_root)
    staging.rename(html_root)
    return version


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
                  auth_rate_per_minute: int = 600, auth_burst: int = 300, worker_processes: str = "1",
                  user: str | None = None) -> None:
    """Render the template and its includes into prefix/conf/ (temp and pid paths under prefix).

    Each `*_addr` is one `host:port` or a list of them (the service's replicas, balanced round robin).
    """
    conf = prefix / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
    if auth_rate_per_minute < 1 or auth_burst < 0:
        raise ValueError("auth_rate_per_minute must be >= 1 and auth_burst >= 0")
    values = {
        "USER_DIRECTIVE": f"user {user};" if user else "",
        "WORKER_PROCESSES": worker_processes,
        "PREFIX": str(prefix),
        "CONF_DIR": str(conf),
        "ERROR_LOG": error_log,
        "ACCESS_LOG": access_log,
        "AUTH_RATE": str(auth_rate_per_minute),
        "AUTH_BURST": str(auth_burst),
        "RETRY_AFTER": str(max(1, math.ceil(60 / auth_rate_per_minute))),
        "PROFILE_SERVERS": upstream_servers(profile_addr),
        "MFA_SERVERS": upstream_servers(mfa_addr),
        "NOTIFIER_SERVERS": upstream_servers(notifier_addr),
        "LISTEN": listen,
        "HTML_ROOT": str(html_root),
    }
    text = (NGINX_DIR / "nginx.conf.template").read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise ValueError(f"unrendered placeholder in nginx.conf.template near: {text[text.index('{{'):][:40]}")
    (conf / "nginx.conf").write_text(text)
    for include in ("security-headers.conf", "proxy-headers.conf"):
        shutil.copyfile(NGINX_DIR / include, conf / include)


@dataclass
class LocalNginx:
    prefix: Path
    port: int
    profile_port: int
    mfa_port: int
    ui_root: Path
    log_path: Path
    notifier_port: int = 8103
    auth_rate_per_minute: int = 600  # per client IP on /api/auth/* (contract: at least 300)
    auth_burst: int = 300  # any 300 requests at once pass; beyond, the rate refills the bucket
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
            auth_rate_per_minute=self.auth_rate_per_minute, auth_burst=self.auth_burst,
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
    render = sub.add_parser("render-config", help="render nginx.conf and its includes into PREFIX/conf/")
    render.add_argument("prefix", type=Path)
    render.add_argument("--listen", default="0.0.0.0:8080")
    render.add_argument("--profile", default="profile:8101", help="host:port, or several comma-separated")
    render.add_argument("--mfa", default="mfa:8102", help="host:port, or several comma-separated")
    render.add_argument("--notifier", default="notifier:8103", help="host:port, or several comma-separated")
    render.add_argument("--html-root", type=Path, default=Path("/usr/share/portal/html"))
    render.add_argument("--access-log", default="/dev/stdout")
    render.add_argument("--error-log", default="stderr")
    render.add_argument("--workers", default="auto")
    args = parser.parse_args(argv)
    if args.command == "build-ui":
        print(build_ui(args.ui_root, args.out))
    else:
        render_config(prefix=args.prefix, listen=args.listen, profile_addr=args.profile.split(","),
                      mfa_addr=args.mfa.split(","), notifier_addr=args.notifier.split(","),
                      html_root=args.html_root, access_log=args.access_log,
                      error_log=args.error_log, worker_processes=args.workers)
        print(args.prefix / "conf" / "nginx.conf")


if __name__ == "__main__":
    main()
