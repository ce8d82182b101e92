"""Typed app and request keys of the mfa service (aiohttp AppKey): one app key, CONTEXT, for everything.

Imports only leaves (context.py's services never import this module), so there is no import cycle.
"""

from __future__ import annotations

from aiohttp import web

from mfa_service.context import Context
from mfa_service.principal import Identity

CONTEXT = web.AppKey("context", Context)
IDENTITY = web.RequestKey("identity", Identity)
