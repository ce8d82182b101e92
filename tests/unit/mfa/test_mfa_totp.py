"""TOTP: RFC 6238 test vectors, the ±1 step window, setup material, code parsing."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from mfa_service import totp

# RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890"; 8-digit codes.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_rfc_6238_sha1_vectors(unix_time: int, expected: str) -> None:
    assert pyotp.TOTP(RFC_SECRET, digits=8).at(unix_time) == expected


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_our_six_digit_check_agrees_with_the_vectors(unix_time: int, expected: str) -> None:
    # A 6-digit HOTP value is the same truncation mod 10^6 (RFC 4226 §5.3): the last six digits.
    assert totp.matching_step(RFC_SECRET, expected[-6:], now=unix_time) == unix_time // 30


def test_one_step_of_drift_either_way_and_no_more() -> None:
    now = 1111111111
    step = now // 30
    otp = pyotp.TOTP(RFC_SECRET)
    assert totp.matching_step(RFC_SECRET, otp.at(now - 30), now=now) == step - 1
    assert totp.matching_step(RFC_SECRET, otp.at(now + 30), now=now) == step + 1
    assert totp.matching_step(RFC_SECRET, otp.at(now - 60), now=now) is None
    assert totp.matching_step(RFC_SECRET, otp.at(now + 60), now=now) is None
    assert totp.matching_step(RFC_SECRET, "000000" if otp.at(now) != "000000" else "111111", now=now) is None


def test_new_secret_is_160_bits_of_base32() -> None:
    secret = totp.new_secret()
    assert len(base64.b32decode(secret)) == 20
    assert secret != totp.new_secret()


def test_otpauth_uri_names_issuer_and_account() -> None:
    uri = totp.otpauth_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "demo@client.example")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert unquote(parts.path) == "/Client Portal:demo@client.example"
    query = parse_qs(parts.query)
    assert query["issuer"] == ["Client Portal"]
    assert query["secret"] == ["JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"]


def test_qr_svg_is_an_svg_document() -> None:
    svg = totp.qr_svg("otpauth://totp/Client%20Portal:a@b.example?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Client%20Portal")
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg and svg.rstrip().endswith("</svg>")


@pytest.mark.parametrize(("raw", "expected"), [
    ("123456", "123456"), (" 123 456 ", "123456"), ("12345", None), ("1234567", None), ("12a456", None),
    (123456, None), (None, None), ("", None),
])
def test_clean_code(raw: object, expected: str | None) -> None:
    assert totp.clean_code(raw) == expected
