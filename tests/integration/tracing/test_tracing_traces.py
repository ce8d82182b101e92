"""One request, one trace (issue #18): the real services with the SDK's in-memory exporter.

(a) a forgot-password request: profile's SERVER span → its SQL and the outbox row → the relay's PRODUCER
    span → RabbitMQ → the notifier's CONSUMER span → the SMTP send, all in the trace of the gateway's
    `traceparent`;
(b) a sign-in with TOTP: profile's SERVER span → its CLIENT span to mfa → mfa's SERVER span, one trace;
(c) no span of either run carries a password, reset token or link, TOTP code or secret, session or CSRF
    cookie, or an email address.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pyotp
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from portal_devstack.process import free_port
from portal_shared import tokens, tracing
from profile_service.bootstrap import seed_demo

from tests.integration.tracing.tracing_support import assert_no_secrets, until_span
from tests.support.services import running_service
from tests.support.smtp import SmtpSink

PASSWORD = "Sturdy-Lantern-42"
DEMO_EMAIL = "demo@client.example"


def gateway_headers() -> tuple[str, dict[str, str]]:
    """What nginx sends: its request id, and a traceparent whose trace id is that request id."""
    trace_id = secrets.token_hex(16)
    return trace_id, {"X-Request-ID": trace_id, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}


def in_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context and format(s.context.trace_id, "032x") == trace_id]


def scope(span: ReadableSpan) -> str:
    return span.instrumentation_scope.name if span.instrumentation_scope else ""


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


@pytest.fixture
async def services(stack_env: dict[str, str], spans: InMemorySpanExporter) -> AsyncIterator[dict[str, str]]:
    await seed_demo(stack_env["PROFILE_DATABASE_URL"], password=PASSWORD)
    profile_port, mfa_port = free_port(), free_port()
    urls = {"profile": f"http://127.0.0.1:{profile_port}", "mfa": f"http://127.0.0.1:{mfa_port}"}
    async with running_service("profile", stack_env, HTTP_PORT=profile_port, MFA_URL=urls["mfa"]), \
            running_service("mfa", stack_env, HTTP_PORT=mfa_port, PROFILE_URL=urls["profile"]), \
            running_service("notifier", stack_env):
        yield urls


async def test_a_forgot_password_request_is_one_trace_to_the_smtp_send(
        services: dict[str, str], spans: InMemorySpanExporter, smtp_sink: SmtpSink) -> None:
    trace_id, headers = gateway_headers()
    # untraced: this test's own client would otherwise be instrumented too and send its own traceparent.
    with tracing.untraced():
        async with aiohttp.ClientSession() as http, http.post(
                services["profile"] + "/api/auth/password-reset", json={"email": DEMO_EMAIL},
                headers=headers) as answer:
            assert answer.status == 202
    [email] = await smtp_sink.wait_for(1, address=DEMO_EMAIL)
    sent = await until_span(spans, lambda s: s.name.startswith("send email")
                            and format(s.context.trace_id, "032x") == trace_id)

    trace = in_trace(spans, trace_id)
    [server] = [s for s in trace if s.kind is SpanKind.SERVER]
    assert (server.name, scope(server)) == ("POST /api/auth/password-reset", "portal.profile")
    assert format(parent_id(server) or 0, "016x") == headers["traceparent"][36:52], "the gateway's span is the parent"
    sql = [s for s in trace if "db.statement" in (s.attributes or {}) and parent_id(s) == server.context.span_id]
    assert any("INSERT INTO outbox" in str(s.attributes["db.statement"]) for s in sql), [s.name for s in sql]
    [publish] = [s for s in trace if s.kind is SpanKind.PRODUCER]
    assert publish.name == "publish profile.password_reset_requested" and scope(publish) == "portal.profile"
    [consume] = [s for s in trace if s.kind is SpanKind.CONSUMER and scope(s) == "portal.notifier"]
    assert parent_id(consume) == publish.context.span_id, "the consumer continues the AMQP header's context"
    assert any(parent_id(s) == consume.context.span_id and "db.statement" in (s.attributes or {}) for s in trace), \
        "the consumer's SQL is its child"
    assert scope(sent) == "portal.notifier" and sent.attributes["email.type"] == "profile.password_reset_requested"
    assert sent.start_time >= consume.start_time >= publish.start_time >= server.start_time
    assert parent_id(sent) == consume.context.span_id, "the email job carries the consume's traceparent"
    smtp = await until_span(spans, lambda s: s.name == "smtp send" and parent_id(s) == sent.context.span_id)
    assert smtp.kind is SpanKind.CLIENT and smtp.attributes["server.port"] == smtp_sink.port

    link = re.search(r"https?://\S*token=[A-Za-z0-9._~-]+", email.get_body().get_content())  # type: ignore[union-attr]
    assert link is not None
    token = link.group(0).split("token=")[1]
    assert_no_secrets(list(spans.get_finished_spans()), [DEMO_EMAIL, PASSWORD, token, link.group(0)])


async def test_a_totp_sign_in_is_one_trace_across_profile_and_mfa(
        services: dict[str, str], spans: InMemorySpanExporter, stack_env: dict[str, str]) -> None:
    with tracing.untraced():  # the test's own client calls are not part of the traces (as above)
        await _totp_sign_in(services, spans, stack_env)


async def _totp_sign_in(services: dict[str, str], spans: InMemorySpanExporter, stack_env: dict[str, str]) -> None:
    secrets_seen: list[str] = [DEMO_EMAIL, PASSWORD]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        secret = await _enable_totp(http, services, stack_env)
        secrets_seen += [secret, *_cookies(jar)]
    spans.clear()  # the set-up's own traces: the sign-in below is what is checked

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(services["profile"] + "/api/auth/login", json={"email": DEMO_EMAIL, "password": PASSWORD},
                             headers=gateway_headers()[1]) as answer:
            assert (await answer.json())["state"] == "second_factor_required"
        code = pyotp.TOTP(secret).at(_now() + 30)  # the next step: later than the one that enabled it
        trace_id, headers = gateway_headers()
        headers["X-CSRF-Token"] = next(c.value for c in jar if c.key == "portal_csrf")
        async with http.post(services["profile"] + "/api/auth/login/totp", json={"code": code},
                             headers=headers) as answer:
            assert answer.status == 200, await answer.text()
        secrets_seen += [code, *_cookies(jar)]

    trace = in_trace(spans, trace_id)
    servers = {scope(s): s for s in trace if s.kind is SpanKind.SERVER}
    assert servers["portal.profile"].name == "POST /api/auth/login/totp"
    mfa_server = servers["portal.mfa"]
    client = next(s for s in trace if s.kind is SpanKind.CLIENT and s.context.span_id == parent_id(mfa_server))
    assert "aiohttp" in scope(client), "profile's call to mfa is an aiohttp client span"
    assert _ancestor(trace, client, servers["portal.profile"]), "the client span is inside profile's request"
    assert any(parent_id(s) == mfa_server.context.span_id and "db.statement" in (s.attributes or {}) for s in trace)
    assert_no_secrets(list(spans.get_finished_spans()), secrets_seen)


async def test_an_unsampled_sign_in_records_nothing_and_still_passes_its_decision_on(
        services: dict[str, str], spans: InMemorySpanExporter, stack_env: dict[str, str]) -> None:
    """The gateway's traceparent says "not sampled" (flag 00): no span of profile (its SQL neither, the
    instrumentations are suppressed) and none of mfa — which would start a trace of its own, recorded under
    these tests' always-on sampler, if the traceparent did not reach it with the call."""
    with tracing.untraced():
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            secret = await _enable_totp(http, services, stack_env)
        spans.clear()
        trace_id = secrets.token_hex(16)
        unsampled = {"X-Request-ID": trace_id, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-00"}
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.post(services["profile"] + "/api/auth/login", headers=unsampled,
                                 json={"email": DEMO_EMAIL, "password": PASSWORD}) as answer:
                assert (await answer.json())["state"] == "second_factor_required"
            headers = {**unsampled, "X-CSRF-Token": next(c.value for c in jar if c.key == "portal_csrf")}
            async with http.post(services["profile"] + "/api/auth/login/totp", headers=headers,
                                 json={"code": pyotp.TOTP(secret).at(_now() + 30)}) as answer:
                assert answer.status == 200, await answer.text()
    finished = list(spans.get_finished_spans())
    assert not [s.name for s in finished if s.name.startswith(("POST /api/auth", "POST /internal"))], \
        "an unsampled request is recorded nowhere, mfa's side included"
    assert not in_trace(spans, trace_id)


def _ancestor(trace: list[ReadableSpan], span: ReadableSpan, ancestor: ReadableSpan) -> bool:
    by_id = {s.context.span_id: s for s in trace}
    current: ReadableSpan | None = span
    while current is not None:
        if current.context.span_id == ancestor.context.span_id:
            return True
        current = by_id.get(parent_id(current) or 0)
    return False


def _cookies(jar: aiohttp.CookieJar) -> list[str]:
    return [c.value for c in jar if c.key in {"portal_session", "portal_csrf", "portal_device"} and c.value]


def _now() -> float:
    return time.time()


async def _enable_totp(http: aiohttp.ClientSession, urls: dict[str, str], env: dict[str, str]) -> str:
    """Sign in, then set up and verify TOTP at mfa, standing in for nginx's auth_request as the mfa tests do."""
    async with http.post(urls["profile"] + "/api/auth/login", json={"email": DEMO_EMAIL, "password": PASSWORD}) as r:
        assert r.status == 200
    csrf = next(c.value for c in http.cookie_jar if c.key == "portal_csrf")
    session = next(c.value for c in http.cookie_jar if c.key == "portal_session")

    async def identity(method: str) -> dict[str, str]:
        async with aiohttp.ClientSession() as plain, plain.get(
                urls["profile"] + "/internal/auth", headers={"Cookie": f"portal_session={session}",
                                                             "X-CSRF-Token": csrf, "X-Original-Method": method}) as r:
            assert r.status in (200, 204)
            return {tokens.IDENTITY_HEADER: r.headers[tokens.IDENTITY_HEADER], "X-Request-ID": uuid.uuid4().hex}

    async with aiohttp.ClientSession() as plain:
        async with plain.post(urls["mfa"] + "/api/mfa/totp/setup", headers=await identity("POST")) as r:
            assert r.status == 200, await r.text()
            secret = (await r.json())["secret"]
        async with plain.post(urls["mfa"] + "/api/mfa/totp/verify", json={"code": pyotp.TOTP(secret).now()},
                              headers=await identity("POST")) as r:
            assert r.status == 200, await r.text()
    return str(secret)
