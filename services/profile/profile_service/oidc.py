"""The OpenID Connect relying party: discovery, the code-for-token exchange and ID token checks.

Protocol only (no database, no accounts): sso.py decides what a verified token means. Every failure is an
`OidcError` whose reason is logged and never shown: the browser only learns that SSO did not work.
JOSE is joserfc's (signatures, key sets, registered claims); what is ours is the OpenID Connect Core
§3.1.3.7 rules on top: asymmetric algorithms only (no `none`, no HS* keyed with a public key), `iss`
exactly the configured issuer, our client id in `aud` (and as `azp` when there are several), `exp`/`iat`
with 60 s of skew, and the nonce of this sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

# Signature algorithms we accept: public-key ones only. HS* would let anyone holding the provider's
# (public) JWKS, or our own client secret, forge a token; `none` is no signature at all.
ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_SKEW_SECONDS = 60
MAX_DOCUMENT_BYTES = 256 * 1024  # discovery, JWKS and token answers; a provider has no reason to send more
LOOPBACK_HOSTS = {"localhost"}
# Token endpoint client authentication methods (OpenID Connect Core §9): names, not secrets.
SECRET_BASIC = "client_secret_basic"  # noqa: S105
SECRET_POST = "client_secret_post"  # noqa: S105


class OidcError(Exception):
    """Why a step failed (for the log); the user sees the generic SSO failure."""


def valid_issuer(value: object) -> str | None:
    """An issuer we may use: an https URL without query or fragment, or http on a loopback host (tests)."""
    if not isinstance(value, str) or not 8 <= len(value) <= 512 or value != value.strip():
        return None
    return value if _allowed_url(value, allow_query=False) else None


def _allowed_url(url: str, *, allow_query: bool) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    if not host or parts.fragment or parts.username or (parts.query and not allow_query):
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and _loopback(host)


def _loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What discovery found (stored with the provider, so a sign-in needs no discovery round trip)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    signing_algs: tuple[str, ...]
    token_auth: str  # client_secret_basic or client_secret_post
    iss_parameter: bool  # RFC 9207: the provider sends `iss` with the authorization response

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "signing_algs": list(self.signing_algs)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProviderMetadata:
        return cls(**{**data, "signing_algs": tuple(data["signing_algs"])})


def parse_metadata(issuer: str, document: object) -> ProviderMetadata:
    """Check a discovery document (OpenID Connect Discovery 1.0 §3, §4.3) for the configured issuer."""
    if not isinstance(document, dict):
        raise OidcError("discovery document is not a JSON object")
    # §4.3: the issuer in the document must be exactly the one we asked; else a mix-up is possible.
    if document.get("issuer") != issuer:
        raise OidcError(f"discovery issuer {str(document.get('issuer'))[:200]!r} is not the configured issuer")
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        url = document.get(name)
        if not isinstance(url, str) or not _allowed_url(url, allow_query=name == "authorization_endpoint"):
            raise OidcError(f"discovery {name} is missing or not an allowed URL")
        endpoints[name] = url
    response_types = document.get("response_types_supported", ["code"])
    if not isinstance(response_types, list) or "code" not in response_types:
        raise OidcError("the provider does not support the authorization code flow")
    algs = document.get("id_token_signing_alg_values_supported", ["RS256"])
    usable = tuple(a for a in algs if a in ASYMMETRIC_ALGS) if isinstance(algs, list) else ()
    if not usable:
        raise OidcError("the provider signs ID tokens with no algorithm we accept")
    methods = document.get("token_endpoint_auth_methods_supported", [SECRET_BASIC])
    if not isinstance(methods, list):
        raise OidcError("token_endpoint_auth_methods_supported is not a list")
    if SECRET_BASIC in methods:
        token_auth = SECRET_BASIC
    elif SECRET_POST in methods:
        token_auth = SECRET_POST
    else:
        raise OidcError("the provider takes no client secret at its token endpoint")
    return ProviderMetadata(issuer=issuer, signing_algs=usable, token_auth=token_auth,
                            iss_parameter=document.get("authorization_response_iss_parameter_supported") is True,
                            **endpoints)


def authorization_url(metadata: ProviderMetadata, *, client_id: str, redirect_uri: str, state: str, nonce: str,
                      code_challenge: str, login_hint: str | None, max_age: int | None = None) -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": "openid email profile", "state": state, "nonce": nonce,
              "code_challenge": code_challenge, "code_challenge_method": "S256"}
    if login_hint:
        params["login_hint"] = login_hint
    if max_age is not None:  # 0 for a re-authentication: the provider must ask the person again
        params["max_age"] = str(max_age)
    separator = "&" if urlsplit(metadata.authorization_endpoint).query else "?"
    return f"{metadata.authorization_endpoint}{separator}{urlencode(params)}"


def nonce_hash(nonce: str) -> bytes:
    return hashlib.sha256(nonce.encode()).digest()


class OidcClient:
    """HTTP to identity providers (each call ≤ `timeout` seconds), with a per-provider JWKS cache."""

    def __init__(self, http: aiohttp.ClientSession, *, timeout: float) -> None:
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._key_sets: dict[str, KeySet] = {}

    async def _json(self, method: str, url: str, **kwargs: Any) -> tuple[int, object]:
        try:
            async with self._http.request(method, url, timeout=self._timeout, allow_redirects=False,
                                          **kwargs) as response:
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise OidcError(f"{url}: answer larger than {MAX_DOCUMENT_BYTES} bytes")
                try:
                    return response.status, json.loads(body)
                except ValueError:
                    raise OidcError(f"{url}: answer is not JSON (HTTP {response.status})") from None
        except (TimeoutError, aiohttp.ClientError, UnicodeError) as exc:
            raise OidcError(f"{url}: {type(exc).__name__}") from None

    async def discover(self, issuer: str) -> ProviderMetadata:
        status, document = await self._json("GET", f"{issuer.rstrip('/')}/.well-known/openid-configuration")
        if status != 200:
            raise OidcError(f"discovery answered HTTP {status}")
        metadata = parse_metadata(issuer, document)
        await self._fetch_keys(metadata.jwks_uri)  # a provider whose keys can't be read is not usable
        return metadata

    async def exchange_code(self, metadata: ProviderMetadata, *, client_id: str, client_secret: str, code: str,
                            code_verifier: str, redirect_uri: str) -> str:
        """The authorization code for the provider's ID token (RFC 6749 §4.1.3, with PKCE's verifier)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier}
        headers = {"Accept": "application/json"}
        if metadata.token_auth == SECRET_BASIC:
            # RFC 6749 §2.3.1: id and secret are form-encoded before they go into Basic credentials.
            pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            form |= {"client_id": client_id, "client_secret": client_secret}
        status, answer = await self._json("POST", metadata.token_endpoint, data=form, headers=headers)
        if status != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise OidcError(f"token endpoint answered HTTP {status} ({str(error)[:100]})")
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or len(id_token) > MAX_DOCUMENT_BYTES:
            raise OidcError("token answer has no ID token")
        return id_token

    async def verify_id_token(self, metadata: ProviderMetadata, id_token: str, *, client_id: str,
                              expected_nonce_hash: bytes) -> dict[str, Any]:
        """The ID token's claims, once its signature and claims pass OpenID Connect Core §3.1.3.7."""
        try:
            header = jws.extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError, TypeError) as exc:
            raise OidcError(f"ID token is not a compact JWS ({type(exc).__name__})") from None
        alg = header.get("alg")
        if alg not in metadata.signing_algs:
            raise OidcError(f"ID token algorithm {str(alg)[:20]!r} is not accepted")
        key = await self._signing_key(metadata.jwks_uri, header.get("kid"))
        try:
            claims = jwt.decode(id_token, key, algorithms=[alg]).claims
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_SKEW_SECONDS,
                iss={"essential": True, "value": metadata.issuer},
                aud={"essential": True, "value": client_id},
                sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError, TypeError) as exc:
            raise OidcError(f"ID token refused: {type(exc).__name__} {exc}"[:300]) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if ("azp" in claims or len(audiences) > 1) and claims.get("azp") != client_id:
            raise OidcError("ID token azp is not our client id")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce_hash(nonce), expected_nonce_hash):
            raise OidcError("ID token nonce is not this sign-in's")
        if not isinstance(claims.get("sub"), str) or not 0 < len(claims["sub"]) <= 255:
            raise OidcError("ID token sub is malformed")
        return claims

    async def _signing_key(self, jwks_uri: str, kid: object) -> Any:
        if kid is not None and not isinstance(kid, str):
            raise OidcError("ID token kid is not a string")
        cached = self._key_sets.get(jwks_uri)
        if cached is not None:
            try:
                return cached.get_by_kid(kid)
            except JoseError:
                pass
        # Not cached, or an unknown kid: the provider may have rotated its keys. Refetching for each such
        # token cannot be turned into a flood: a token reaches us only from the provider's own token
        # endpoint, for a code of a sign-in we started (itself rate limited per address).
        try:
            return (await self._fetch_keys(jwks_uri)).get_by_kid(kid)
        except JoseError:
            raise OidcError("ID token kid is not in the provider's key set") from None

    async def _fetch_keys(self, jwks_uri: str) -> KeySet:
        status, document = await self._json("GET", jwks_uri)
        if status != 200 or not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise OidcError(f"JWKS answered HTTP {status} without a key list")
        try:
            key_set = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OidcError(f"JWKS is malformed ({type(exc).__name__})") from None
        if any(key.key_type == "oct" for key in key_set.keys):
            raise OidcError("JWKS publishes a symmetric key")
        self._key_sets[jwks_uri] = key_set
        return key_set
