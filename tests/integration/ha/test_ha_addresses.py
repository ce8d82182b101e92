"""Several broker and database addresses: the parsing, and a dead first address skipped (real servers)."""

from __future__ import annotations

import asyncio
import gc

import aio_pika
import pytest
from portal_devstack.postgres_standby import multi_host_dsn
from portal_devstack.process import free_port
from portal_shared import broker, db
from yarl import URL

from tests.support.backends import Backend


def test_broker_urls_split_a_comma_separated_list() -> None:
    assert broker.broker_urls("amqp://u:p@a:5672/vh , amqp://u:p@b:5673/vh,") == [
        "amqp://u:p@a:5672/vh", "amqp://u:p@b:5673/vh"]
    assert broker.broker_urls("amqp://guest:guest@127.0.0.1:5672/") == ["amqp://guest:guest@127.0.0.1:5672/"]
    for bad in ("", " , ", "http://a/", "amqp://a/,postgresql://b/"):
        with pytest.raises(ValueError, match="AMQP_URL"):
            broker.broker_urls(bad)


def test_a_multi_host_dsn_asks_for_the_primary_unless_it_says_otherwise() -> None:
    assert db.session_attrs("postgresql://u:p@h1:5432,h2:5432/portal") == "read-write"
    assert db.session_attrs("postgresql://u:p@h1:5432/portal") is None
    assert db.session_attrs("postgresql://u:p@h1,h2/portal?target_session_attrs=any") is None
    assert multi_host_dsn("postgresql://u:p@127.0.0.1:5/portal", [5, 6]) == (
        "postgresql://u:p@127.0.0.1:5,127.0.0.1:6/portal?target_session_attrs=read-write")


async def test_a_service_connects_past_a_dead_first_broker(backend: Backend) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    connection = await broker.connect(f"{dead},{backend.amqp_url()}", name="ha-test")
    try:
        channel = await connection.channel()
        await broker.declare_exchange(channel)  # a real round trip on the live node
        assert str(connection.url).startswith(backend.amqp_url().rstrip("/"))
        assert connection.url.query.get("heartbeat") == "30" and "nodes" not in connection.url.query
    finally:
        await connection.close()
    plain = await broker.connect_once(f"{dead},{backend.amqp_url()}")
    await plain.close()


def _open_robust_connections() -> list[aio_pika.RobustConnection]:
    gc.collect()
    return [c for c in gc.get_objects() if isinstance(c, aio_pika.RobustConnection) and not c.is_closed]


async def test_no_live_broker_raises_a_connection_error(backend: Backend) -> None:
    urls = ",".join(f"amqp://guest:guest@127.0.0.1:{free_port()}/" for _ in range(2))
    before = len(_open_robust_connections())
    with pytest.raises(OSError):
        await broker.connect(urls, name="ha-test")
    # Each failed attempt's connection is closed, not left for its __del__ to close from whatever thread the
    # garbage collector runs in (a coroutine never awaited there).
    assert len(_open_robust_connections()) == before


async def test_a_pool_connects_past_a_dead_first_database_host(backend: Backend) -> None:
    live = backend.admin_dsn
    userinfo, _, rest = live.partition("@")
    dsn = f"{userinfo}@127.0.0.1:{free_port()},{rest}"
    pool = await db.create_pool(dsn, schema="public", min_size=1, max_size=2)
    try:
        assert await pool.fetchval("SELECT NOT pg_is_in_recovery()")
    finally:
        await pool.close()
    with pytest.raises(OSError):  # nothing answers: a connection error (503), never a 500
        await db.connect(f"{userinfo}@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/postgres")



async def test_a_lost_connection_goes_round_the_nodes_and_comes_back(backend: Backend) -> None:
    live, dead = backend.amqp_url(), f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    connection = await broker.connect(f"{live},{dead}", name="ha-test", reconnect_interval=0.1)
    try:
        assert connection.transport is not None
        await connection.transport.connection.close()  # the node "went": next try is the dead one, then live
        deadline = asyncio.get_running_loop().time() + 20
        while not (connection.connected.is_set() and connection.connection_attempt >= 2):
            assert asyncio.get_running_loop().time() < deadline, "never reconnected"
            await asyncio.sleep(0.05)
        assert connection.url.port == URL(live).port
        assert connection.url.query.get("heartbeat") == "30"  # the options survive the round
        channel = await connection.channel()
        await broker.declare_exchange(channel)
    finally:
        await connection.close()
