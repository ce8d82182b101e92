"""The whole stack as `make up` runs it, on random loopback ports in a throwaway directory."""

from __future__ import annotations

import tempfile
from pathlib import Path

from portal_devstack.process import free_port
from portal_devstack.stack import LocalStack, Ports

DEMO_PASSWORD = "correct horse battery staple 42"


def throwaway_stack() -> LocalStack:
    ports = Ports(**{name: free_port() for name in (
        "gateway", "postgres", "amqp", "amqp_dist", "epmd", "amqp_management", "profile", "mfa", "notifier", "smtp")})
    # <tmp>/var, as in the repo: tools run in <tmp> (portal-admin) find the stack's data in ./var.
    return LocalStack(var=Path(tempfile.mkdtemp(prefix="portal-stack-")) / "var", ports=ports,
                      demo_password=DEMO_PASSWORD, log_format="json")


def throwaway_ha_stack() -> LocalStack:
    """The same, highly available (#16): 3 clustered RabbitMQ nodes and a synchronous Postgres standby."""
    stack = throwaway_stack()
    stack.rabbitmq_nodes = 3
    stack.postgres_standby = True
    return stack
