"""deploy/nginx: the contract's routes, read the way nginx chooses locations, and the deployments' main
files held to their shape (upstreams, listen, paths, the scheme; the routes only by inclusion). Running
nginx with each main file is tests/integration/gateway."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from opscheck import NGINX_DIR, SERVICES

ROUTES = NGINX_DIR / "routes.conf"
HTTP_CONF = NGINX_DIR / "http.conf"
MAIN_FILES = {"local": NGINX_DIR / "nginx.local.conf.template", "compose": NGINX_DIR / "nginx.compose.conf",
              "k8s": NGINX_DIR / "nginx.k8s.conf"}
SHARED = ("http.conf", "routes.conf", "security-headers.conf")
CONTRACT_PREFIXES = ["/api/auth", "/api/profile", "/api/admin", "/api/mfa", "/health/profile", "/health/mfa",
                     "/health/notifier", "internal", "/portal/", "/portal/admin"]


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
    return ROUTES.read_text()


@pytest.fixture(scope="module")
def server(conf_text: str) -> Directive:
    """routes.conf is the body of a server block."""
    return Directive("server", [], parse_nginx(conf_text))


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


def _auth_subrequest(server: Directive, location: Directive) -> Directive:
    target = location.find("auth_request")[0].args[0]
    auth = choose_location(server, target)
    assert auth.find("internal"), "the auth location must not be reachable from outside"
    assert _proxy(auth) == "http://profile/internal/auth"
    headers = {d.args[0] for d in auth.find("proxy_set_header")}
    assert {"X-Original-Method", "X-Original-URI", "Cookie", "X-CSRF-Token", "Origin"} <= headers
    assert auth.find("proxy_pass_request_body")[0].args == ["off"]
    assert auth.find("proxy_method")[0].args == ["GET"]
    return auth


@pytest.mark.parametrize("uri", ["/api/mfa", "/api/mfa/totp/setup", "/api/mfa/webauthn/k1",
                                 "/api/mfa/recovery-codes/regenerate"])
def test_mfa_routes_go_through_auth_request(server: Directive, uri: str) -> None:
    location = choose_location(server, uri)
    assert _proxy(location) == "http://mfa"
    captured = location.find("auth_request_set")[0].args
    assert captured[1] == "$upstream_http_x_portal_identity"
    passed = [d.args for d in [*server.find("proxy_set_header"), *location.find("proxy_set_header")]
              if d.args[0] == "X-Portal-Identity"]
    assert passed and passed[-1][1] == captured[0], "the identity from the subrequest must reach mfa"
    _auth_subrequest(server, location)


@pytest.mark.parametrize("uri", ["/portal/admin", "/portal/admin/", "/portal/admin/client", "/portal/admin/user/"])
def test_admin_pages_are_gated_on_the_role(server: Directive, uri: str) -> None:
    location = choose_location(server, uri)
    assert not _proxy(location)
    assert location.find("auth_request_set")[0].args == ["$portal_role", "$upstream_http_x_portal_role"]
    _auth_subrequest(server, location)
    assert location.find("try_files")[0].args == ["$portal_admin_file", "@admin_page_absent"]
    assert not location.find("if"), "`if` runs before auth_request: it cannot see the role"
    (absent,) = [d for d in server.find("location") if d.args == ["@admin_page_absent"]]
    assert _returns(absent) == ["403"] and " ".join(absent.find("if")[0].args) == "($portal_role = msp_admin)"
    pages = {tuple(d.args[:-1]): d.args[-1] for d in location.find("error_page")}
    assert pages[("401", "=")] == "@sign_in_first" and pages[("403",)] == "/portal/forbidden.html"
    forbidden = choose_location(server, "/portal/forbidden.html")
    assert forbidden.args == ["=", "/portal/forbidden.html"] and forbidden.find("internal")


def test_the_admin_file_map_gives_files_to_msp_admins_only() -> None:
    (mapping,) = [d for d in parse_nginx(HTTP_CONF.read_text()) if d.name == "map" and
                  d.args[1] == "$portal_admin_file"]
    entries = {d.name.strip("\"'"): d.args[0] for d in mapping.block or []}
    assert entries.pop("default") == ""
    assert entries == {"msp_admin:": "/portal/admin/index.html", "msp_admin:client": "/portal/admin/client.html",
                       "msp_admin:user": "/portal/admin/user.html"}


def test_auth_paths_are_rate_limited_per_ip(server: Directive) -> None:
    location = choose_location(server, "/api/auth/login")
    (limit,) = location.find("limit_req")
    zone = limit.args[0].split("=")[1]
    rate = re.search(rf"limit_req_zone \$binary_remote_addr zone={zone}:\S+ rate=(\d+)r/(m|s);",
                     HTTP_CONF.read_text())
    assert rate, "the zone must be keyed on the client address"
    per_minute = int(rate.group(1)) * (60 if rate.group(2) == "s" else 1)
    assert per_minute >= 300, "the contract allows at least 300 requests a minute from one address"
    assert "burst=300" in limit.args, "a whole office signing in at 9:00 fits in the burst"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_health_routes(server: Directive, service: str) -> None:
    assert _proxy(choose_location(server, f"/health/{service}")) == f"http://{service}/health/ready"
    assert _returns(choose_location(server, "/health/gateway"))[0] == "200"


@pytest.mark.parametrize("uri", ["/internal/auth", "/internal/users/1/factors", "/api/profile/internal/x",
                                 "/api/mfa/internal/verify/totp", "/api/nope", "/api/mfax", "/api/profiles",
                                 "/metrics", "/health/ready", "/portal/nothing-here", "/portal/admin/other",
                                 "/portal/forbidden"])
def test_everything_else_is_404(server: Directive, uri: str) -> None:
    location = choose_location(server, uri)
    assert _returns(location) and _returns(location)[0] == "404", f"{uri} -> {location.args}"


def test_the_portal_ui_and_the_root_redirect(server: Directive) -> None:
    assert _returns(choose_location(server, "/")) == ["302", "/portal/"]
    for page in ("login", "profile", "forgot-password", "reset-password", "accept-invite", "not-me"):
        location = choose_location(server, f"/portal/{page}")
        assert location.find("try_files"), page
    assert choose_location(server, "/portal/assets/abc123/js/login.js").args == ["/portal/assets/"]


def test_unparsable_requests_get_problem_400_not_a_named_location(server: Directive) -> None:
    """nginx cannot redirect a request it could not parse (no URI yet) to a named location: it answers its
    own 500 HTML instead. Every error_page for 400 (and 494, 414) must name an internal URI."""
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


def test_a_location_that_lists_error_pages_lists_them_all(server: Directive) -> None:
    """error_page in a location replaces the server's whole list: a gated location must list every one."""
    for uri in ("/api/mfa", "/portal/admin/"):
        codes = {c for d in choose_location(server, uri).find("error_page") for c in d.args[:-1]}
        assert {"400", "494", "414", "401", "403", "404", "405", "413", "500", "502", "503", "504"} <= codes, uri


# ---- the deployments' main files: their own shape, the routes only by inclusion -------------------------

# Variables that hold the query string (reset and invitation links are `...?token=`).
_QUERY_VARIABLES = re.compile(r"\$(request_uri|request|args|query_string|is_args|arg_\w+)\b|\$\{(request|args)\}")


def _walk(directives: list[Directive]) -> Iterator[Directive]:
    for directive in directives:
        yield directive
        yield from _walk(directive.block or [])


def _log_formats(text: str) -> dict[str, str]:
    formats = {}
    for directive in [d for d in _walk(parse_nginx(text)) if d.name == "log_format"]:
        formats[directive.args[0]] = "".join(a for a in directive.args[1:] if not a.startswith("escape="))
    return formats


@pytest.fixture
def main_text(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """A deployment's main file as nginx reads it (the local one rendered by the stack's own code)."""
    def read(variant: str) -> str:
        if variant != "local":
            return MAIN_FILES[variant].read_text()
        from portal_devstack.nginx import render_config

        prefix = tmp_path_factory.mktemp("local")
        return render_config(prefix=prefix, listen="127.0.0.1:8080", profile_addr=["127.0.0.1:8101", "127.0.0.1:8111"],
                             mfa_addr="127.0.0.1:8102", notifier_addr="127.0.0.1:8103", html_root=prefix / "html",
                             access_log=str(prefix / "access.log")).read_text()
    return read


def _http_block(text: str) -> list[Directive]:
    (http,) = [d for d in parse_nginx(text) if d.name == "http"]
    return http.block or []


@pytest.mark.parametrize("variant", sorted(MAIN_FILES))
def test_a_main_file_holds_no_route_of_its_own(main_text: Callable[[str], str], variant: str) -> None:
    """One server: listen, root and `include routes.conf`, nothing else. Anything a deployment needs
    differently is an http-level setting (upstreams, the scheme, real_ip)."""
    http = _http_block(main_text(variant))
    includes = [d.args[0] for d in http if d.name == "include"]
    assert includes == ["http.conf"]
    (server,) = [d for d in http if d.name == "server"]
    assert sorted(d.name for d in server.block or []) == ["include", "listen", "root"]
    assert server.find("include")[0].args == ["routes.conf"]
    assert {d.args[0] for d in http if d.name == "upstream"} == set(SERVICES)
    schemes = [d for d in http if d.name == "map" and d.args[1] == "$portal_scheme"]
    assert len(schemes) == 1, "each deployment says how it learns the client's scheme"
    assert not [d for d in _walk(http) if d.name in {"location", "add_header", "limit_req", "error_page"}]


@pytest.mark.parametrize("variant", ["compose", "k8s"])
def test_upstreams_are_the_service_names(variant: str) -> None:
    text = MAIN_FILES[variant].read_text()
    for service, port in SERVICES.items():
        assert re.search(rf"upstream {service} \{{\s*server {service}:{port}\b", text), service
    assert re.search(r"^\s*root /usr/share/portal/html;", text, re.M)


@pytest.mark.parametrize("variant", sorted(MAIN_FILES))
def test_access_logs_never_hold_a_query_string(main_text: Callable[[str], str], variant: str) -> None:
    """Each main file logs with the shared format, which logs the path as `$uri`, never the query."""
    formats = _log_formats(HTTP_CONF.read_text())
    text = main_text(variant)
    assert not _log_formats(text), "formats live in http.conf"
    access_logs = [d for d in _walk(parse_nginx(text)) if d.name == "access_log"]
    assert access_logs and all(d.args[1] == "portal_access" for d in access_logs)
    assert "$uri" in formats["portal_access"] and not _QUERY_VARIABLES.search(formats["portal_access"])


def test_no_shared_file_defines_what_a_deployment_decides() -> None:
    for name in SHARED:
        directives = list(_walk(parse_nginx((NGINX_DIR / name).read_text())))
        assert not [d for d in directives if d.name in {"listen", "root", "upstream", "access_log", "pid",
                                                        "set_real_ip_from"}
                    and d.args != ["off"]], name


def test_deploy_nginx_holds_one_routes_file_and_one_main_file_per_deployment() -> None:
    """No second copy of the routes can appear beside them (three drifted copies is what this replaced)."""
    on_disk = {p.name for p in NGINX_DIR.iterdir()}
    assert on_disk == {*SHARED, *(p.name for p in MAIN_FILES.values()), "kustomization.yaml"}
    locations = [p.name for p in NGINX_DIR.iterdir() if re.search(r"^\s*location\b", p.read_text(), re.M)]
    assert locations == ["routes.conf"]
