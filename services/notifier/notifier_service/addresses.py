"""Recipient addresses: validated and normalised (email-validator, no DNS), in the form SMTP can carry.

An address whose domain alone is internationalised goes out in its ASCII form (the domain as punycode),
which every server takes. One whose mailbox name is not ASCII has no ASCII form: it needs a server that
offers SMTPUTF8 (RFC 6531), and the mailer refuses it up front to any other server.
"""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email


class UnusableAddress(ValueError):
    """The address can never be written to: retrying cannot help."""


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str    # for RCPT TO and the To: header
    smtputf8: bool  # the address is not ASCII: only an SMTPUTF8 session can carry it


def recipient(address: str) -> Recipient:
    """The normalised recipient for `address`; UnusableAddress when it is not a valid address."""
    try:
        # Syntax only, with the same library and rules as profile (the contract validates addresses for syntax
        # only), so what profile accepted is accepted here.
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise UnusableAddress(f"not a valid email address ({exc})") from None
    if valid.ascii_email:
        return Recipient(valid.ascii_email, smtputf8=False)
    return Recipient(valid.normalized, smtputf8=True)
