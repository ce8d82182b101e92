"""RabbitMQ topology and connections: one topic exchange, a quorum queue per consuming service, dead letters.

`AMQP_URL` may name one broker or a cluster: a comma-separated list of amqp(s) URLs, one per node
(`amqp://u:p@rabbit-0:5672/vh,amqp://u:p@rabbit-1:5672/vh`; a comma inside a password is written `%2C`).
A connection goes to the first node that answers and, when that node is lost, the robust reconnect
moves on to the next one in turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

EVENTS_EXCHANGE = "portal.events"
DEAD_LETTER_EXCHANGE = "portal.dead-letter"
# RabbitMQ 3.10 quorum queues have no default delivery limit; without one a poison message loops forever.
DEFAULT_DELIVERY_LIMIT = 5
# Replicas: no `x-quorum-initial-group-size`. RabbitMQ's default (quorum_cluster_size, 3) already gives
# each quorum queue min(3, cluster nodes) members (seen with 3.10: 3 members on 3 nodes), so a queue
# survives the loss of any one node of a 3-node cluster. Declaring the argument now would fail on every
# queue that exists without it (PRECONDITION_FAILED "inequivalent arg"), i.e. on every deployment so far.


def queue_name(service: str) -> str:
    return f"{service}.events"


def dead_letter_queue_name(service: str) -> str:
    return f"{service}.dead-letter"


def service_queue_arguments(service: str, *, delivery_limit: int) -> dict[str, object]:
    """The service queue's arguments. Declaring a queue again with other arguments fails
    (PRECONDITION_FAILED), so changing them means a policy or deleting the (drained) queue."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": service,
        # Quorum queues dead-letter at-most-once by default: a message could vanish between the two
        # queues. at-least-once (RabbitMQ ≥ 3.10) keeps it until the DLQ confirmed; it requires
        # reject-publish overflow (we set no length limit, so publishes are never actually refused).
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def broker_urls(amqp_url: str) -> list[str]:
    """The node URLs of `AMQP_URL` (one URL, or several separated by commas), in order.

    Raises:
        ValueError: no URL at all, or one that is not amqp:// or amqps://.
    """
    urls = [part.strip() for part in amqp_url.split(",") if part.strip()]
    if not urls:
        raise ValueError("AMQP_URL names no broker")
    for url in urls:
        if URL(url).scheme not in {"amqp", "amqps"}:
            raise ValueError(f"AMQP_URL entries must be amqp:// or amqps:// URLs, got scheme {URL(url).scheme!r}")
    return urls


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection over several nodes of one cluster: after a lost connection or a failed
    attempt, the next attempt goes to the next node.

    aio-pika reconnects to `self.url` only; its reconnect loop calls `_on_connection_close` both when an
    open connection drops and when an attempt fails, so that is where we move to the next node. The
    channels, queues and consumers it restores are the cluster's (quorum queues live on every member), so
    the next node serves them as well.
    """

    NODES: tuple[str, ...] = ()  # set by `connect` on a subclass of its own (see _bound_to)

    def __init__(self, url: URL, *args: Any, **kwargs: Any) -> None:
        super().__init__(url, *args, **kwargs)
        # Every node gets the options connect_robust put in the first URL's query (heartbeat, ...).
        options = dict(self.url.query)
        self._nodes = [URL(n).update_query(options) for n in self.NODES] or [self.url]
        self._node = 0

    async def connect(self, timeout: Any = None) -> None:  # noqa: ASYNC109 (aio-pika's signature)
        """The first connection (aio-pika fails fast when it cannot be made). A failed one is closed here:
        connect_robust drops it unclosed, and its `__del__` then schedules `close()` from wherever the
        garbage collector runs — in a worker thread, a coroutine never awaited."""
        try:
            await super().connect(timeout)
        except BaseException:
            await self.close()
            raise

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if len(self._nodes) > 1:
            self._node = (self._node + 1) % len(self._nodes)
            self.url = self._nodes[self._node]
        await super()._on_connection_close(closing)


def _bound_to(nodes: tuple[str, ...]) -> type[FailoverConnection]:
    """A FailoverConnection class knowing `nodes`: connect_robust would put an extra keyword argument into
    the URL's query string, so the node list travels as a class attribute instead."""
    return type("FailoverConnection", (FailoverConnection,), {"NODES": nodes})


async def connect(amqp_url: str, *, name: str, reconnect_interval: float = 2.0) -> AbstractRobustConnection:
    """A robust connection: it reconnects and re-declares its channels, queues and consumers by itself.

    With several nodes in `amqp_url`, the first connection tries each in turn (a dead first node must not
    keep a service from starting), and later reconnects go round them (FailoverConnection).
    Heartbeats (30 s) detect a dead peer that TCP alone would not notice for minutes.

    Raises:
        ValueError: `amqp_url` is malformed.
        aio_pika's connection errors (OSError, AMQPConnectionError, TimeoutError): no node answered.
    """
    urls = broker_urls(amqp_url)
    last_error: BaseException | None = None
    for first in range(len(urls)):
        order = tuple(urls[first:] + urls[:first])
        try:
            return await aio_pika.connect_robust(
                order[0], client_properties={"connection_name": name}, heartbeat=30, timeout=10,
                reconnect_interval=reconnect_interval, connection_class=_bound_to(order))
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


async def connect_once(amqp_url: str, *, connect_seconds: float = 10) -> AbstractConnection:
    """A plain (not robust) connection to the first node of `amqp_url` that answers: for tools."""
    last_error: BaseException | None = None
    for url in broker_urls(amqp_url):
        try:
            return await aio_pika.connect(url, timeout=connect_seconds)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_dead_letters(channel: AbstractChannel, service: str) -> AbstractQueue:
    """The dead-letter exchange and the service's dead-letter queue (idempotent)."""
    dlx = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_queue(dead_letter_queue_name(service), durable=True,
                                       arguments={"x-queue-type": "quorum"})
    await dead.bind(dlx, routing_key=service)
    return dead


async def declare_service_queue(
    channel: AbstractChannel, service: str, event_types: list[str], *, delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> AbstractQueue:
    """Declare (idempotently) the service's queue, its bindings and its dead-letter queue."""
    events = await declare_exchange(channel)
    await declare_dead_letters(channel, service)
    queue = await channel.declare_queue(
        queue_name(service), durable=True, arguments=service_queue_arguments(service, delivery_limit=delivery_limit))
    for event_type in event_types:
        await queue.bind(events, routing_key=event_type)
    return queue
