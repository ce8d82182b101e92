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


def printable(text: str) -> bool:
    """No control characters (C0/C1, NUL) and no lone surrogates; format characters (ZWJ, ZWNJ) are fine."""
    return text.isprintable() or all(unicodedata.category(c) not in ("Cc", "Cs") for c in text)


class FieldError(ValueError):
    """A field's value is unacceptable; the message is shown next to the field."""


def clean_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldError("Enter a name.")
    name = " ".join(value.split())
    if len(name) > NAME_MAX:
        raise FieldError(f"Use at most {NAME_MAX} characters.")
    if not printable(name):
        raise FieldError(CONTROL_MESSAGE)
    return name


def clean_email(value: Any) -> str:
    """Syntax only (no DNS): the contract says addresses are validated for syntax only."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError("Enter an email address.")
    if len(value.strip()) > EMAIL_MAX:
        raise FieldError("Enter a valid email address.")
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise FieldError("Enter a valid email address.") from None


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
    if not printable(text):
        raise FieldError(CONTROL_MESSAGE)
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
