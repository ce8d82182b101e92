"""A RabbitMQ cluster of several nodes on loopback (for the HA tests and `make faults`, not `make up`).

Each node has its own ports and directories; all share one Erlang cookie and one epmd port, which is
how they find each other. Node 1 starts alone, the others join it (stop_app, join_cluster, start_app).
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from portal_devstack.process import StartError, free_port
from portal_devstack.rabbitmq import LocalRabbitMQ


@dataclass
class LocalRabbitCluster:
    base_dir: Path
    log_dir: Path
    nodes: list[LocalRabbitMQ] = field(default_factory=list)

    @classmethod
    def create(cls, base_dir: Path, log_dir: Path, *, size: int, epmd_port: int,
               first_ports: tuple[int, int, int] | None = None, prefix: str = "portal") -> LocalRabbitCluster:
        """`size` nodes `<prefix>1@localhost`...; `first_ports` (amqp, dist, management) pins node 1's."""
        cookie_file = base_dir / "cookie"
        base_dir.mkdir(parents=True, exist_ok=True)
        if not cookie_file.exists():  # kept, so a restart of the same directory keeps its cluster
            cookie_file.write_text(secrets.token_hex(20).upper())
        cookie = cookie_file.read_text().strip()
        cluster = cls(base_dir, log_dir)
        for k in range(1, size + 1):
            amqp, dist, management = first_ports if (k == 1 and first_ports) else (free_port(), free_port(),
                                                                                 free_port())
            cluster.nodes.append(LocalRabbitMQ(
                base_dir / f"node{k}", amqp, dist, epmd_port, log_dir / f"rabbitmq-{k}.log",
                node_name=f"{prefix}{k}@localhost", management_port=management, cookie=cookie,
                owns_epmd=False))
        return cluster

    @property
    def amqp_url(self) -> str:
        """AMQP_URL for the services: every node, comma-separated."""
        return ",".join(node.amqp_url for node in self.nodes)

    def start(self, timeout: float = 120) -> None:
        # Booting is most of the time (~10 s a node): boot all at once, then join one by one.
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            for future in [pool.submit(node.start, timeout) for node in self.nodes]:
                future.result()
        first, *others = self.nodes
        for node in others:
            if (node.base_dir / "joined").exists():
                continue  # its mnesia directory remembers the cluster
            for args in (("stop_app",), ("join_cluster", first.node_name), ("start_app",)):
                result = node.ctl(*args)
                if result.returncode != 0:
                    raise StartError(f"rabbitmq: {node.node_name} {' '.join(args)} failed: "
                                     f"{(result.stderr or result.stdout)[-1000:]}")
            (node.base_dir / "joined").write_text(first.node_name)
        self.wait_running(len(self.nodes), timeout=timeout)

    def restart_node(self, node: LocalRabbitMQ, timeout: float = 120) -> None:
        """Start a node that was stopped or killed; it rejoins the cluster from its own state."""
        node.start(timeout=timeout)
        self.wait_running(len(self.nodes), timeout=timeout)

    def running_nodes(self, via: LocalRabbitMQ | None = None) -> list[str]:
        """Names of the nodes the cluster reports running (asked of `via`, else of any node up)."""
        for node in [via] if via else self.nodes:
            if node is None or node.child is None or not node.child.running():
                continue
            try:
                return [n["name"] for n in node.management_get("nodes") if n.get("running")]  # type: ignore[union-attr]
            except OSError:
                continue
        return []

    def wait_running(self, count: int, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.running_nodes()) < count:
            if time.monotonic() > deadline:
                raise StartError(f"rabbitmq cluster: {count} running nodes expected, see {self.log_dir}")
            time.sleep(0.2)

    def node(self, name: str) -> LocalRabbitMQ:
        return next(n for n in self.nodes if n.node_name == name)

    def queue(self, vhost: str, name: str) -> dict[str, object]:
        """The management API's view of a queue (`leader`, `members` for a quorum queue), from a live node."""
        path = f"queues/{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(name, safe='')}"
        last: Exception | None = None
        for node in self.nodes:
            if node.child is None or not node.child.running():
                continue
            try:
                return node.management_get(path)  # type: ignore[return-value]
            except OSError as exc:
                last = exc
        raise StartError(f"no live node answered for queue {name}: {last}")

    def management_put(self, path: str, body: dict[str, object] | None = None) -> None:
        for node in self.nodes:
            if node.child is not None and node.child.running():
                node.management_put(path, body)
                return
        raise StartError("rabbitmq cluster: no node is running")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        if self.nodes:
            self.nodes[0].stop_epmd()
