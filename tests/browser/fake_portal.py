"""An in-memory stand-in for the profile and mfa services, speaking the contract's API shapes.

It lets the browser tests drive the real UI through the real nginx gateway before (and independently
of) the real services: one demo user, sessions by cookie, TOTP checked with pyotp, WebAuthn
registrations accepted without verification, recovery codes, sessions list, impersonation notice.
"""

from __future__ import annotations

import io
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyotp
import segno
from aiohttp import web

from tests.e2e.stubs import NAME, ORIGIN, echo_app

EMAIL = "demo@client.example"
PASSWORD = "correct horse battery"
PROBLEMS = "https://portal.example/problems/"


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def problem(status: int, detail: str, kind: str | None = None, errors: dict | None = None) -> web.Response:
    body: dict[str, Any] = {"type": PROBLEMS + (kind or str(status)), "title": "Error", "status": status,
                            "detail": detail}
    if errors:
        body["errors"] = errors
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")


@dataclass
class FakeState:
    name: str = "Demo User"
    phone: str | None = None
    title: str | None = "Office Manager"
    mobile: str | None = "+44 20 7946 0018"
    totp_secret: str | None = None
    pending_secret: str | None = None
    keys: list[dict[str, Any]] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)  # session id -> info
    impersonator: dict[str, str] | None = None
    require_reauth_for_delete: bool = False
    reauthed: bool = False

    @property
    def two_factor(self) -> bool:
        return bool(self.totp_secret or self.keys)

    def new_codes(self) -> list[str]:
        self.codes = [f"{secrets.token_hex(2)}-{secrets.token_hex(2)}" for _ in range(10)]
        return list(self.codes)

    def profile(self) -> dict[str, Any]:
        return {"id": "u1", "email": EMAIL, "name": self.name, "initial": self.name[:1].upper(),
                "phone": self.phone, "company": {"id": "c1", "name": "Demo Client Co"}, "title": self.title,
                "mobile": self.mobile, "impersonator": self.impersonator}

    def mfa(self) -> dict[str, Any]:
        return {"two_factor_enabled": self.two_factor,
                "totp": {"enabled": bool(self.totp_secret), "enabled_at": now() if self.totp_secret else None},
                "security_keys": self.keys,
                "recovery_codes": {"remaining": len(self.codes)} if self.two_factor else None}


STATE = web.AppKey("state", FakeState)


async def _ready(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _session(request: web.Request) -> dict[str, Any] | None:
    sid = request.cookies.get("portal_session", "")
    return request.app[STATE].sessions.get(sid)


def _csrf_ok(request: web.Request, session: dict[str, Any], method: str | None = None) -> bool:
    if (method or request.method) in ("GET", "HEAD"):
        return True
    return request.headers.get("X-CSRF-Token") == session["csrf"]


def _signed_in(request: web.Request) -> dict[str, Any] | web.Response:
    session = _session(request)
    if session is None or session["state"] != "signed_in":
        return problem(401, "Sign in to continue.", "not-signed-in")
    if not _csrf_ok(request, session):
        return problem(403, "Missing or wrong CSRF token.", "forbidden")
    return session


def _start_session(request: web.Request, response: web.Response, state_name: str) -> None:
    state = request.app[STATE]
    sid, csrf = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    state.sessions[sid] = {"id": secrets.token_hex(4), "state": state_name, "csrf": csrf, "created_at": now(),
                           "user_agent": request.headers.get("User-Agent", ""), "ip": "127.0.0.1", "attempts": 0}
    response.set_cookie("portal_session", sid, httponly=True, samesite="Lax", path="/")
    response.set_cookie("portal_csrf", csrf, samesite="Lax", path="/")


async def login(request: web.Request) -> web.Response:
    body = await request.json()
    state = request.app[STATE]
    if body.get("email", "").lower() != EMAIL or body.get("password") != PASSWORD:
        return problem(401, "The email or password is not right.", "invalid-credentials")
    factors = (["totp"] if state.totp_secret else []) + (["webauthn"] if state.keys else []) + \
        (["recovery_code"] if state.two_factor else [])
    answer = {"state": "second_factor_required", "second_factors": factors} if factors else {"state": "signed_in"}
    response = web.json_response(answer)
    _start_session(request, response, answer["state"])
    return response


async def login_totp(request: web.Request) -> web.Response:
    session = _session(request)
    state = request.app[STATE]
    if session is None or session["state"] != "second_factor_required":
        return problem(401, "Sign in again.", "sign-in-expired")
    body = await request.json()
    if not state.totp_secret or not pyotp.TOTP(state.totp_secret).verify(body.get("code", ""), valid_window=1):
        session["attempts"] += 1
        if session["attempts"] >= 5:
            return problem(401, "This sign-in has expired.", "sign-in-expired")
        return problem(401, "That code is not right.", "invalid-code")
    session["state"] = "signed_in"
    return web.json_response({"state": "signed_in", "recovery_codes_remaining": len(state.codes)})


async def login_recovery(request: web.Request) -> web.Response:
    session = _session(request)
    state = request.app[STATE]
    if session is None or session["state"] != "second_factor_required":
        return problem(401, "Sign in again.", "sign-in-expired")
    code = (await request.json()).get("code", "").strip().lower()
    if code not in state.codes:
        return problem(401, "That recovery code is not right.", "invalid-code")
    state.codes.remove(code)
    session["state"] = "signed_in"
    return web.json_response({"state": "signed_in", "recovery_codes_remaining": len(state.codes)})


async def session_info(request: web.Request) -> web.Response:
    session = _session(request)
    if session is None:
        return problem(401, "Not signed in.", "not-signed-in")
    state = request.app[STATE]
    return web.json_response({"user": {"id": "u1", "email": EMAIL, "name": state.name, "role": "client_user"},
                              "state": session["state"], "impersonator": state.impersonator,
                              "csrf_token": session["csrf"]})


async def logout(request: web.Request) -> web.Response:
    request.app[STATE].sessions.pop(request.cookies.get("portal_session", ""), None)
    response = web.Response(status=204)
    response.del_cookie("portal_session", path="/")
    response.del_cookie("portal_csrf", path="/")
    return response


async def sessions(request: web.Request) -> web.Response:
    me = _signed_in(request)
    if isinstance(me, web.Response):
        return me
    rows = [{"id": s["id"], "current": s is me, "created_at": s["created_at"], "last_seen_at": now(),
             "user_agent": s["user_agent"], "ip": s["ip"]} for s in request.app[STATE].sessions.values()]
    return web.json_response(rows)


async def revoke_session(request: web.Request) -> web.Response:
    me = _signed_in(request)
    if isinstance(me, web.Response):
        return me
    state = request.app[STATE]
    target = request.match_info.get("id")
    for sid, s in list(state.sessions.items()):
        if s is not me and (target is None or s["id"] == target):
            del state.sessions[sid]
    return web.Response(status=204)


async def reauth(request: web.Request) -> web.Response:
    me = _signed_in(request)
    if isinstance(me, web.Response):
        return me
    if (await request.json()).get("password") != PASSWORD:
        return problem(422, "That password is not right.", "validation-failed", {"password": ["Wrong password."]})
    request.app[STATE].reauthed = True
    return web.Response(status=204)


async def password_reset(request: web.Request) -> web.Response:
    await request.json()
    return web.Response(status=202)


async def token_password(request: web.Request) -> web.Response:
    body = await request.json()
    if body.get("token") != "valid-token":
        return problem(400, "This link is not valid.", "invalid-reset-token")
    if len(body.get("new_password", "")) < 8:
        return problem(422, "Too short.", "validation-failed", {"new_password": ["At least 8 characters."]})
    return web.Response(status=204)


async def not_me(request: web.Request) -> web.Response:
    body = await request.json()
    if body.get("token") != "valid-token":
        return problem(400, "This link is not valid.", "invalid-token")
    return web.Response(status=204)


async def get_profile(request: web.Request) -> web.Response:
    me = _signed_in(request)
    if isinstance(me, web.Response):
        return me
    state = request.app[STATE]
    if request.method == "PATCH":
        body = await request.json()
        errors = {}
        if "name" in body and not str(body["name"]).strip():
            errors["name"] = ["Enter your name."]
        if body.get("phone") and not str(body["phone"]).replace(" ", "").lstrip("+").isdigit():
            errors["phone"] = ["Enter a valid phone number."]
        if errors:
            return problem(422, next(iter(errors.values()))[0], "validation-failed", errors)
        state.name = body.get("name", state.name)
        state.phone = body.get("phone", state.phone)
    return web.json_response(state.profile())


async def change_password(request: web.Request) -> web.Response:
    me = _signed_in(request)
    if isinstance(me, web.Response):
        return me
    body = await request.json()
    if body.get("current_password") != PASSWORD:
        return problem(422, "The current password is not right.", "validation-failed",
                       {"current_password": ["The current password is not right."]})
    return web.Response(status=204)


async def internal_auth(request: web.Request) -> web.Response:
    session = _session(request)
    if session is None or session["state"] != "signed_in":
        return problem(401, "Sign in to continue.", "not-signed-in")
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.app[ORIGIN]:
        return problem(403, "Foreign origin.", "forbidden")
    if not _csrf_ok(request, session, request.headers.get("X-Original-Method", "GET")):
        return problem(403, "Missing or wrong CSRF token.", "forbidden")
    return web.Response(status=204, headers={"X-Portal-Identity": f"fake-identity-{session['id']}"})


def profile_app(state: FakeState) -> web.Application:
    app = web.Application()
    app[NAME] = "profile"
    app[STATE] = state
    r = app.router
    r.add_get("/health/ready", _ready)
    r.add_get("/internal/auth", internal_auth)
    r.add_post("/api/auth/login", login)
    r.add_post("/api/auth/login/totp", login_totp)
    r.add_post("/api/auth/login/recovery-code", login_recovery)
    r.add_get("/api/auth/session", session_info)
    r.add_post("/api/auth/logout", logout)
    r.add_get("/api/auth/sessions", sessions)
    r.add_delete("/api/auth/sessions", revoke_session)
    r.add_delete("/api/auth/sessions/{id}", revoke_session)
    r.add_post("/api/auth/reauth", reauth)
    r.add_post("/api/auth/password-reset", password_reset)
    r.add_post("/api/auth/password-reset/confirm", token_password)
    r.add_post("/api/auth/invitation/accept", token_password)
    r.add_post("/api/auth/not-me", not_me)
    r.add_route("GET", "/api/profile", get_profile)
    r.add_route("PATCH", "/api/profile", get_profile)
    r.add_post("/api/profile/password", change_password)
    return app


# ---------- mfa ----------

def _mfa_session(request: web.Request) -> web.Response | None:
    if not request.headers.get("X-Portal-Identity", "").startswith("fake-identity-"):
        return problem(401, "No identity from the gateway.", "not-signed-in")
    if request.method != "GET" and request.app[STATE].impersonator:
        return problem(403, "Not while an administrator is viewing this account.", "forbidden")
    return None


async def mfa_status(request: web.Request) -> web.Response:
    return _mfa_session(request) or web.json_response(request.app[STATE].mfa())


async def totp_setup(request: web.Request) -> web.Response:
    if refused := _mfa_session(request):
        return refused
    state = request.app[STATE]
    if state.totp_secret:
        return problem(409, "The authenticator app is already enabled.", "conflict")
    state.pending_secret = pyotp.random_base32()
    uri = pyotp.TOTP(state.pending_secret).provisioning_uri(name=EMAIL, issuer_name="Client Portal")
    svg = io.BytesIO()
    segno.make(uri).save(svg, kind="svg", scale=4, xmldecl=False)
    return web.json_response({"secret": state.pending_secret, "otpauth_uri": uri, "qr_svg": svg.getvalue().decode()})


async def totp_verify(request: web.Request) -> web.Response:
    if refused := _mfa_session(request):
        return refused
    state = request.app[STATE]
    code = (await request.json()).get("code", "")
    if not state.pending_secret or not pyotp.TOTP(state.pending_secret).verify(code, valid_window=1):
        return problem(422, "That code is not right.", "validation-failed", {"code": ["That code is not right."]})
    was_on = state.two_factor
    state.totp_secret, state.pending_secret = state.pending_secret, None
    return web.json_response({"recovery_codes": None if was_on else state.new_codes()})


async def totp_disable(request: web.Request) -> web.Response:
    if refused := _mfa_session(request):
        return refused
    state = request.app[STATE]
    if (await request.json()).get("password") != PASSWORD:
        return problem(422, "That password is not right.", "validation-failed", {"password": ["Wrong password."]})
    state.totp_secret = None
    if not state.two_factor:
        state.codes = []
    return web.Response(status=204)


async def register_options(request: web.Request) -> web.Response:
    if refused := _mfa_session(request):
        return refused
    import base64

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return web.json_response({
        "rp": {"name": "Client Portal", "id": "localhost"},
        "user": {"id": b64(b"u1"), "name": EMAIL, "displayName": request.app[STATE].name},
        "challenge": b64(secrets.token_bytes(32)),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}],
        "timeout": 60000,
        "excludeCredentials": [],
        "authenticatorSelection": {"residentKey": "preferred", "userVerification": "preferred"},
        "attestation": "none",
        "extensions": {"credProps": True},
    })


async def register(request: web.Request) -> web.Response:
    if refused := _mfa_session(request):
        return refused
    state = request.app[STATE]
    body = await request.json()
    credential = body.get("credential") or {}
    if not credential.get("id") or not str(body.get("name", "")).strip():
        return problem(422, "Name the key.", "validation-failed", {"name": ["Enter a name for the key."]})
    was_on = state.two_factor
    rk = bool(((credential.get("clientExtensionResults") or {}).get("credProps") or {}).get("rk"))
    key = {"id": credential["id"], "name": body["name"], "passkey": rk, "created_at": now(), "last_used_at": None}
    state.keys.append(key)
    return web.json_response({"key": key, "recovery_codes": None if was_on else state.new_codes()}, status=201)


async def delete_key(request: web.Request) -> web.Response:
    if refused := _mfa_session(request):
        return refused
    state = request.app[STATE]
    if state.require_reauth_for_delete and not state.reauthed:
        return problem(403, "Confirm your password first.", "reauth-required")
    state.keys = [k for k in state.keys if k["id"] != request.match_info["id"]]
    if not state.two_factor:
        state.codes = []
    return web.Response(status=204)


async def regenerate(request: web.Request) -> web.Response:
    if refused := _mfa_session(request):
        return refused
    state = request.app[STATE]
    if (await request.json()).get("password") != PASSWORD:
        return problem(422, "That password is not right.", "validation-failed", {"password": ["Wrong password."]})
    if not state.two_factor:
        return problem(409, "Two-factor authentication is off.", "conflict")
    return web.json_response({"recovery_codes": state.new_codes()})


def mfa_app(state: FakeState) -> web.Application:
    app = web.Application()
    app[NAME] = "mfa"
    app[STATE] = state
    r = app.router
    r.add_get("/health/ready", _ready)
    r.add_get("/api/mfa", mfa_status)
    r.add_post("/api/mfa/totp/setup", totp_setup)
    r.add_post("/api/mfa/totp/verify", totp_verify)
    r.add_post("/api/mfa/totp/disable", totp_disable)
    r.add_post("/api/mfa/webauthn/register/options", register_options)
    r.add_post("/api/mfa/webauthn/register", register)
    r.add_delete("/api/mfa/webauthn/{id}", delete_key)
    r.add_post("/api/mfa/recovery-codes/regenerate", regenerate)
    return app


def fake_apps(state: FakeState) -> dict[str, web.Application]:
    return {"profile": profile_app(state), "mfa": mfa_app(state), "notifier": echo_app("notifier")}
