"""Field rules shared by the profile and admin endpoints: each returns the clean value or raises FieldError."""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

NAME_MAX = 100
TEXT_MAX = 200
EMAIL_MAX = 254  # RFC 5321 path limit


CONTROL_MESSAGE = "Remove the control characters."
BIDI_MESSAGE = "Remove the text-direction control characters."
MIXED_SCRIPT_MESSAGE = "Enter an address whose domain does not mix alphabets (such as Latin with Cyrillic or Greek)."

# Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): they reorder how text is
# shown, so "moc.elpmaxe" can read as "example.com" (the "Trojan Source" trick, CVE-2021-42574).
BIDI_OVERRIDES = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))
# An address also may not carry the invisible direction marks (LRM, RLM, ALM): nobody types them into an
# address, and they make two different addresses look the same. Names keep them: right-to-left names use them.
BIDI_CONTROLS = BIDI_OVERRIDES | {"\u200e", "\u200f", "\u061c"}
# Alphabets whose letters pass for each other ("е" U+0435 and "e"): a domain label mixing two of them is a
# look-alike of another domain, never a real name. Latin with Han or Kana is normal (Japanese), so only these.
CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})


def printable(text: str) -> bool:
    """No control characters (C0/C1, NUL) and no lone surrogates; format characters (ZWJ, ZWNJ) are fine."""
    return text.isprintable() or all(unicodedata.category(c) not in ("Cc", "Cs") for c in text)


class FieldError(ValueError):
    """A field's value is unacceptable; the message is shown next to the field."""


def letter_scripts(text: str) -> set[str]:
    """The alphabets of `text`'s letters among CONFUSABLE_SCRIPTS, from their Unicode names ("CYRILLIC SMALL
    LETTER IE"): every letter of these three scripts is named after its script, so no script table is needed."""
    scripts = set()
    for char in text:
        if unicodedata.category(char).startswith("L"):
            script = unicodedata.name(char, "").split(" ", 1)[0]
            if script in CONFUSABLE_SCRIPTS:
                scripts.add(script)
    return scripts


def mixed_script_label(domain: str) -> bool:
    """True when a label of `domain` (its Unicode form) mixes Latin, Cyrillic and Greek letters."""
    return any(len(letter_scripts(label)) > 1 for label in domain.split("."))


def check_text(text: str) -> None:
    if not printable(text):
        raise FieldError(CONTROL_MESSAGE)
    if not BIDI_OVERRIDES.isdisjoint(text):
        raise FieldError(BIDI_MESSAGE)


def clean_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldError("Enter a name.")
    name = " ".join(value.split())
    if len(name) > NAME_MAX:
        raise FieldError(f"Use at most {NAME_MAX} characters.")
    check_text(name)
    return name


def clean_email(value: Any) -> str:
    """Syntax only (no DNS): the contract says addresses are validated for syntax only. Look-alike domains
    (a label mixing alphabets) and direction controls are refused, so no address can pass for another."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError("Enter an email address.")
    if len(value.strip()) > EMAIL_MAX:
        raise FieldError("Enter a valid email address.")
    if not BIDI_CONTROLS.isdisjoint(value):
        # email-validator refuses these too, but with the same words as for a typo; say what is wrong.
        raise FieldError(BIDI_MESSAGE)
    try:
        address = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise FieldError("Enter a valid email address.") from None
    # The Unicode form of the domain: a label given as punycode ("xn--xample-2of") is checked as it reads.
    if mixed_script_label(address.domain):
        raise FieldError(MIXED_SCRIPT_MESSAGE)
    return address.normalized


def clean_phone(value: Any) -> str | None:
    """None or "" clears; otherwise an internationally valid number, stored as "+44 20 7946 0018"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise FieldError("Enter a valid phone number.")
    try:
        number = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException:
        raise FieldError("Enter a valid phone number in international format, e.g. +44 20 7946 0018.") from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError("Enter a valid phone number in international format, e.g. +44 20 7946 0018.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def clean_optional_text(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise FieldError("Enter text.")
    text = " ".join(value.split())
    if len(text) > TEXT_MAX:
        raise FieldError(f"Use at most {TEXT_MAX} characters.")
    check_text(text)
    return text


def clean_uuid(value: Any, message: str = "Choose an existing client.") -> str:
    if not isinstance(value, str):
        raise FieldError(message)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise FieldError(message) from None


def clean_fields(body: dict[str, Any], rules: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Apply `rules` (field -> cleaner) to the fields present in `body`; returns (values, errors)."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, cleaner in rules.items():
        if name in body:
            try:
                values[name] = cleaner(body[name])
            except FieldError as exc:
                errors[name] = [str(exc)]
    return values, errors
