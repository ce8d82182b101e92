"""Signed tokens: purpose-bound, tamper-evident, expiring."""

from __future__ import annotations

import pytest
from portal_shared import tokens


def test_round_trip() -> None:
    token = tokens.sign("k", tokens.IDENTITY, {"sub": "u1"}, ttl_seconds=60)
    assert tokens.verify("k", tokens.IDENTITY, token)["sub"] == "u1"


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "x" + t,
    lambda t: t.replace(".", ""),
])
def test_tampering_is_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    token = tokens.sign("k", tokens.IDENTITY, {"sub": "u1"}, ttl_seconds=60)
    with pytest.raises(tokens.InvalidToken):
        tokens.verify("k", tokens.IDENTITY, mutate(token))


def test_wrong_key_purpose_or_expiry_is_refused() -> None:
    token = tokens.sign("k", tokens.NOT_ME, {"sub": "u1"}, ttl_seconds=60)
    with pytest.raises(tokens.InvalidToken):
        tokens.verify("other", tokens.NOT_ME, token)
    with pytest.raises(tokens.InvalidToken):
        tokens.verify("k", tokens.IDENTITY, token)
    expired = tokens.sign("k", tokens.NOT_ME, {"sub": "u1"}, ttl_seconds=-1)
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.verify("k", tokens.NOT_ME, expired)


def test_service_call_audience() -> None:
    header = tokens.service_authorization("k", issuer="profile", audience="mfa")["Authorization"]
    assert tokens.verify_service_call("k", header, audience="mfa")["iss"] == "profile"
    with pytest.raises(tokens.InvalidToken):
        tokens.verify_service_call("k", header, audience="profile")
    with pytest.raises(tokens.InvalidToken):
        tokens.verify_service_call("k", None, audience="mfa")
