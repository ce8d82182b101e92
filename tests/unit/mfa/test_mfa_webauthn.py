"""WebAuthn payloads from a software authenticator against py_webauthn with our relying-party settings.

Ceremony state (replayed challenge, wrong user's credential, userHandle) needs the database: those cases
are in tests/integration/mfa/test_mfa_webauthn_flows.py.
"""

from __future__ import annotations

import pytest
from mfa_service import ceremony
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json_dict
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse

from tests.support.soft_authenticator import SoftAuthenticator

RP = ceremony.RelyingParty.from_settings("localhost", "http://localhost:8080/")


def registration_options() -> dict:
    return options_to_json_dict(generate_registration_options(
        rp_id=RP.rp_id, rp_name="Client Portal", user_name="a@b.example", user_id=b"user-1"))


def register(auth: SoftAuthenticator, **kwargs) -> tuple[dict, bytes]:  # type: ignore[no-untyped-def]
    options = registration_options()
    credential = auth.create(options, **kwargs)
    verified = verify_registration_response(
        credential=credential, expected_challenge=ceremony.challenge_of(credential), expected_rp_id=RP.rp_id,
        expected_origin=RP.origin)
    return credential, verified.credential_public_key


def assert_assertion(auth: SoftAuthenticator, public_key: bytes, stored_count: int, **kwargs):  # type: ignore[no-untyped-def]
    options = options_to_json_dict(generate_authentication_options(rp_id=RP.rp_id))
    credential = auth.get(options, **kwargs)
    return verify_authentication_response(
        credential=credential, expected_challenge=ceremony.challenge_of(credential), expected_rp_id=RP.rp_id,
        expected_origin=RP.origin, credential_public_key=public_key, credential_current_sign_count=stored_count)


def test_origin_comes_from_portal_base_url() -> None:
    assert RP.origin == "http://localhost:8080"
    assert ceremony.RelyingParty.from_settings("portal.example", "https://portal.example/x").origin == \
        "https://portal.example"


def test_a_good_registration_and_assertion_verify() -> None:
    auth = SoftAuthenticator()
    credential, public_key = register(auth)
    assert ceremony.is_discoverable(credential)
    assert ceremony.transports_of(credential) == ["internal"]
    result = assert_assertion(auth, public_key, 0)
    assert result.new_sign_count == 1 and result.user_verified


def test_registration_from_another_origin_fails() -> None:
    with pytest.raises(InvalidRegistrationResponse, match="origin"):
        register(SoftAuthenticator(), origin="https://evil.example")


def test_registration_for_another_rp_id_fails() -> None:
    with pytest.raises(InvalidRegistrationResponse, match="RP ID"):
        register(SoftAuthenticator(), rp_id="evil.example")


def test_an_assertion_response_is_not_a_registration() -> None:
    with pytest.raises(InvalidRegistrationResponse, match="type"):
        register(SoftAuthenticator(), ceremony="webauthn.get")


def test_assertion_from_another_origin_fails() -> None:
    auth = SoftAuthenticator()
    _, public_key = register(auth)
    with pytest.raises(InvalidAuthenticationResponse, match="origin"):
        assert_assertion(auth, public_key, 0, origin="http://localhost:9999")


def test_assertion_for_another_rp_id_fails() -> None:
    auth = SoftAuthenticator()
    _, public_key = register(auth)
    with pytest.raises(InvalidAuthenticationResponse, match="RP ID"):
        assert_assertion(auth, public_key, 0, rp_id="evil.example")


def test_bad_signature_fails() -> None:
    auth = SoftAuthenticator()
    _, public_key = register(auth)
    with pytest.raises(InvalidAuthenticationResponse, match="signature"):
        assert_assertion(auth, public_key, 0, bad_signature=True)


def test_another_keys_signature_fails() -> None:
    auth, other = SoftAuthenticator(), SoftAuthenticator()
    _, public_key = register(auth)
    register(other)
    other.credential_id = auth.credential_id  # same id, different private key
    with pytest.raises(InvalidAuthenticationResponse, match="signature"):
        assert_assertion(other, public_key, 0)


def test_counter_regression_fails_and_zero_counters_pass() -> None:
    auth = SoftAuthenticator()
    _, public_key = register(auth)
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        assert_assertion(auth, public_key, 5, sign_count=5)
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        assert_assertion(auth, public_key, 5, sign_count=3)
    synced = SoftAuthenticator(counter_step=0)
    _, synced_key = register(synced)
    assert assert_assertion(synced, synced_key, 0).new_sign_count == 0
    assert assert_assertion(synced, synced_key, 0).new_sign_count == 0


def test_not_discoverable_without_cred_props() -> None:
    credential, _ = register(SoftAuthenticator(discoverable=False))
    assert not ceremony.is_discoverable(credential)
    credential["clientExtensionResults"] = {"credProps": {"rk": "true"}}
    assert not ceremony.is_discoverable(credential)


@pytest.mark.parametrize("bad", [
    None, {}, {"response": {}}, {"response": {"clientDataJSON": "!!!"}},
    {"response": {"clientDataJSON": "bm90IGpzb24"}}, {"response": {"clientDataJSON": "W10"}},
])
def test_malformed_credentials_raise_one_error_type(bad: object) -> None:
    with pytest.raises(ceremony.MalformedCredential):
        ceremony.challenge_of(bad)


def test_user_handle_is_the_opaque_user_id() -> None:
    assert ceremony.user_handle("3f1c0e6e-0000-4000-8000-000000000000") == b"3f1c0e6e-0000-4000-8000-000000000000"
    with pytest.raises(ValueError):
        ceremony.user_handle("x" * 65)
