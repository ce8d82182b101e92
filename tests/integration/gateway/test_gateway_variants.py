"""The three deployments' gateways (local, compose, k8s main files over the one deploy/nginx/routes.conf)
give the same answers: routes, headers, limits, error pages, redirects, the admin pages' gate; and differ
only where their main files mean to (how they learn the client's scheme and address)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from gateway_variants import (
    ADMIN_PAGE_MARK,
    ADMIN_SESSION,
    CLIENT_SESSION,
    IDENTITY,
    VARIANTS,
    VariantGateway,
    stand_in,
    start_variant,
    ui_with_admin_pages,
)
from portal_devstack.process import free_port

from tests.e2e.stubs import ThreadedApps

REPO = Path(__file__).resolve().parents[3]
PROBLEM = "application/problem+json"
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy",
                    "cross-origin-opener-policy", "permissions-policy", "x-request-id")
COMPARED_HEADERS = ("content-type", "location", "cache-control", "retry-after", "strict-transport-security",
                    *SECURITY_HEADERS[:-1])
FORWARDED = ("X-Portal-Identity", "X-Forwarded-Proto", "X-Real-IP", "X-Forwarded-For")
ADMIN_PATHS = ("/portal/admin", "/portal/admin/", "/portal/admin/client?id=c1", "/portal/admin/client/",
               "/portal/admin/user?id=u1", "/portal/admin/user/")
SESSIONS = {"nobody": None, "client": CLIENT_SESSION, "admin": ADMIN_SESSION}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, int]]:
    servers = ThreadedApps({"profile": stand_in("profile"), "mfa": stand_in("mfa")})
    servers.start()
    try:
        yield {**servers.ports, "notifier": free_port()}  # nothing listens on notifier's: it is down
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def ui_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ui_with_admin_pages(tmp_path_factory.mktemp("ui") / "ui")


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, int],
             ui_root: Path) -> Iterator[dict[str, VariantGateway]]:
    started: dict[str, VariantGateway] = {}
    try:
        for variant in VARIANTS:
            started[variant] = start_variant(variant, tmp_path_factory.mktemp(variant), upstreams=upstreams,
                                             ui_root=ui_root)
        yield started
    finally:
        for gateway in started.values():
            gateway.stop()


def _request(gateway: VariantGateway, method: str, path: str, *, session: str | None = None,
             **kwargs: Any) -> requests.Response:
    cookies = {"portal_session": session} if session else None
    return requests.request(method, gateway.base_url + path, cookies=cookies, allow_redirects=False, timeout=5,
                            **kwargs)


def _answer(response: requests.Response) -> dict[str, Any]:
    """What a client can tell of an answer, without what differs by port (Host) or by request (ids)."""
    headers = {name: response.headers.get(name) for name in COMPARED_HEADERS}
    headers["x-request-id present"] = bool(response.headers.get("X-Request-ID"))
    headers["leaked"] = [h for h in ("X-Portal-Role", "X-Portal-Identity") if h in response.headers]
    answer: dict[str, Any] = {"status": response.status_code, "headers": headers}
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type:
        body = response.json()
        if "service" in body:  # a stand-in's echo: what reached the upstream
            seen = body["headers"]
            body = {"service": body["service"], "method": body["method"], "path": body["path"],
                    "body_length": body["body_length"], **{h: seen.get(h) for h in FORWARDED},
                    "request id sent": bool(seen.get("X-Request-ID"))}
        answer["body"] = body
    else:
        answer["body sha256"] = hashlib.sha256(response.content).hexdigest()
    return answer


PROBES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/", {}),
    ("GET", "/portal", {}),
    ("GET", "/portal/", {}),
    ("GET", "/portal/login", {}),
    ("GET", "/portal/reset-password?token=t", {}),
    ("GET", "/portal/forbidden.html", {}),
    ("GET", "/portal/forbidden", {}),
    ("GET", "/portal/nothing-here", {}),
    ("GET", "/portal/admin/other", {"session": ADMIN_SESSION}),
    ("GET", "/portal/assets/000000000000/js/login.js", {}),
    ("GET", "/health/gateway", {}),
    ("GET", "/health/profile", {}),
    ("GET", "/health/mfa", {}),
    ("GET", "/health/notifier", {}),
    ("GET", "/internal/auth", {"session": ADMIN_SESSION}),
    ("GET", "/api/profile/internal/x", {}),
    ("GET", "/api/mfa/internal/y", {"session": ADMIN_SESSION}),
    ("GET", "/_auth", {"session": ADMIN_SESSION}),
    ("GET", "/api/", {}),
    ("GET", "/api/nope", {}),
    ("GET", "/api/nope.js", {}),
    ("GET", "/nowhere", {}),
    ("GET", "/api/auth/session", {}),
    ("GET", "/api/profile", {"headers": {"X-Portal-Identity": "forged"}}),
    ("GET", "/api/admin/users", {}),
    ("POST", "/api/profile", {"data": b"x" * 70_000}),
    ("GET", "/api/mfa", {}),
    ("GET", "/api/mfa", {"session": CLIENT_SESSION}),
    ("POST", "/api/mfa/totp/setup", {"session": CLIENT_SESSION, "headers": {"X-CSRF-Token": "wrong"}}),
    ("POST", "/api/mfa/totp/verify", {"session": CLIENT_SESSION, "json": {"code": "123456"},
                                      "headers": {"X-CSRF-Token": "good-csrf", "X-Portal-Identity": "forged"}}),
    *[("GET", path, {"session": session}) for path in ADMIN_PATHS for session in SESSIONS.values()],
]


def test_every_variant_gives_the_same_answers(gateways: dict[str, VariantGateway]) -> None:
    for method, path, options in PROBES:
        answers = {v: _answer(_request(g, method, path, **options)) for v, g in gateways.items()}
        assert answers["compose"] == answers["local"], (method, path, options)
        assert answers["k8s"] == answers["local"], (method, path, options)


def _problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["detail"] and body["title"] and body["type"]
    return body


@pytest.mark.parametrize("variant", VARIANTS)
def test_routes_headers_and_errors(gateways: dict[str, VariantGateway], variant: str) -> None:
    gateway = gateways[variant]
    root = _request(gateway, "GET", "/")
    assert root.status_code == 302 and root.headers["Location"] == "/portal/"
    page = _request(gateway, "GET", "/portal/login")
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    for response in (page, _request(gateway, "GET", "/api/nope"), _request(gateway, "GET", "/internal/x")):
        for header in SECURITY_HEADERS:
            assert response.headers.get(header), (header, response.url)
        assert "Strict-Transport-Security" not in response.headers  # plain http
    asset = re.search(r'href="(/portal/assets/[0-9a-f]{12}/css/portal\.css)"', page.text)
    assert asset, page.text
    css = _request(gateway, "GET", asset.group(1))
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for header in SECURITY_HEADERS:  # COOP and Permissions-Policy too (compose's assets lacked them once)
        assert css.headers.get(header), header
    assert _request(gateway, "GET", "/health/gateway").json() == {"status": "ok"}
    assert _request(gateway, "GET", "/health/profile").json() == {"status": "ok"}
    _problem(_request(gateway, "GET", "/health/notifier"), 503)
    for path in ("/internal/auth", "/api/profile/internal/x", "/api/nope", "/api/nope.js", "/portal/forbidden.html"):
        _problem(_request(gateway, "GET", path, session=ADMIN_SESSION), 404)
    _problem(_request(gateway, "POST", "/api/profile", data=b"x" * 70_000), 413)
    assert _request(gateway, "POST", "/api/profile", data=b"x" * 60_000).status_code == 200


@pytest.mark.parametrize("variant", VARIANTS)
def test_identity_only_from_the_auth_subrequest(gateways: dict[str, VariantGateway], variant: str) -> None:
    gateway = gateways[variant]
    echoed = _request(gateway, "GET", "/api/profile", headers={"X-Portal-Identity": "forged"})
    assert "X-Portal-Identity" not in echoed.json()["headers"]
    assert not {"X-Portal-Role", "X-Portal-Identity"} & set(echoed.headers)
    assert _problem(_request(gateway, "GET", "/api/mfa"), 401)["type"].endswith("/not-signed-in")
    _problem(_request(gateway, "POST", "/api/mfa/totp/setup", session=CLIENT_SESSION,
                      headers={"X-CSRF-Token": "wrong"}), 403)
    verified = _request(gateway, "POST", "/api/mfa/totp/verify", session=CLIENT_SESSION, json={"code": "1"},
                        headers={"X-CSRF-Token": "good-csrf", "X-Portal-Identity": "forged"})
    assert verified.status_code == 200 and verified.json()["service"] == "mfa"
    assert verified.json()["headers"]["X-Portal-Identity"] == IDENTITY


@pytest.mark.parametrize("variant", VARIANTS)
def test_admin_pages_only_for_msp_admins(gateways: dict[str, VariantGateway], variant: str) -> None:
    gateway = gateways[variant]
    for path in ADMIN_PATHS:
        page = path.split("?")[0].removeprefix("/portal/admin").strip("/") or "index"
        admin = _request(gateway, "GET", path, session=ADMIN_SESSION)
        assert admin.status_code == 200, (path, admin.text)
        assert admin.headers["Content-Type"] == "text/html; charset=utf-8"
        assert f"{ADMIN_PAGE_MARK}: {page}</h1>" in admin.text and "{{ASSETS}}" not in admin.text
        assert admin.headers["Cache-Control"] == "no-store"
        assert admin.headers["Content-Security-Policy"] and admin.headers["X-Frame-Options"] == "DENY"
        assert "X-Portal-Role" not in admin.headers

        refused = _request(gateway, "GET", path, session=CLIENT_SESSION)
        assert refused.status_code == 403, (path, refused.text[:200])
        assert refused.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "You don't have access to this page" in refused.text
        assert 'href="/portal/profile"' in refused.text and ADMIN_PAGE_MARK not in refused.text
        assert refused.headers["Cache-Control"] == "no-store" and refused.headers["X-Frame-Options"] == "DENY"

        signed_out = _request(gateway, "GET", path)
        assert signed_out.status_code == 302, (path, signed_out.text[:200])
        assert signed_out.headers["Location"] == f"/portal/login?next={path}"
        assert ADMIN_PAGE_MARK not in signed_out.text
    # a second factor still pending is no session either; an unknown cookie neither
    assert _request(gateway, "GET", "/portal/admin/", session="forged").status_code == 302
    _problem(_request(gateway, "GET", "/portal/admin/clients", session=ADMIN_SESSION), 404)
    _problem(_request(gateway, "GET", "/portal/adminx", session=ADMIN_SESSION), 404)


def test_admin_pages_not_built_yet(tmp_path: Path, upstreams: dict[str, int]) -> None:
    """A build without ui/admin: an msp_admin gets a 404, a client user still the 403 page."""
    ui = tmp_path / "ui"
    shutil.copytree(REPO / "ui", ui, ignore=shutil.ignore_patterns("admin"))
    gateway = start_variant("local", tmp_path, upstreams=upstreams, ui_root=ui)
    try:
        _problem(_request(gateway, "GET", "/portal/admin/", session=ADMIN_SESSION), 404)
        refused = _request(gateway, "GET", "/portal/admin/", session=CLIENT_SESSION)
        assert refused.status_code == 403 and "You don't have access to this page" in refused.text
    finally:
        gateway.stop()


def test_admin_pages_when_profile_is_down(tmp_path: Path, ui_root: Path) -> None:
    """No auth answer: the page is unavailable (503), never served and never a 500."""
    ports = {"profile": free_port(), "mfa": free_port(), "notifier": free_port()}
    gateway = start_variant("local", tmp_path, upstreams=ports, ui_root=ui_root)
    try:
        response = _request(gateway, "GET", "/portal/admin/", session=ADMIN_SESSION)
        _problem(response, 503)
        assert ADMIN_PAGE_MARK not in response.text
    finally:
        gateway.stop()


def test_the_deployments_learn_scheme_and_address_as_they_mean_to(gateways: dict[str, VariantGateway]) -> None:
    """Local: its own scheme and peer. Compose: a TLS proxy's X-Forwarded-Proto. Kubernetes: the
    ingress's X-Forwarded-Proto and X-Forwarded-For (from an in-cluster peer; loopback here)."""
    told = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    expected = {"local": (False, "http", "127.0.0.1"), "compose": (True, "https", "127.0.0.1"),
                "k8s": (True, "https", "203.0.113.7")}
    for variant, (hsts, scheme, address) in expected.items():
        response = _request(gateways[variant], "GET", "/api/profile", headers=told)
        seen = response.json()["headers"]
        assert ("Strict-Transport-Security" in response.headers) is hsts, variant
        assert (seen["X-Forwarded-Proto"], seen["X-Real-IP"], seen["X-Forwarded-For"]) == (scheme, address,
                                                                                            address), variant
        if hsts:
            assert response.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"


@pytest.mark.parametrize("variant", VARIANTS)
def test_sign_in_limit_is_the_same_everywhere(tmp_path: Path, upstreams: dict[str, int], ui_root: Path,
                                              variant: str) -> None:
    """600 a minute with bursts of 300 per address on /api/auth*; the 429 is a problem with Retry-After."""
    gateway = start_variant(variant, tmp_path, upstreams=upstreams, ui_root=ui_root)
    try:
        with requests.Session() as http:
            statuses: list[int] = []
            limited = None
            for _ in range(700):  # bounded: 300 + what 600/min refills in the seconds this takes
                response = http.post(f"{gateway.base_url}/api/auth/login", json={"email": "a@b.example"})
                statuses.append(response.status_code)
                if response.status_code == 429:
                    limited = response
                    break
            assert limited is not None, f"no 429 after {len(statuses)} requests"
            assert len(statuses) > 300 and set(statuses[:-1]) == {200}
            _problem(limited, 429)
            assert limited.headers["Retry-After"] == "1"
            for header in SECURITY_HEADERS:
                assert limited.headers.get(header), header
            assert http.get(f"{gateway.base_url}/api/profile").status_code == 200  # other routes are not limited
            # a refused SSO callback: its code and state reach neither log. (On a slow machine a token may
            # have come back meanwhile: the callbacks that pass spend it, so a refusal follows at once.)
            marker = f"limited-{time.monotonic_ns()}"
            callbacks = [http.get(f"{gateway.base_url}/api/auth/sso/callback?code=secret-{marker}&state=s",
                                  headers={"X-Request-ID": marker}, allow_redirects=False).status_code
                         for _ in range(5)]
            assert 429 in callbacks, callbacks
    finally:
        gateway.stop()  # a stopped nginx has written every log line
    logs = [gateway.access_log.read_text(), gateway.error_log.read_text() if gateway.error_log.exists() else ""]
    assert marker in logs[0] and not [log for log in logs if f"secret-{marker}" in log]


def _raw(port: int, request_line: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
    """One request whose line goes out byte for byte (requests would normalise `..` and refuse a NUL)."""
    lines = [request_line, "Host: localhost", "Connection: close", *headers]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), parsed, body


@pytest.mark.parametrize("variant", VARIANTS)
def test_unparsable_and_oversized_requests_are_problems(gateways: dict[str, VariantGateway], variant: str) -> None:
    port = gateways[variant].port
    cases = [(f"GET {path} HTTP/1.1", (), 400) for path in
             ("/api/auth/%00", "/api/auth/../../../x", "/api/mfa/%00", "/portal/admin/%00", "/../x")]
    cases += [(f"GET /api/profile?q={'a' * 9000} HTTP/1.1", (), 414),
              ("GET /api/profile HTTP/1.1", (f"X-Big: {'a' * 9000}",), 400)]
    for line, extra, expected in cases:
        status, headers, body = _raw(port, line, *extra)
        assert status == expected, (line[:40], body[:200])
        assert headers["content-type"].startswith(PROBLEM)
        assert json.loads(body)["status"] == expected
        assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_query_string_reaches_the_logs(gateways: dict[str, VariantGateway], variant: str) -> None:
    gateway = gateways[variant]
    marker = f"log-{variant}-{time.monotonic_ns()}"
    paths = ("/portal/reset-password", "/portal/accept-invite", "/api/auth/session", "/api/mfa", "/api/nope",
             "/portal/admin/user")
    for path in paths:
        _request(gateway, "GET", f"{path}?token=secret-{marker}", headers={"X-Request-ID": marker})
    deadline = time.monotonic() + 5  # the log line is written just after the answer: wait until all are there
    while time.monotonic() < deadline and gateway.access_log.read_text().count(marker) < len(paths):
        time.sleep(0.02)
    lines = [json.loads(raw) for raw in gateway.access_log.read_text().splitlines() if marker in raw]
    assert len(lines) == len(paths)
    assert all(line["request_id"] == marker and line["service"] == "gateway" for line in lines)
    for log in (gateway.access_log, gateway.error_log):
        assert f"secret-{marker}" not in (log.read_text() if log.exists() else "")
