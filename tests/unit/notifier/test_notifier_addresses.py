"""Recipient addresses as SMTP can carry them: normalised, punycode domains, SMTPUTF8 only when needed."""

from __future__ import annotations

import pytest
from notifier_service.addresses import Recipient, UnusableAddress, recipient


@pytest.mark.parametrize(("address", "expected"), [
    ("ada@client.example", Recipient("ada@client.example", smtputf8=False)),
    ("Ada@Client.EXAMPLE", Recipient("Ada@client.example", smtputf8=False)),
    ("ada@bücher.example", Recipient("ada@xn--bcher-kva.example", smtputf8=False)),  # ASCII form: any server
    ("josé-x@client.example", Recipient("josé-x@client.example", smtputf8=True)),   # no ASCII form
    ("jose\u0301-x@client.example", Recipient("josé-x@client.example", smtputf8=True)),  # NFC
])
def test_addresses_are_normalised_to_what_smtp_can_carry(address: str, expected: Recipient) -> None:
    assert recipient(address) == expected


@pytest.mark.parametrize("address", ["", "no-at-sign", "a@", "a b@client.example", "a@client.example\r\nBcc: x@y",
                                     "a\u202e@client.example"])
def test_an_address_that_is_not_one_can_never_be_sent(address: str) -> None:
    with pytest.raises(UnusableAddress, match="not a valid email address"):
        recipient(address)
