"""The one HTTP client between the services (profile ⇄ mfa): a signed service token on every call, one
timeout, and one failure type — so "the other service cannot answer" is handled the same everywhere
(each caller turns it into its own 503 and fails closed)."""

from __future__ import annotations

from typing import Any

import aiohttp

from portal_shared import tokens, tracing

# A call between two services on the same network that takes longer than this is not coming back in time
# for the user waiting on it (the gateway gives a request 30 s, and a sign-in may make two such calls).
SERVICE_TIMEOUT = aiohttp.ClientTimeout(total=5)


class ServiceCallFailed(Exception):
    """Transport failure, timeout, an unexpected status or an answer that is not a JSON object; the
    message says which (for logs, never for the client)."""


class ServiceClient:
    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, key: str, issuer: str,
                 audience: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._key, self._issuer, self._audience = key, issuer, audience

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                   expect: frozenset[int] = frozenset({200, 204})) -> dict[str, Any] | None:
        """The JSON object a 200 answered (None for a 204); ServiceCallFailed for anything else."""
        headers = tokens.service_authorization(self._key, issuer=self._issuer, audience=self._audience)
        # The caller's trace context, sent by us so it travels even where the aiohttp client instrumentation
        # is suppressed (an unsampled request) or off; when it runs, it replaces this with its span's.
        traceparent = tracing.current_traceparent()
        if traceparent is not None:
            headers = {**headers, "traceparent": traceparent}
        try:
            async with self._session.request(method, self._base + path, json=body, headers=headers,
                                             timeout=SERVICE_TIMEOUT) as response:
                if response.status not in expect:
                    raise ServiceCallFailed(f"{method} {path} answered {response.status}")
                if response.status == 204:
                    return None
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ServiceCallFailed(f"{method} {path}: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise ServiceCallFailed(f"{method} {path} answered a non-object")
        return data
