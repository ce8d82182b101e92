"""The envelope's optional actor: stamped by the outbox from the request, carried over the wire, and
never a reason to refuse a message (malformed actors are dropped)."""

from __future__ import annotations

import json

import pytest
from portal_shared import actor
from portal_shared.actor import Actor
from portal_shared.events import PasswordChanged, decode, encode
from portal_shared.events.envelope import Envelope


def test_actor_round_trips_and_is_absent_when_unknown() -> None:
    with_actor = Envelope.wrap(PasswordChanged(user_id="u", method="change"), source="profile",
                               actor=Actor("203.0.113.5", "Firefox/133"))
    assert decode(encode(with_actor)).actor == Actor("203.0.113.5", "Firefox/133")
    without = Envelope.wrap(PasswordChanged(user_id="u", method="change"), source="profile")
    assert "actor" not in json.loads(encode(without)) and decode(encode(without)).actor is None


@pytest.mark.parametrize("value", ["x", 5, {"ip": 1, "user_agent": "a"}, {"ip": "1.2.3.4"}, []])
def test_a_malformed_actor_is_dropped_not_refused(value: object) -> None:
    body = json.loads(encode(Envelope.wrap(PasswordChanged(user_id="u", method="change"), source="profile")))
    body["actor"] = value
    assert decode(json.dumps(body)).actor is None


def test_a_long_user_agent_is_bounded() -> None:
    body = json.loads(encode(Envelope.wrap(PasswordChanged(user_id="u", method="change"), source="profile")))
    body["actor"] = {"ip": "1" * 500, "user_agent": "A" * 10_000}
    decoded = decode(json.dumps(body)).actor
    assert decoded is not None and len(decoded.user_agent) == actor.MAX_USER_AGENT and len(decoded.ip) == 64


def test_the_current_actor_is_per_context() -> None:
    actor.bind(Actor("192.0.2.1", "a"))
    assert actor.current() == Actor("192.0.2.1", "a")
    actor.bind(None)
    assert actor.current() is None
