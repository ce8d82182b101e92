"""The whole stack on loopback: PostgreSQL, RabbitMQ, a mail sink, the three services and nginx.

Used by `make up` (data under var/, kept between runs) and by the end-to-end and browser tests
(a throwaway directory and random ports).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from portal_shared.db_bootstrap import bootstrap

from portal_devstack.postgres import LocalPostgres
from portal_devstack.postgres_standby import SYNCHRONOUS_PRIMARY, LocalStandby, multi_host_dsn
from portal_devstack.process import (
    Child,
    StartError,
    free_port,
    require_free_port,
    spawn,
    tcp_open,
    wait_until,
)
from portal_devstack.rabbitmq import LocalRabbitMQ
from portal_devstack.rabbitmq_cluster import LocalRabbitCluster
from portal_devstack.state import DATABASE, StackState, write_state

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]
SERVICES = ("profile", "mfa", "notifier")


@dataclass
class Ports:
    gateway: int = 8080
    postgres: int = 55432
    amqp: int = 55672
    amqp_dist: int = 55673
    epmd: int = 55674
    amqp_management: int = 55675
    profile: int = 8101
    mfa: int = 8102
    notifier: int = 8103
    smtp: int = 1025
    # Ports of the extra replicas (the 2nd, 3rd, ...) of each service when LocalStack.replicas > 1,
    # e.g. {"profile": [8111]}; the first replica is always on the port above. Missing ones are chosen
    # free at start and recorded here (so a restart with the same Ports reuses them).
    replicas: dict[str, list[int]] = field(default_factory=dict)
    # The Postgres standby's port when LocalStack.postgres_standby (0: chosen free at start).
    postgres_standby: int = 0


@dataclass
class LocalStack:
    var: Path
    ports: Ports = field(default_factory=Ports)
    smtp_host: str | None = None  # an external SMTP server; None starts the local sink
    demo_password: str | None = None
    log_format: str = "json"
    seed_demo: bool = True
    children: list[Child] = field(default_factory=list)
    postgres: LocalPostgres | None = None
    rabbitmq: LocalRabbitMQ | None = None
    nginx: object | None = None
    first_start: bool = False
    env: dict[str, str] = field(default_factory=dict)
    generated_demo_password: bool = False
    # Processes per service (profile, mfa, notifier), all on the one Postgres and RabbitMQ; nginx
    # balances the HTTP services over them. Replica 1 is "<name> service" on Ports.<name> with log
    # log/<name>.log; replica k > 1 is "<name>#k service" on Ports.replicas[name][k-2], log/<name>-k.log.
    replicas: int = 1
    # High availability (the HA tests and `make faults`; `make up` keeps one of each): RabbitMQ as a
    # cluster of this many nodes (node 1 on Ports.amqp*, `rabbitmq` is node 1, `rabbit_cluster` all of
    # them; the services get every node in AMQP_URL), and a synchronous Postgres standby (`standby`;
    # the services get a multi-host DATABASE_URL with target_session_attrs=read-write).
    rabbitmq_nodes: int = 1
    postgres_standby: bool = False
    rabbit_cluster: LocalRabbitCluster | None = None
    standby: LocalStandby | None = None
    database_urls: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.ports.gateway}"

    @property
    def mail_dir(self) -> Path:
        return self.var / "mail"

    def service_ports(self, name: str) -> list[int]:
        """The HTTP ports of every replica of service `name`, replica 1 first."""
        return [getattr(self.ports, name), *self.ports.replicas.get(name, [])][:max(self.replicas, 1)]

    def service_children(self, name: str) -> list[Child]:
        """The running processes of service `name`, replica 1 first."""
        names = [_child_name(name, k) for k in range(1, max(self.replicas, 1) + 1)]
        return [c for n in names for c in self.children if c.name == n]

    def _assign_replica_ports(self) -> None:
        for name in SERVICES:
            extra = self.ports.replicas.setdefault(name, [])
            while len(extra) < self.replicas - 1:
                extra.append(free_port())

    def secrets(self) -> dict[str, str]:
        """Generated once and kept under var/ (mode 0600), so a restart reuses the same data."""
        path = self.var / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        self.first_start = True
        values = {
            "SERVICE_AUTH_KEY": secrets.token_urlsafe(32),
            "MFA_ENCRYPTION_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "RECOVERY_CODE_KEY": secrets.token_urlsafe(32),
            **{f"{s.upper()}_DB_PASSWORD": secrets.token_urlsafe(18) for s in SERVICES},
        }
        self.var.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))
        path.chmod(0o600)
        return values

    def start(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        logs = self.var / "log"
        values = self.secrets()
        if self.replicas < 1:
            raise ValueError("replicas must be at least 1")
        self._assign_replica_ports()
        for name in SERVICES:
            for k, port in enumerate(self.service_ports(name), start=1):
                require_free_port(_child_name(name, k), port)
        require_free_port("gateway (nginx)", self.ports.gateway)

        self.postgres = LocalPostgres(self.var / "postgres" / "data", self.ports.postgres, logs / "postgres.log",
                                      extra_settings=list(SYNCHRONOUS_PRIMARY) if self.postgres_standby else [])
        self.postgres.start()
        self.children.append(self.postgres.child)  # type: ignore[arg-type]
        if self.postgres_standby:  # before any commit: with synchronous replication, commits wait for it
            self.ports.postgres_standby = self.ports.postgres_standby or free_port()
            self.standby = LocalStandby.create(self.postgres, self.var / "postgres-standby" / "data",
                                               self.ports.postgres_standby, logs / "postgres-standby.log")
            self.standby.start()
            self.children.append(self.standby.server.child)  # type: ignore[arg-type]
        urls = _run_sync(bootstrap(self.postgres.admin_dsn, database=DATABASE, passwords={
            s: values[f"{s.upper()}_DB_PASSWORD"] for s in SERVICES}))
        if self.standby is not None:
            urls = {s: multi_host_dsn(url, [self.ports.postgres, self.ports.postgres_standby])
                    for s, url in urls.items()}
        self.database_urls = urls
        # For tools run beside the stack (`uv run portal-admin`), which find its database from var/.
        write_state(self.var, StackState(postgres_port=self.ports.postgres, base_url=self.base_url,
                                         mfa_url=f"http://127.0.0.1:{self.ports.mfa}"))

        if self.rabbitmq_nodes > 1:
            self.rabbit_cluster = LocalRabbitCluster.create(
                self.var / "rabbitmq-cluster", logs, size=self.rabbitmq_nodes, epmd_port=self.ports.epmd,
                first_ports=(self.ports.amqp, self.ports.amqp_dist, self.ports.amqp_management))
            self.rabbit_cluster.start()
            self.rabbitmq = self.rabbit_cluster.nodes[0]
        else:
            self.rabbitmq = LocalRabbitMQ(self.var / "rabbitmq", self.ports.amqp, self.ports.amqp_dist,
                                          self.ports.epmd, logs / "rabbitmq.log",
                                          management_port=self.ports.amqp_management)
            self.rabbitmq.start()
        amqp_url = self.rabbit_cluster.amqp_url if self.rabbit_cluster else self.rabbitmq.amqp_url

        smtp_host, smtp_port = self.smtp_host or "127.0.0.1", self.ports.smtp
        if self.smtp_host is None:
            require_free_port("mail sink", smtp_port)
            sink = spawn("mail sink", [sys.executable, "-m", "portal_devstack.mailsink", "--port", str(smtp_port),
                                       "--dir", str(self.mail_dir)], log_path=logs / "mailsink.log")
            self.children.append(sink)
            wait_until(sink, lambda: tcp_open(smtp_port), timeout=20, what=f"SMTP port {smtp_port}")

        self.env = {
            "AMQP_URL": amqp_url,
            "PORTAL_BASE_URL": self.base_url,
            "WEBAUTHN_RP_ID": "localhost",
            "LOG_FORMAT": self.log_format,
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "info"),
            "SMTP_HOST": smtp_host,
            "SMTP_PORT": str(smtp_port),
            "MAIL_FROM": os.environ.get("MAIL_FROM", "Client Portal <no-reply@portal.localhost>"),
            "PROFILE_URL": f"http://127.0.0.1:{self.ports.profile}",
            "MFA_URL": f"http://127.0.0.1:{self.ports.mfa}",
            "SERVICE_AUTH_KEY": values["SERVICE_AUTH_KEY"],
            "MFA_ENCRYPTION_KEYS": values["MFA_ENCRYPTION_KEYS"],
            "RECOVERY_CODE_KEY": values["RECOVERY_CODE_KEY"],
        }
        for key in ("SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_STARTTLS"):
            if os.environ.get(key):
                self.env[key] = os.environ[key]
        for k in range(1, self.replicas + 1):
            # Replica k calls replica k of the other services (the same as replica 1's when replicas=1).
            peers = {"PROFILE_URL": f"http://127.0.0.1:{self.service_ports('profile')[k - 1]}",
                     "MFA_URL": f"http://127.0.0.1:{self.service_ports('mfa')[k - 1]}"}
            for name in SERVICES:
                port = self.service_ports(name)[k - 1]
                log_name = f"{name}.log" if k == 1 else f"{name}-{k}.log"
                child = spawn(_child_name(name, k), [sys.executable, "-m", f"{name}_service"],
                              log_path=logs / log_name,
                              env={**self.env, **peers, "DATABASE_URL": urls[name], "HTTP_PORT": str(port)},
                              cwd=REPO)
                self.children.append(child)
        for k in range(1, self.replicas + 1):
            for name in SERVICES:
                child = next(c for c in self.children if c.name == _child_name(name, k))
                url = f"http://127.0.0.1:{self.service_ports(name)[k - 1]}/health/ready"
                wait_until(child, lambda url=url: _http_ok(url), timeout=60, what=f"{url} answering 200")

        if self.seed_demo:
            if self.demo_password is None and self.first_start:
                self.demo_password = secrets.token_urlsafe(12)  # printed once, at this first start
                self.generated_demo_password = True
            self._seed(urls["profile"])
        self._start_gateway(logs)

    def _seed(self, profile_url: str) -> None:
        env = {**os.environ, **self.env, "DATABASE_URL": profile_url}
        if self.demo_password:
            env["DEMO_PASSWORD"] = self.demo_password
        result = subprocess.run([sys.executable, "-m", "profile_service", "seed-demo"], env=env, cwd=REPO,
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StartError(f"seeding the demo data failed:\n{result.stderr[-2000:]}")
        self.seed_output = result.stdout

    def _start_gateway(self, logs: Path) -> None:
        from portal_devstack.nginx import LocalNginx

        nginx = LocalNginx(prefix=self.var / "nginx", port=self.ports.gateway, profile_port=self.ports.profile,
                           mfa_port=self.ports.mfa, notifier_port=self.ports.notifier, ui_root=REPO / "ui",
                           log_path=logs / "nginx.log", profile_ports=self.service_ports("profile"),
                           mfa_ports=self.service_ports("mfa"), notifier_ports=self.service_ports("notifier"))
        nginx.start()
        self.nginx = nginx

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()  # type: ignore[attr-defined]
        for child in reversed(self.children):
            if child.name.endswith("service") or child.name == "mail sink":
                child.stop()
        if self.rabbit_cluster:
            self.rabbit_cluster.stop()
        elif self.rabbitmq:
            self.rabbitmq.stop()
        if self.postgres:
            self.postgres.stop()
        if self.standby:
            self.standby.stop()


def _child_name(service: str, replica: int) -> str:
    """Replica 1 keeps the historical name ("profile service"); stop() matches the "service" suffix."""
    return f"{service} service" if replica == 1 else f"{service}#{replica} service"


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when called inside a running event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback URL we built)
            return bool(response.status == 200)
    except OSError:
        return False
