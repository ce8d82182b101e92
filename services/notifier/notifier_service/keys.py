"""Typed app keys of the notifier service (aiohttp AppKey)."""

from __future__ import annotations

from aiohttp import web

from notifier_service.dispatcher import Dispatcher

DISPATCHER = web.AppKey("dispatcher", Dispatcher)
