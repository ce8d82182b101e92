"""A client of the portal's public HTTP API through the gateway, as the UI uses it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp


class Portal:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    def csrf(self) -> str:
        for cookie in self.session.cookie_jar:
            if cookie.key == "portal_csrf":
                return cookie.value
        return ""

    async def request(self, method: str, path: str, body: Any = None, *, csrf: bool = True,
                      headers: dict[str, str] | None = None) -> tuple[int, Any, aiohttp.ClientResponse]:
        sent = {"Origin": self.base_url, **(headers or {})}
        if csrf and method not in {"GET", "HEAD"}:
            sent["X-CSRF-Token"] = self.csrf()
        kwargs: dict[str, Any] = {"headers": sent}
        if body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            raw = await response.read()
            data: Any = None
            if raw and response.content_type in {"application/json", "application/problem+json"}:
                data = await response.json(content_type=None)
            return response.status, data, response

    async def get(self, path: str) -> tuple[int, Any]:
        status, data, _ = await self.request("GET", path)
        return status, data

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, data, _ = await self.request("POST", path, body, **kw)
        return status, data

    async def patch(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, data, _ = await self.request("PATCH", path, body, **kw)
        return status, data

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        status, data, _ = await self.request("DELETE", path, **kw)
        return status, data

    async def login(self, email_address: str, password: str) -> dict[str, Any]:
        status, data = await self.post("/api/auth/login", {"email": email_address, "password": password})
        assert status == 200, (status, data)
        return data


class Mailbox:
    """The local mail sink's directory: one .eml file per message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def all(self) -> list[EmailMessage]:
        if not self.directory.exists():
            return []
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
                for p in sorted(self.directory.glob("*.eml"))]

    async def wait_for(self, to: str, event: str, timeout: float = 20.0, count: int = 1) -> list[EmailMessage]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = [m for m in self.all() if to.lower() in str(m["To"]).lower()
                     and m["X-Portal-Event"] == event]
            if len(found) >= count:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {event} email to {to} within {timeout}s")
            await asyncio.sleep(0.1)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def link_token(message: EmailMessage, page: str) -> str:
    match = re.search(rf"/portal/{page}\?token=([A-Za-z0-9_\-.%]+)", body_text(message))
    assert match, f"no /portal/{page} link in the email"
    return match.group(1)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@client.example"
