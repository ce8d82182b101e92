"""Who is acting in the current request: the client's address and browser, as the gateway saw them.

Set once per request by the web middleware; read by the outbox, which stamps it on every event the
request emits (the envelope's optional `actor`), so a consumer far downstream (the security activity,
an email saying "a sign-in from …") knows where a change came from without each service passing it on.
"""

from __future__ import annotations

import ipaddress
from contextvars import ContextVar
from dataclasses import dataclass

from aiohttp import web

MAX_USER_AGENT = 300


@dataclass(frozen=True, slots=True)
class Actor:
    ip: str
    user_agent: str

    def to_dict(self) -> dict[str, str]:
        return {"ip": self.ip, "user_agent": self.user_agent}


_CURRENT: ContextVar[Actor | None] = ContextVar("portal_actor", default=None)


def current() -> Actor | None:
    return _CURRENT.get()


def bind(actor: Actor | None) -> None:
    _CURRENT.set(actor)


def client_ip(request: web.Request) -> str:
    """The gateway's X-Real-IP / X-Forwarded-For, trusted only from a loopback or private peer."""
    peer = request.remote or ""
    try:
        trusted = ipaddress.ip_address(peer).is_private
    except ValueError:
        trusted = False
    if trusted:
        forwarded = request.headers.get("X-Real-IP") or request.headers.get("X-Forwarded-For", "").split(",")[0]
        try:
            return str(ipaddress.ip_address(forwarded.strip()))
        except ValueError:
            pass
    return peer


def user_agent(request: web.Request) -> str:
    """The User-Agent, bounded and storable as text (no NUL; bytes that are not UTF-8 become U+FFFD)."""
    raw = request.headers.get("User-Agent", "")[:MAX_USER_AGENT].replace("\x00", "")
    return raw.encode("utf-8", "replace").decode()


def of_request(request: web.Request) -> Actor:
    return Actor(client_ip(request), user_agent(request))
