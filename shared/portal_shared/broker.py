"""RabbitMQ topology and connections: one topic exchange, a quorum queue per consuming service, dead letters."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection

EVENTS_EXCHANGE = "portal.events"
DEAD_LETTER_EXCHANGE = "portal.dead-letter"
# RabbitMQ 3.10 quorum queues have no default delivery limit; without one a poison message loops forever.
DEFAULT_DELIVERY_LIMIT = 5


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


async def connect(amqp_url: str, *, name: str, reconnect_interval: float = 2.0) -> AbstractRobustConnection:
    """A robust connection: it reconnects and re-declares its channels, queues and consumers by itself.

    Heartbeats (30 s) detect a dead peer that TCP alone would not notice for minutes.
    """
    return await aio_pika.connect_robust(amqp_url, client_properties={"connection_name": name},
                                         heartbeat=30, timeout=10, reconnect_interval=reconnect_interval)


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
