"""Real PostgreSQL and RabbitMQ for the tests: testcontainers when a Docker engine answers, else local
servers started from the OS binaries on random loopback ports. Set TEST_BACKEND=local|containers to force."""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from portal_devstack.postgres import LocalPostgres
from portal_devstack.process import free_port
from portal_devstack.rabbitmq import LocalRabbitMQ

POSTGRES_IMAGE = "postgres:16-alpine"  # the same versions as docker-compose.yml
RABBITMQ_IMAGE = "rabbitmq:3.13-management-alpine"


class Backend(Protocol):
    name: str
    admin_dsn: str

    def amqp_url(self, vhost: str = "/") -> str: ...
    def new_vhost(self) -> str: ...
    def stop_broker(self) -> None: ...
    def start_broker(self) -> None: ...
    def close(self) -> None: ...


def _vhost_url(base: str, vhost: str) -> str:
    return base.rstrip("/") + "/" + (vhost if vhost != "/" else "")


@dataclass
class LocalBackend:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="portal-test-")))
    name: str = "local servers (OS binaries)"

    def __post_init__(self) -> None:
        self.postgres = LocalPostgres(self.root / "pg" / "data", free_port(), self.root / "postgres.log", fast=True)
        self.rabbitmq = LocalRabbitMQ(self.root / "rabbitmq", free_port(), free_port(), free_port(),
                                      self.root / "rabbitmq.log", node_name=f"test{os.getpid()}@localhost",
                                      management_port=free_port())
        self.postgres.start()
        self.rabbitmq.start()

    @property
    def admin_dsn(self) -> str:
        return self.postgres.admin_dsn

    def amqp_url(self, vhost: str = "/") -> str:
        return _vhost_url(self.rabbitmq.amqp_url, vhost)

    def new_vhost(self) -> str:
        vhost = f"t{uuid.uuid4().hex[:10]}"
        self.rabbitmq.management_put(f"vhosts/{vhost}")
        self.rabbitmq.management_put(f"permissions/{vhost}/guest",
                                     {"configure": ".*", "write": ".*", "read": ".*"})
        return vhost

    def stop_broker(self) -> None:
        self.rabbitmq.stop()

    def start_broker(self) -> None:
        self.rabbitmq.start()

    def close(self) -> None:
        self.rabbitmq.stop()
        self.postgres.stop()


class ContainerBackend:
    name = "testcontainers (Docker engine)"

    def __init__(self) -> None:
        from testcontainers.postgres import PostgresContainer
        from testcontainers.rabbitmq import RabbitMqContainer

        self._pg = PostgresContainer(POSTGRES_IMAGE, username="postgres", password="postgres").start()
        self._mq = RabbitMqContainer(RABBITMQ_IMAGE).start()
        host = self._pg.get_container_host_ip()
        self.admin_dsn = f"postgresql://postgres:postgres@{host}:{self._pg.get_exposed_port(5432)}/postgres"

    def amqp_url(self, vhost: str = "/") -> str:
        host = self._mq.get_container_host_ip()
        return _vhost_url(f"amqp://guest:guest@{host}:{self._mq.get_exposed_port(5672)}/", vhost)

    def new_vhost(self) -> str:
        vhost = f"t{uuid.uuid4().hex[:10]}"
        container = self._mq.get_wrapped_container()
        container.exec_run(["rabbitmqctl", "add_vhost", vhost])
        container.exec_run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"])
        return vhost

    def stop_broker(self) -> None:
        self._mq.get_wrapped_container().stop()

    def start_broker(self) -> None:
        self._mq.get_wrapped_container().start()

    def close(self) -> None:
        self._mq.stop()
        self._pg.stop()


def docker_available() -> bool:
    """A Docker engine answers its ping (DOCKER_HOST or the default socket)."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    import docker

    try:
        client = docker.from_env(timeout=3)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def open_backend() -> Backend:
    choice = os.environ.get("TEST_BACKEND", "auto")
    if choice == "containers" or (choice == "auto" and docker_available()):
        return ContainerBackend()
    return LocalBackend()

