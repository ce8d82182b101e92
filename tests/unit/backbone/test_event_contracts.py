"""Event contracts: every type has a sample that parses and round-trips; anything else is a clear error."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from portal_shared.events import ALL_EVENTS, REGISTRY, SAMPLES_DIR, Envelope, UnknownEventError, decode, encode
from portal_shared.events.contracts import PasswordChanged, TotpEnabled, TwoFactorEnabled

TYPES = sorted(cls.type for cls in ALL_EVENTS)


def _sample(event_type: str) -> dict[str, Any]:
    return json.loads((SAMPLES_DIR / f"{event_type}.json").read_text())


def test_one_sample_per_contract_type_and_nothing_else() -> None:
    assert sorted(p.stem for p in SAMPLES_DIR.glob("*.json")) == TYPES
    assert len(REGISTRY) == len(ALL_EVENTS)  # no two classes claim the same (type, version)


@pytest.mark.parametrize("event_type", TYPES)
def test_sample_parses_and_round_trips(event_type: str) -> None:
    raw = _sample(event_type)
    envelope = decode((SAMPLES_DIR / f"{event_type}.json").read_bytes())
    assert isinstance(envelope.event, REGISTRY[(event_type, raw["version"])])
    assert (envelope.id, envelope.type, envelope.version) == (raw["id"], event_type, raw["version"])
    assert (envelope.occurred_at, envelope.source, envelope.correlation_id) == (
        raw["occurred_at"], raw["source"], raw["correlation_id"])
    # The sample carries exactly the contract's fields: nothing dropped, nothing unknown.
    assert dataclasses.asdict(envelope.event) == raw["data"]
    assert json.loads(encode(envelope)) == raw
    assert decode(encode(envelope)) == envelope


@pytest.mark.parametrize("event_type", TYPES)
def test_events_are_frozen(event_type: str) -> None:
    envelope = decode(json.dumps(_sample(event_type)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        envelope.event.user_id = "someone-else"  # type: ignore[misc]


def test_unknown_fields_are_ignored() -> None:
    raw = _sample("profile.password_changed")
    raw["data"]["added_in_a_later_release"] = {"x": 1}
    raw["trace"] = "envelope fields we do not know either"
    envelope = decode(raw)
    assert envelope.event == PasswordChanged(user_id=raw["data"]["user_id"], method="reset")


def test_optional_fields_may_be_absent() -> None:
    raw = _sample("mfa.two_factor_enabled")
    raw["data"] = {"user_id": "u1", "method": "totp"}
    assert decode(raw).event == TwoFactorEnabled(user_id="u1", method="totp")


def test_wrap_gives_a_fresh_id_and_utc_time() -> None:
    first = Envelope.wrap(TotpEnabled(user_id="u1"), source="mfa")
    second = Envelope.wrap(TotpEnabled(user_id="u1"), source="mfa", correlation_id="req-1")
    assert first.id != second.id
    assert first.correlation_id == first.id  # a message without a request correlates with itself
    assert second.correlation_id == "req-1"
    assert first.occurred_at.endswith("Z")
    assert decode(encode(second)) == second


@pytest.mark.parametrize(("change", "message"), [
    ({"type": "profile.user_deleted"}, "unknown event"),
    ({"version": 2}, "unknown event"),
    ({"version": "1"}, "version"),
    ({"version": True}, "version"),
    ({"type": None}, "type"),
    ({"data": None}, "data"),
    ({"data": ["u1"]}, "data"),
    ({"data": {"method": "reset"}}, "contract"),  # user_id missing
    ({"data": {"user_id": 7, "method": "reset"}}, "must be a string"),
    ({"id": None}, "id"),
    ({"id": ""}, "id"),
    ({"occurred_at": None}, "occurred_at"),
])
def test_bad_envelopes_raise_unknown_event(change: dict[str, Any], message: str) -> None:
    raw = _sample("profile.password_changed") | change
    with pytest.raises(UnknownEventError, match=message):
        decode(raw)
    with pytest.raises(UnknownEventError):
        decode(json.dumps(raw).encode())


def test_integer_fields_are_checked() -> None:
    raw = _sample("mfa.recovery_code_used")
    raw["data"]["remaining"] = "9"
    with pytest.raises(UnknownEventError, match="integer"):
        decode(raw)
    raw["data"]["remaining"] = True
    with pytest.raises(UnknownEventError, match="integer"):
        decode(raw)


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe\x00", b"[1, 2]", b'"a string"', b"null",
                                  b"{" * 100_000, b'{"type": "profile.user_created"}'])
def test_malformed_bodies_raise_unknown_event(body: bytes) -> None:
    with pytest.raises(UnknownEventError):
        decode(body)


def test_missing_envelope_fields_raise_unknown_event() -> None:
    for field in ("id", "type", "version", "occurred_at", "data"):
        raw = _sample("mfa.totp_enabled")
        del raw[field]
        with pytest.raises(UnknownEventError):
            decode(raw)
