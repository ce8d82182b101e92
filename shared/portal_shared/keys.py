"""Typed app keys for the resources every service has (aiohttp's AppKey, no string keys)."""

from __future__ import annotations

import asyncpg
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

DB_POOL = web.AppKey("db_pool", asyncpg.Pool)
AMQP_CONNECTION = web.AppKey("amqp_connection", AbstractRobustConnection)
REQUEST_ID = web.RequestKey("request_id", str)
