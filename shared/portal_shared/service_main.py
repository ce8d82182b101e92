"""The one way a service process starts (`python -m <service>_service`): read its settings, configure
logging, serve its app until SIGTERM. A missing or malformed setting stops it with the setting's name."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

from aiohttp import web

from portal_shared.config import CommonSettings, SettingsError
from portal_shared.logging import configure_logging
from portal_shared.runtime import serve


class ServiceSettings(Protocol):
    @property
    def common(self) -> CommonSettings: ...


S = TypeVar("S", bound=ServiceSettings)


def serve_service(name: str, load_settings: Callable[[], S], create_app: Callable[[S], web.Application]) -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.exit(f"{name}-service: {exc}")
    common = settings.common
    configure_logging(service=name, level=common.log_level, fmt=common.log_format)

    async def factory() -> web.Application:
        return create_app(settings)

    serve(factory, host=common.http_host, port=common.http_port)
