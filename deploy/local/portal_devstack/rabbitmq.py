"""A RabbitMQ node from the OS package on loopback ports, its state under a directory we own."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from portal_devstack.process import Child, StartError, require_free_port, spawn, tcp_open, wait_until

# As root the /usr/sbin wrappers switch to the rabbitmq user (another Erlang cookie): use the real scripts.
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


@dataclass
class LocalRabbitMQ:
    base_dir: Path
    port: int
    dist_port: int
    epmd_port: int
    log_path: Path
    node_name: str = "portal@localhost"
    management_port: int | None = None  # the management plugin: HTTP API and UI
    # Cluster members (rabbitmq_cluster.py) share one Erlang cookie and one epmd, which only the
    # cluster stops: stopping one node must not take the others' name registry with it.
    cookie: str | None = field(default=None, repr=False)
    owns_epmd: bool = True
    child: Child | None = field(default=None, repr=False)

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "log").mkdir(exist_ok=True)
        plugins = self.base_dir / "enabled_plugins"
        plugins.write_text("[rabbitmq_management].\n" if self.management_port else "[].\n")
        cookie_file = self.base_dir / ".erlang.cookie"
        if self.cookie is not None and not cookie_file.exists():
            cookie_file.write_text(self.cookie)
            cookie_file.chmod(0o400)  # Erlang refuses a cookie file others can read
        return {
            "HOME": str(self.base_dir),  # the Erlang cookie lives here, shared by server and rabbitmqctl
            "RABBITMQ_MNESIA_BASE": str(self.base_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base_dir / "log"),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONFIG_FILE": str(self.base_dir / "rabbitmq"),
        }

    def start(self, timeout: float = 90) -> None:
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise StartError("rabbitmq: /usr/lib/rabbitmq/bin/rabbitmq-server not found (install rabbitmq-server)")
        for name, port in (("rabbitmq", self.port), ("rabbitmq (distribution)", self.dist_port)):
            require_free_port(name, port)
        env = self.env()
        # guest may only log in from loopback, which is where we listen.
        config = "loopback_users.guest = true\n"
        if self.management_port:
            require_free_port("rabbitmq (management)", self.management_port)
            config += f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
        (self.base_dir / "rabbitmq.conf").write_text(config)
        self.child = spawn("rabbitmq", [str(RABBITMQ_BIN / "rabbitmq-server")], log_path=self.log_path, env=env)
        wait_until(self.child, lambda: tcp_open(self.port), timeout=timeout, what=f"AMQP port {self.port}")
        if self.management_port:
            port = self.management_port
            wait_until(self.child, lambda: tcp_open(port), timeout=timeout, what=f"management port {port}")

    def management_put(self, path: str, body: dict[str, object] | None = None) -> None:
        """PUT to the management HTTP API (milliseconds, where rabbitmqctl takes a second)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management_port}/api/{path}", method="PUT",
            data=json.dumps(body or {}).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            response.read()

    def management_get(self, path: str) -> object:
        """GET from the management HTTP API; the decoded JSON."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management_port}/api/{path}",
            headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return json.loads(response.read())

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Its own session, like the components: `rabbitmqctl stop` runs while `make up` stops, and a
        # second Ctrl-C (SIGINT to make up's whole process group) must not kill it halfway.
        return subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node_name, *args],
                              env={**os.environ, **self.env()}, capture_output=True, text=True,
                              timeout=60, check=False, start_new_session=True)

    def stop(self) -> None:
        if self.child and self.child.running():
            self.ctl("stop")
            self.child.stop(timeout=30)
        if self.owns_epmd:
            self.stop_epmd()

    def kill(self) -> None:
        """SIGKILL the node (a crash): no clean leave, the cluster sees it vanish."""
        if self.child and self.child.running():
            self.child.kill()

    def stop_epmd(self) -> None:
        # epmd is started as a daemon by the node; stop ours so nothing is left behind.
        with contextlib.suppress(Exception):
            subprocess.run(["epmd", "-kill"], env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)},
                           capture_output=True, timeout=10, check=False, start_new_session=True)
