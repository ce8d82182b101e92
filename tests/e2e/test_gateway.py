"""The nginx gateway (deploy/nginx) in front of stand-in services: routes, auth_request, headers, errors."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from portal_devstack.nginx import LocalNginx

from tests.e2e.stubs import AUTH_CALLS, GOOD_CSRF, GOOD_SESSION, IDENTITY, ThreadedApps, gateway_in_front_of, stub_apps

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNginx, ThreadedApps]]:
    with gateway_in_front_of(stub_apps(), tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture(scope="module")
def base(gateway: tuple[LocalNginx, ThreadedApps]) -> str:
    return gateway[0].base_url


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def assert_problem(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["detail"] and body["title"] and body["type"]
    return body


def test_root_redirects_to_the_portal(http: requests.Session, base: str) -> None:
    response = http.get(f"{base}/", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/portal/"
    final = http.get(f"{base}/")
    assert final.status_code == 200 and final.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("page", ["login", "profile", "forgot-password", "reset-password", "accept-invite", "not-me"])
def test_each_portal_page_is_served(http: requests.Session, base: str, page: str) -> None:
    response = http.get(f"{base}/portal/{page}", params={"token": "t"} if page != "login" else None)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers.get("ETag")
    assert "{{ASSETS}}" not in response.text
    assert '<script type="module" src="/portal/assets/' in response.text
    assert "<script>" not in response.text and "style=" not in response.text


def test_assets_are_versioned_and_cached_forever(http: requests.Session, base: str) -> None:
    page = http.get(f"{base}/portal/login").text
    script = re.search(r'src="(/portal/assets/[0-9a-f]{12}/js/login\.js)"', page)
    style = re.search(r'href="(/portal/assets/[0-9a-f]{12}/css/portal\.css)"', page)
    assert script and style
    js = http.get(base + script.group(1))
    assert js.status_code == 200
    assert js.headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in js.headers["Cache-Control"] and "max-age=31536000" in js.headers["Cache-Control"]
    assert js.headers["X-Content-Type-Options"] == "nosniff"
    assert http.get(base + style.group(1)).headers["Content-Type"].startswith("text/css")
    missing = http.get(f"{base}/portal/assets/000000000000/js/login.js")
    assert_problem(missing, 404)
    assert_problem(http.get(f"{base}/portal/nothing-here"), 404)


def test_security_headers_everywhere(http: requests.Session, base: str) -> None:
    for path in ("/portal/login", "/portal/reset-password", "/api/auth/session", "/api/nope", "/internal/x"):
        headers = http.get(base + path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in headers  # plain http: no HSTS
        assert headers.get("Server") == "nginx"  # no version


def test_api_routes_reach_their_service(http: requests.Session, base: str) -> None:
    for path, service in [("/api/auth/login", "profile"), ("/api/auth/sessions/abc", "profile"),
                          ("/api/profile", "profile"), ("/api/profile/password", "profile"),
                          ("/api/admin/users", "profile")]:
        response = http.get(base + path)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["service"] == service
        assert response.json()["path"] == path


def test_internal_paths_are_404(http: requests.Session, base: str) -> None:
    for path in ("/internal/auth", "/internal/verify-password", "/api/profile/internal/x", "/api/mfa/internal/y",
                 "/_auth"):
        assert_problem(http.get(base + path, cookies={"portal_session": GOOD_SESSION}), 404)
    assert_problem(http.post(f"{base}/internal/verify-password", json={}), 404)


def test_unknown_api_paths_are_404_problems(http: requests.Session, base: str) -> None:
    for path in ("/api/", "/api/nope", "/api/profiles", "/api/mfax", "/api/authx/login", "/nowhere"):
        assert_problem(http.get(base + path), 404)


def test_mfa_needs_a_session(http: requests.Session, base: str) -> None:
    body = assert_problem(http.get(f"{base}/api/mfa"), 401)
    assert body["type"].endswith("/not-signed-in")
    assert_problem(http.post(f"{base}/api/mfa/totp/setup", cookies={"portal_session": "forged"}), 401)


def test_mfa_refuses_a_bad_csrf_token(http: requests.Session, base: str) -> None:
    response = http.post(f"{base}/api/mfa/totp/setup", cookies={"portal_session": GOOD_SESSION},
                         headers={"X-CSRF-Token": "wrong"})
    assert_problem(response, 403)


def test_identity_reaches_mfa_and_auth_gets_what_it_needs(
        http: requests.Session, gateway: tuple[LocalNginx, ThreadedApps], base: str) -> None:
    nginx, servers = gateway
    servers.apps["profile"][AUTH_CALLS].clear()
    response = http.post(f"{base}/api/mfa/totp/verify?x=1", json={"code": "123456"},
                         cookies={"portal_session": GOOD_SESSION, "portal_csrf": GOOD_CSRF},
                         headers={"X-CSRF-Token": GOOD_CSRF, "Origin": nginx.base_url,
                                  "X-Portal-Identity": "forged-by-client", "X-Request-ID": "req-abc.123"})
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["service"] == "mfa" and echoed["path"] == "/api/mfa/totp/verify"
    assert echoed["headers"]["X-Portal-Identity"] == IDENTITY
    assert echoed["headers"]["X-Request-ID"] == "req-abc.123"
    assert echoed["body_length"] > 0
    assert "X-Portal-Identity" not in response.headers  # never shown to the client
    assert response.headers["X-Request-ID"] == "req-abc.123"

    (call,) = servers.apps["profile"][AUTH_CALLS]
    assert f"portal_session={GOOD_SESSION}" in call["Cookie"]
    assert call["X-CSRF-Token"] == GOOD_CSRF
    assert call["Origin"] == nginx.base_url
    assert call["X-Original-Method"] == "POST"
    assert call["X-Original-URI"] == "/api/mfa/totp/verify?x=1"
    assert call["X-Request-ID"] == "req-abc.123"
    assert "Content-Length" not in call or call["Content-Length"] == "0"

    exact = http.get(f"{base}/api/mfa", cookies={"portal_session": GOOD_SESSION})
    assert exact.status_code == 200 and exact.json()["path"] == "/api/mfa"


def test_clients_cannot_send_an_identity_to_other_services(http: requests.Session, base: str) -> None:
    echoed = http.get(f"{base}/api/profile", headers={"X-Portal-Identity": "forged"}).json()
    assert "X-Portal-Identity" not in echoed["headers"]


def test_request_id_is_sent_upstream_and_logged(
        http: requests.Session, gateway: tuple[LocalNginx, ThreadedApps], base: str) -> None:
    response = http.get(f"{base}/api/profile", params={"token": "secret-token"},
                        headers={"X-Request-ID": "bad id with spaces"})
    generated = response.json()["headers"]["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert response.headers["X-Request-ID"] == generated
    forwarded = response.json()["headers"]
    assert forwarded["X-Forwarded-For"] == "127.0.0.1" and forwarded["X-Real-IP"] == "127.0.0.1"

    log = gateway[0].access_log_path
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and generated not in log.read_text():
        time.sleep(0.05)
    (line,) = [json.loads(raw) for raw in log.read_text().splitlines() if generated in raw]
    assert line["path"] == "/api/profile" and line["status"] == 200 and line["method"] == "GET"
    assert "secret-token" not in log.read_text()  # query strings (tokens) are not logged


def test_health_passes_through(http: requests.Session, base: str) -> None:
    for service in ("profile", "mfa", "notifier"):
        response = http.get(f"{base}/health/{service}")
        assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_request_bodies_are_limited(http: requests.Session, base: str) -> None:
    assert http.post(f"{base}/api/profile", data=b"x" * 60_000).status_code == 200
    assert_problem(http.post(f"{base}/api/profile", data=b"x" * 70_000), 413)


def test_upstreams_down_are_problems(tmp_path: Path) -> None:
    with gateway_in_front_of({}, tmp_path) as (nginx, _servers), requests.Session() as http:
        base = nginx.base_url
        assert_problem(http.get(f"{base}/api/profile"), 502)
        assert_problem(http.post(f"{base}/api/auth/login", json={}), 502)
        # auth_request cannot reach profile: the mfa API is unavailable, not a 500
        assert_problem(http.get(f"{base}/api/mfa", cookies={"portal_session": GOOD_SESSION}), 503)
        for service in ("profile", "mfa", "notifier"):
            assert_problem(http.get(f"{base}/health/{service}"), 503)
        # the UI is still served
        assert http.get(f"{base}/portal/login").status_code == 200


def test_mfa_down_behind_a_good_session(tmp_path: Path) -> None:
    apps = stub_apps()
    del apps["mfa"]
    with gateway_in_front_of(apps, tmp_path) as (nginx, _servers), requests.Session() as http:
        response = http.get(f"{nginx.base_url}/api/mfa", cookies={"portal_session": GOOD_SESSION})
        assert response.status_code in (502, 503)
        assert_problem(response, response.status_code)


def test_sign_in_is_rate_limited_per_address(tmp_path: Path) -> None:
    """deploy/nginx/http.conf and routes.conf: 600 a minute with bursts of 300, the same in every deployment."""
    with gateway_in_front_of(stub_apps(), tmp_path) as (nginx, _), requests.Session() as http:
        statuses = []
        limited = None
        for _ in range(700):  # bounded: 300 + what 600/min refills in the few seconds this takes
            response = http.post(f"{nginx.base_url}/api/auth/login", json={"email": "a@b.example", "password": "x"})
            statuses.append(response.status_code)
            if response.status_code == 429:
                limited = response
                break
        assert limited is not None, statuses
        assert statuses.count(200) >= 300
        assert_problem(limited, 429)
        assert limited.headers["Retry-After"] == "1"  # one request more every 0.1 s
        assert limited.headers["Content-Security-Policy"]  # security headers on the error too
        # other paths are not limited
        assert http.get(f"{nginx.base_url}/api/profile").status_code == 200


def test_default_limit_allows_300_quick_sign_ins(http: requests.Session, base: str) -> None:
    statuses = {http.post(f"{base}/api/auth/password-reset", json={"email": "a@b.example"}).status_code
                for _ in range(300)}
    assert statuses == {200}


def _raw(port: int, request_line: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
    """One request whose line goes out byte for byte (as curl --path-as-is sends it; requests would
    normalise `..` and refuse a NUL)."""
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


@pytest.mark.parametrize("path", ["/api/auth/%00", "/api/auth/../../../x", "/api/profile/%00", "/api/mfa/%00",
                                  "/api/mfa/../../../internal/auth", "/portal/%00", "/../x"])
def test_paths_nginx_cannot_parse_are_400_problems(gateway: tuple[LocalNginx, ThreadedApps], path: str) -> None:
    status, headers, body = _raw(gateway[0].port, f"GET {path} HTTP/1.1")
    assert status == 400, body
    assert headers["content-type"].startswith(PROBLEM)
    problem = json.loads(body)
    assert problem["status"] == 400 and problem["type"] and problem["title"] and problem["detail"]
    assert headers["x-frame-options"] == "DENY"  # the gateway's headers on this answer too


def test_oversized_request_parts_are_problems(gateway: tuple[LocalNginx, ThreadedApps]) -> None:
    status, headers, body = _raw(gateway[0].port, f"GET /api/profile?q={'a' * 9000} HTTP/1.1")
    assert status == 414 and headers["content-type"].startswith(PROBLEM) and json.loads(body)["status"] == 414
    status, headers, body = _raw(gateway[0].port, "GET /api/profile HTTP/1.1", f"X-Big: {'a' * 9000}")
    assert status == 400 and headers["content-type"].startswith(PROBLEM) and json.loads(body)["status"] == 400


def test_no_query_string_reaches_the_access_log(http: requests.Session, gateway: tuple[LocalNginx, ThreadedApps],
                                                base: str) -> None:
    marker = f"log-{time.monotonic_ns()}"
    for path in ("/portal/reset-password", "/portal/accept-invite", "/api/auth/session", "/api/mfa", "/api/nope"):
        http.get(f"{base}{path}?token=secret-{marker}", headers={"X-Request-ID": marker})
    log = gateway[0].access_log_path
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and log.read_text().count(marker) < 5:
        time.sleep(0.05)
    assert log.read_text().count(marker) >= 5
    assert f"secret-{marker}" not in log.read_text()
    error_log = gateway[0].prefix / "error.log"
    assert f"secret-{marker}" not in (error_log.read_text() if error_log.exists() else "")

