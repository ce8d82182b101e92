"""deploy/nginx/compose.conf: the contract's routes, checked three ways — by reading the locations the
way nginx chooses them, by `nginx -t`, and by running it on loopback in front of stub upstreams."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opscheck import NGINX_COMPOSE_CONF, REPO, SERVICES

MAIN_CONF = REPO / "deploy" / "docker" / "gateway" / "nginx.conf"
CONTRACT_PREFIXES = ["/api/auth", "/api/profile", "/api/admin", "/api/mfa", "/health/profile", "/health/mfa",
                     "/health/notifier", "internal", "/portal/"]


# ---- a small nginx config reader -------------------------------------------------------------------------

@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]


def _tokens(text: str) -> Iterator[str]:
    for match in re.finditer(r"#[^\n]*|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[{};]|[^\s{};'\"#]+", text):
        token = match.group(0)
        if not token.startswith("#"):
            yield token


def parse_nginx(text: str) -> list[Directive]:
    stack: list[list[Directive]] = [[]]
    words: list[str] = []
    for token in _tokens(text):
        if token == ";":
            stack[-1].append(Directive(words[0], [w.strip("'\"") for w in words[1:]]))
            words = []
        elif token == "{":
            directive = Directive(words[0], [w.strip("'\"") for w in words[1:]], [])
            stack[-1].append(directive)
            stack.append(directive.block)  # type: ignore[arg-type]
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return stack[0]


def choose_location(server: Directive, uri: str) -> Directive:
    """nginx's choice: exact match; else the longest prefix, final if `^~`; else the first matching
    regex in file order; else that longest prefix."""
    prefixes, regexes = [], []
    for location in server.find("location"):
        modifier, pattern = (location.args if len(location.args) == 2 else ["", location.args[0]])
        if modifier == "=" and pattern == uri:
            return location
        if modifier in {"", "^~"} and not pattern.startswith("@") and uri.startswith(pattern):
            prefixes.append((len(pattern), modifier, location))
        if modifier in {"~", "~*"}:
            regexes.append((re.compile(pattern, re.IGNORECASE if modifier == "~*" else 0), location))
    longest = max(prefixes, key=lambda p: p[0]) if prefixes else None
    if longest and longest[1] == "^~":
        return longest[2]
    for regex, location in regexes:
        if regex.search(uri):
            return location
    assert longest, f"no location for {uri}"
    return longest[2]


@pytest.fixture(scope="module")
def conf_text() -> str:
    return NGINX_COMPOSE_CONF.read_text()


@pytest.fixture(scope="module")
def server(conf_text: str) -> Directive:
    servers = [d for d in parse_nginx(conf_text) if d.name == "server"]
    assert len(servers) == 1
    return servers[0]


def _proxy(location: Directive) -> str | None:
    found = location.find("proxy_pass")
    return found[0].args[0] if found else None


def _returns(location: Directive) -> list[str] | None:
    found = location.find("return")
    return found[0].args if found else None


def test_the_config_mentions_every_contract_route_prefix(conf_text: str) -> None:
    for prefix in CONTRACT_PREFIXES:
        assert prefix in conf_text, prefix


@pytest.mark.parametrize("uri", ["/api/auth/login", "/api/auth/login/totp", "/api/auth/sessions/abc",
                                 "/api/auth/password-reset/confirm", "/api/profile", "/api/profile/password",
                                 "/api/admin/clients", "/api/admin/users/7/audit"])
def test_profile_routes(server: Directive, uri: str) -> None:
    location = choose_location(server, uri)
    assert _proxy(location) == "http://profile"
    assert not location.find("auth_request"), "profile authenticates its own routes"


@pytest.mark.parametrize("uri", ["/api/mfa", "/api/mfa/totp/setup", "/api/mfa/webauthn/k1",
                                 "/api/mfa/recovery-codes/regenerate"])
def test_mfa_routes_go_through_auth_request(server: Directive, uri: str) -> None:
    location = choose_location(server, uri)
    assert _proxy(location) == "http://mfa"
    target = location.find("auth_request")[0].args[0]
    captured = location.find("auth_request_set")[0].args
    assert captured[1] == "$upstream_http_x_portal_identity"
    passed = [d.args for d in [*server.find("proxy_set_header"), *location.find("proxy_set_header")]
              if d.args[0] == "X-Portal-Identity"]
    assert passed and passed[-1][1] == captured[0], "the identity from the subrequest must reach mfa"
    auth = choose_location(server, target)
    assert auth.find("internal"), "the auth location must not be reachable from outside"
    assert _proxy(auth) == "http://profile/internal/auth"
    headers = {d.args[0] for d in auth.find("proxy_set_header")}
    assert {"X-Original-Method", "X-Original-URI", "Cookie", "X-CSRF-Token", "Origin"} <= headers
    assert auth.find("proxy_pass_request_body")[0].args == ["off"]


def test_auth_paths_are_rate_limited_per_ip(server: Directive, conf_text: str) -> None:
    location = choose_location(server, "/api/auth/login")
    zone = location.find("limit_req")[0].args[0].split("=")[1]
    rate = re.search(rf"limit_req_zone \$binary_remote_addr zone={zone}:\S+ rate=(\d+)r/(m|s);", conf_text)
    assert rate, "the zone must be keyed on the client address"
    per_minute = int(rate.group(1)) * (60 if rate.group(2) == "s" else 1)
    assert per_minute >= 300, "the contract allows at least 300 requests a minute from one address"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_health_routes(server: Directive, service: str) -> None:
    assert _proxy(choose_location(server, f"/health/{service}")) == f"http://{service}/health/ready"


@pytest.mark.parametrize("uri", ["/internal/auth", "/internal/users/1/factors", "/api/profile/internal/x",
                                 "/api/mfa/internal/verify/totp", "/api/nope", "/api/mfax", "/api/profiles",
                                 "/metrics", "/health/ready", "/portal/nothing-here"])
def test_everything_else_is_404(server: Directive, uri: str) -> None:
    location = choose_location(server, uri)
    assert _returns(location) and _returns(location)[0] == "404", f"{uri} -> {location.args}"


def test_the_portal_ui_and_the_root_redirect(server: Directive) -> None:
    assert _returns(choose_location(server, "/")) == ["302", "/portal/"]
    for page in ("login", "profile", "forgot-password", "reset-password", "accept-invite", "not-me"):
        location = choose_location(server, f"/portal/{page}")
        assert location.find("try_files"), page
    assert choose_location(server, "/portal/assets/abc123/js/login.js").args == ["/portal/assets/"]


def test_upstreams_are_the_compose_services(conf_text: str) -> None:
    for service, port in SERVICES.items():
        assert re.search(rf"upstream {service} \{{\s*server {service}:{port}\b", conf_text), service


# ---- the three gateway configurations: the local template, compose.conf and its Kubernetes copy ----------

K8S_PORTAL_CONF = REPO / "deploy" / "k8s" / "base" / "gateway" / "portal.conf"
# Variables that hold the query string (reset and invitation links are `...?token=`).
_QUERY_VARIABLES = re.compile(r"\$(request_uri|request|args|query_string|is_args|arg_\w+)\b|\$\{(request|args)\}")


def _rendered_template(tmp_path: Path) -> str:
    from portal_devstack.nginx import render_config

    render_config(prefix=tmp_path, listen="127.0.0.1:8080", profile_addr="127.0.0.1:8101",
                  mfa_addr="127.0.0.1:8102", notifier_addr="127.0.0.1:8103", html_root=tmp_path / "html",
                  access_log=str(tmp_path / "access.log"))
    return (tmp_path / "conf" / "nginx.conf").read_text()


@pytest.fixture(params=["nginx.conf.template", "compose.conf", "k8s portal.conf"])
def gateway_conf(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Directive]:
    """(text, the server block) of each gateway configuration."""
    if request.param == "nginx.conf.template":
        text = _rendered_template(tmp_path)
    else:
        text = (NGINX_COMPOSE_CONF if request.param == "compose.conf" else K8S_PORTAL_CONF).read_text()
    top = parse_nginx(text)
    http = [d for d in top if d.name == "http"]
    scope = http[0].block if http else top
    assert scope is not None
    (server,) = [d for d in scope if d.name == "server"]
    return text, server


def _log_formats(text: str) -> dict[str, str]:
    formats = {}
    for directive in [d for d in _walk(parse_nginx(text)) if d.name == "log_format"]:
        args = directive.args[1:]
        formats[directive.args[0]] = "".join(a for a in args if not a.startswith("escape="))
    return formats


def _walk(directives: list[Directive]) -> Iterator[Directive]:
    for directive in directives:
        yield directive
        yield from _walk(directive.block or [])


def test_access_logs_never_hold_a_query_string(gateway_conf: tuple[str, Directive]) -> None:
    """Each configuration logs with a format of its own (not one a main nginx.conf might define with
    `$request`), and that format logs the path as `$uri`, without any variable that holds the query."""
    text, server = gateway_conf
    formats = _log_formats(text)
    access_logs = [d for d in _walk(parse_nginx(text)) if d.name == "access_log" and d.args != ["off"]]
    assert access_logs, "the configuration must set its own access log"
    for directive in access_logs:
        assert len(directive.args) >= 2 and directive.args[1] in formats, directive.args
        used = formats[directive.args[1]]
        assert "$uri" in used
        assert not _QUERY_VARIABLES.search(used), used
    assert server.find("access_log") or "http {" in text


def test_main_conf_of_the_image_logs_no_query_string() -> None:
    for name, used in _log_formats(MAIN_CONF.read_text()).items():
        assert "$uri" in used and not _QUERY_VARIABLES.search(used), name


def test_unparsable_requests_get_problem_400_not_a_named_location(gateway_conf: tuple[str, Directive]) -> None:
    """nginx cannot redirect a request it could not parse (no URI yet) to a named location: it answers its
    own 500 HTML instead. Every error_page for 400 (and 494, 414) must name an internal URI."""
    _text, server = gateway_conf
    pages = [*server.find("error_page")]
    for location in server.find("location"):
        pages += location.find("error_page")
    targets = {}
    for page in pages:
        codes, target = page.args[:-1], page.args[-1]
        for code in ("400", "494", "414"):
            if code in codes:
                assert not target.startswith("@"), page.args
                targets[code] = target
    assert set(server.find("error_page")[0].args) and {"400", "494", "414"} <= set(targets)
    for code, target in targets.items():
        location = choose_location(server, target)
        assert location.args == ["=", target] and location.find("internal"), code
        status, body = _returns(location) or ["", ""]
        assert status == ("414" if code == "414" else "400")
        assert json.loads(body)["status"] == int(status)


# ---- nginx itself ----------------------------------------------------------------------------------------------

def _nginx() -> str:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not binary:
        pytest.skip("nginx is not installed (make install brings it); the route reading above still ran")
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _render(prefix: Path, *, listen: int, upstreams: dict[str, int], html: Path) -> Path:
    conf_d = prefix / "conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    main = MAIN_CONF.read_text().replace("/tmp/", f"{prefix}/").replace("/etc/nginx/conf.d", str(conf_d))
    if os.geteuid() == 0:
        main = "user root;\n" + main  # else workers run as nobody, who cannot enter pytest's tmp dirs
    (prefix / "nginx.conf").write_text(main)
    routes = NGINX_COMPOSE_CONF.read_text()
    for service, port in upstreams.items():
        routes = re.sub(rf"server {service}:\d+", f"server 127.0.0.1:{port}", routes)
    routes = routes.replace("listen 8080 default_server;", f"listen 127.0.0.1:{listen} default_server;")
    routes = routes.replace("root /usr/share/portal/html;", f"root {html};")
    (conf_d / "portal.conf").write_text(routes)
    return prefix / "nginx.conf"


def test_nginx_accepts_the_gateway_configuration(tmp_path: Path) -> None:
    binary = _nginx()
    conf = _render(tmp_path, listen=_free_port(), upstreams={s: p for s, p in SERVICES.items()},
                   html=tmp_path / "html")
    result = subprocess.run([binary, "-t", "-p", f"{tmp_path}/", "-c", str(conf), "-e", str(tmp_path / "err.log")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@dataclass
class Stub:
    """An upstream that records what reached it and echoes it back as JSON."""

    name: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> int:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                record = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                          "body": body}
                stub.seen.append(record)
                if stub.name == "profile" and self.path == "/internal/auth":
                    cookie = self.headers.get("Cookie", "")
                    if "portal_session=good" not in cookie:
                        self.send_response(401)
                    elif self.headers.get("X-CSRF-Token") == "bad":
                        self.send_response(403)
                    else:
                        self.send_response(204)
                        self.send_header("X-Portal-Identity", "identity-token-1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = json.dumps({"service": stub.name, **record}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, Stub], Path]]:
    binary = _nginx()
    from portal_devstack.nginx import build_ui

    prefix = tmp_path_factory.mktemp("gateway")
    html = prefix / "html"
    build_ui(REPO / "ui", html)
    stubs = {"profile": Stub("profile"), "mfa": Stub("mfa")}
    ports = {name: stub.start() for name, stub in stubs.items()}
    ports["notifier"] = _free_port()  # nothing listens: an upstream that is down
    listen = _free_port()
    conf = _render(prefix, listen=listen, upstreams=ports, html=html)
    log = prefix / "nginx.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([binary, "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "err.log"),
                                    "-g", "daemon off;"], stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "nginx did not open its port"
                time.sleep(0.05)
        yield listen, stubs, log  # log: nginx's stdout and stderr (the access log goes to stdout)
    finally:
        process.terminate()
        process.wait(timeout=10)
        for stub in stubs.values():
            stub.stop()


def _request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
             body: str | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict[str, Any]:
    assert status == expected, body
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == expected and problem["detail"] and problem["type"] and problem["title"]
    return problem


def test_running_gateway_routes_and_protects(gateway: tuple[int, dict[str, Stub], Path]) -> None:
    port, stubs, _log = gateway
    status, headers, _ = _request(port, "GET", "/")
    assert status == 302 and headers["location"] == "/portal/"
    status, headers, body = _request(port, "GET", "/portal/login")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<html" in body.lower()
    assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["x-request-id"]

    # profile routes: a client-sent identity never passes; the request id does.
    status, _, body = _request(port, "GET", "/api/profile", {"X-Portal-Identity": "forged"})
    seen = json.loads(body)
    assert status == 200 and seen["service"] == "profile" and seen["path"] == "/api/profile"
    assert "X-Portal-Identity" not in seen["headers"] and seen["headers"]["X-Request-ID"]

    # mfa: not signed in -> 401 problem from the gateway, and mfa never sees the request.
    before = len(stubs["mfa"].seen)
    _problem(*_request(port, "GET", "/api/mfa", {"X-Portal-Identity": "forged"}), expected=401)
    assert len(stubs["mfa"].seen) == before

    # signed in: mfa gets profile's identity token, not the client's, with the body; the auth check was a GET
    # without the body but with the original method and URI.
    status, _, body = _request(port, "POST", "/api/mfa/totp/verify",
                               {"Cookie": "portal_session=good", "X-CSRF-Token": "ok",
                                "X-Portal-Identity": "forged", "Content-Type": "application/json"},
                               '{"code": "123456"}')
    seen = json.loads(body)
    assert status == 200 and seen["service"] == "mfa" and seen["method"] == "POST"
    assert seen["headers"]["X-Portal-Identity"] == "identity-token-1" and seen["body"] == '{"code": "123456"}'
    check = stubs["profile"].seen[-1]
    assert check["path"] == "/internal/auth" and check["method"] == "GET" and check["body"] == ""
    assert check["headers"]["X-Original-Method"] == "POST"
    assert check["headers"]["X-Original-URI"] == "/api/mfa/totp/verify"
    assert check["headers"]["X-CSRF-Token"] == "ok"

    # a CSRF refusal by profile -> 403 problem
    _problem(*_request(port, "POST", "/api/mfa/totp/disable", {"Cookie": "portal_session=good",
                                                                "X-CSRF-Token": "bad"}, "{}"), expected=403)

    # never exposed, unknown, and an upstream that is down
    for path in ("/internal/auth", "/api/profile/internal/auth", "/api/nope"):
        _problem(*_request(port, "GET", path), expected=404)
    status, _, body = _request(port, "GET", "/health/profile")
    assert status == 200 and json.loads(body)["path"] == "/health/ready"
    _problem(*_request(port, "GET", "/health/notifier"), expected=503)


def _raw_request(port: int, request_line: str) -> tuple[int, dict[str, str], bytes]:
    """Send the request line exactly as given (http.client and curl without --path-as-is would normalise it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"{request_line}\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("path", ["/api/auth/%00", "/api/auth/../../../x", "/api/mfa/%00", "/portal/../../etc/passwd",
                                  "/%00"])
def test_running_gateway_answers_unparsable_paths_with_a_400_problem(
        gateway: tuple[int, dict[str, Stub], Path], path: str) -> None:
    port, _stubs, _log = gateway
    status, headers, body = _raw_request(port, f"GET {path} HTTP/1.1")
    _problem(status, headers, body, expected=400)
    assert headers["x-content-type-options"] == "nosniff"


def test_running_gateway_answers_a_too_long_uri_with_a_414_problem(gateway: tuple[int, dict[str, Stub], Path]) -> None:
    port, _stubs, _log = gateway
    _problem(*_raw_request(port, f"GET /api/profile?q={'a' * 9000} HTTP/1.1"), expected=414)


def test_running_gateway_logs_no_query_string(gateway: tuple[int, dict[str, Stub], Path]) -> None:
    port, _stubs, log = gateway
    marker = f"gw-log-{time.monotonic_ns()}"
    for path in ("/api/profile", "/portal/reset-password", "/api/nope"):
        _request(port, "GET", f"{path}?token=secret-{marker}", {"X-Request-ID": marker})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and log.read_text().count(marker) < 3:
        time.sleep(0.05)
    lines = [json.loads(line) for line in log.read_text().splitlines() if marker in line]
    # the path as nginx served it (a page is logged under its file, /portal/reset-password.html)
    assert [line["path"].removesuffix(".html") for line in lines] == ["/api/profile", "/portal/reset-password",
                                                                      "/api/nope"]
    assert f"secret-{marker}" not in log.read_text()
