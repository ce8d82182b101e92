"""The gateway's W3C traceparent (issue #18): real nginx with each deployment's main file, stub upstreams.

nginx has no OpenTelemetry module here, so http.conf makes the traceparent itself: the client's when well
formed, else trace id = nginx's $request_id. Every upstream (the auth subrequest included) receives it,
and the access log carries its trace id.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
import requests
from portal_devstack.process import free_port

from tests.e2e.stubs import ThreadedApps
from tests.integration.gateway.gateway_variants import (
    CLIENT_SESSION,
    VARIANTS,
    VariantGateway,
    stand_in,
    start_variant,
    ui_with_admin_pages,
)

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VariantGateway]]:
    servers = ThreadedApps({"profile": stand_in("profile"), "mfa": stand_in("mfa")})
    servers.start()
    ui_root = ui_with_admin_pages(tmp_path_factory.mktemp("ui") / "ui")
    started: dict[str, VariantGateway] = {}
    try:
        for variant in VARIANTS:
            started[variant] = start_variant(variant, tmp_path_factory.mktemp(variant), ui_root=ui_root,
                                             upstreams={**servers.ports, "notifier": free_port()})
        yield started
    finally:
        for gateway in started.values():
            gateway.stop()
        servers.stop()


def _echoed(gateway: VariantGateway, path: str, **headers: str) -> dict[str, str]:
    answer = requests.get(gateway.base_url + path, headers=headers, cookies={"portal_session": CLIENT_SESSION},
                          timeout=5)
    assert answer.status_code == 200, answer.text[:200]
    return {k.lower(): v for k, v in answer.json()["headers"].items()}


def _log_line(gateway: VariantGateway, marker: str) -> dict[str, str]:
    deadline = time.monotonic() + 5  # the line is written just after the answer
    while True:
        lines = [json.loads(raw) for raw in gateway.access_log.read_text().splitlines() if marker in raw]
        if lines or time.monotonic() > deadline:
            assert len(lines) == 1, lines
            return lines[0]
        time.sleep(0.02)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_request_without_traceparent_gets_one_named_after_the_request_id(
        gateways: dict[str, VariantGateway], variant: str) -> None:
    gateway = gateways[variant]
    seen = [_echoed(gateway, path) for path in ("/api/profile", "/api/mfa", "/api/profile")]
    ids = []
    for headers in seen:
        match = TRACEPARENT.match(headers["traceparent"])
        assert match, headers["traceparent"]
        trace_id, parent_id = match.groups()
        assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"]), "nginx's $request_id is 32 hex digits"
        assert trace_id == headers["x-request-id"] and parent_id == trace_id[:16]
        ids.append(trace_id)
    assert len(set(ids)) == len(ids), "a new trace per request"
    log = _log_line(gateway, ids[0])
    assert log["trace_id"] == ids[0] == log["request_id"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_well_formed_traceparent_passes_a_malformed_one_is_replaced(
        gateways: dict[str, VariantGateway], variant: str) -> None:
    gateway = gateways[variant]
    theirs = f"00-{'ab' * 16}-{'cd' * 8}-00"
    headers = _echoed(gateway, "/api/mfa", traceparent=theirs, **{"X-Request-ID": f"mine-{variant}"})
    assert headers["traceparent"] == theirs  # the caller's sampling decision (flag 00) is kept too
    assert _log_line(gateway, f"mine-{variant}")["trace_id"] == "ab" * 16
    for bad in ("00-" + "0" * 10, f"01-{'ab' * 16}-{'cd' * 8}-01", f"00-{'AB' * 16}-{'cd' * 8}-01", "x" * 300):
        replaced = _echoed(gateway, "/api/profile", traceparent=bad)["traceparent"]
        assert TRACEPARENT.match(replaced) and replaced != bad
