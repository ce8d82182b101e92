"""A small but real OpenID Connect provider for tests (aiohttp + joserfc), which can also misbehave.

It serves discovery, JWKS, an authorization endpoint that approves at once for the subject the test
chose (`next_login`), and a token endpoint that checks client authentication, the single-use code, the
redirect URI and the PKCE verifier (S256) as a real provider does. What a hostile or broken provider
does is set per test: claims overridden in the ID token, another signing key or algorithm, a changed
issuer in discovery, a slow token endpoint. oidc-provider-mock (a third-party provider) covers the
well-behaved path in other tests; this one exists for the faults it cannot produce.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

CLIENT_ID = "portal-test-client"
CLIENT_SECRET = "s3cret-of-the-portal"


@dataclass
class Login:
    """Who the next authorization approves, and with which claims (added to sub/iss/aud/...)."""

    sub: str
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass
class Faults:
    id_token_claims: dict[str, Any] = field(default_factory=dict)  # override or add claims (None deletes)
    sign_with: str = "current"  # "current", "stranger" (a key not in the JWKS), "hs256-public", "none"
    discovery_issuer: str | None = None  # discovery names another issuer (mix-up)
    token_delay: float = 0.0  # seconds the token endpoint waits before answering
    token_error: str | None = None  # the token endpoint answers 400 with this error
    authorize_error: str | None = None  # the authorization endpoint sends error=… back
    response_iss: str | None = None  # RFC 9207 `iss` sent with the authorization response


class OidcProvider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"})
        self.stranger = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"})
        self.next_login: Login | None = None
        # Approve whoever the authorization request's `login_hint` names instead (sub derived from it, email
        # verified): many people signing in at once, as a load needs.
        self.login_by_hint = False
        self.faults = Faults()
        self.codes: dict[str, dict[str, Any]] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests = 0
        self.jwks_requests = 0
        self._server: TestServer | None = None

    @property
    def issuer(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    def rotate_key(self) -> None:
        """A new signing key with a new kid; the JWKS publishes only the new one."""
        self.key = RSAKey.generate_key(2048, parameters={"kid": f"key-{secrets.token_hex(4)}", "use": "sig"})

    async def start(self, port: int | None = None) -> OidcProvider:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        self._server = TestServer(app, host="127.0.0.1", port=port)
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _discovery(self, _: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.faults.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        })

    async def _jwks(self, _: web.Request) -> web.Response:
        self.jwks_requests += 1
        return web.json_response(KeySet([self.key]).as_dict(private=False))

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        back: dict[str, str] = {"state": query.get("state", "")}
        if self.faults.authorize_error:
            back["error"] = self.faults.authorize_error
        else:
            hint = query.get("login_hint")
            login = (Login(f"sub-{hint}", {"email": hint, "email_verified": True}) if self.login_by_hint and hint
                     else self.next_login)
            assert login is not None, "the test did not say who signs in"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"login": login, "nonce": query.get("nonce"),
                                "challenge": query.get("code_challenge"), "client_id": query.get("client_id"),
                                "redirect_uri": query.get("redirect_uri")}
            back["code"] = code
        if self.faults.response_iss:
            back["iss"] = self.faults.response_iss
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode(back)}")

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if self.faults.token_delay:
            await asyncio.sleep(self.faults.token_delay)  # a slow provider, not a wait in a test
        form = await request.post()
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        if self.faults.token_error:
            return web.json_response({"error": self.faults.token_error}, status=400)
        grant = self.codes.pop(str(form.get("code", "")), None)  # single use
        if grant is None or form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant["challenge"] or form.get("redirect_uri") != grant["redirect_uri"]:
            return web.json_response({"error": "invalid_grant", "error_description": "PKCE or redirect"}, status=400)
        return web.json_response({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                  "expires_in": 3600, "id_token": self.id_token(grant)})

    def id_token(self, grant: dict[str, Any]) -> str:
        login: Login = grant["login"]
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "sub": login.sub, "aud": grant["client_id"], "iat": now,
                                  "exp": now + 300, "nonce": grant["nonce"], **login.claims}
        for name, value in self.faults.id_token_claims.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self.sign(claims)

    def sign(self, claims: dict[str, Any]) -> str:
        how = self.faults.sign_with
        if how == "none":
            header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
            body = jwt.encode({"alg": "HS256"}, claims, OctKey.generate_key(256)).split(".")[1]
            return f"{header}.{body}."
        if how == "hs256-public":  # the classic confusion: HMAC keyed with the provider's public key
            # Built by hand: JOSE libraries (rightly) refuse to make this token.
            def part(data: dict[str, Any]) -> str:
                return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

            signing_input = f"{part({'alg': 'HS256', 'kid': self.key.kid})}.{part(claims)}"
            mac = hmac.new(self.key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        key = self.stranger if how == "stranger" else self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


async def started_provider() -> OidcProvider:
    return await OidcProvider().start()
