"""Addresses and names that could pass for others: mixed-alphabet domains and text-direction controls."""

from __future__ import annotations

import re

import pytest
from profile_service.validation import (
    BIDI_MESSAGE,
    MIXED_SCRIPT_MESSAGE,
    FieldError,
    clean_email,
    clean_name,
    clean_optional_text,
)

CYRILLIC_E = "\u0435"  # "е", drawn like the Latin "e"
GREEK_OMICRON = "\u03bf"  # "ο", drawn like the Latin "o"
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
MARKS = ["\u200e", "\u200f"]


@pytest.mark.parametrize("address", [
    f"admin@msp.{CYRILLIC_E}xample",           # the case: one Cyrillic letter in a Latin label
    f"admin@{CYRILLIC_E}xample.com",
    f"admin@micr{GREEK_OMICRON}soft.example",   # Greek with Latin
    "admin@\u0430\u03b1.example",               # Cyrillic with Greek
    "admin@msp.xn--xample-2of",                 # the same look-alike given as punycode
    f"ADMIN@MSP.{CYRILLIC_E.upper()}XAMPLE",
])
def test_a_domain_label_mixing_alphabets_is_refused(address: str) -> None:
    with pytest.raises(FieldError, match=re.escape(MIXED_SCRIPT_MESSAGE)):
        clean_email(address)


@pytest.mark.parametrize(("address", "normalized"), [
    ("Jo.Bloggs@Acme.Example", "Jo.Bloggs@acme.example"),
    ("josé-x@client.example", "josé-x@client.example"),      # a non-ASCII local part is fine
    ("info@пример.example", "info@пример.example"),          # a wholly Cyrillic label is a real name
    ("info@bücher.example", "info@bücher.example"),          # Latin with diacritics is still Latin
    ("info@ελλάδα.example", "info@ελλάδα.example"),
    ("info@日本test.example", "info@日本test.example"),       # Latin with Han is usual in Japanese names
    ("info@xn--bcher-kva.example", "info@bücher.example"),
])
def test_single_alphabet_labels_and_international_addresses_pass(address: str, normalized: str) -> None:
    assert clean_email(address) == normalized


@pytest.mark.parametrize("control", BIDI + MARKS)
@pytest.mark.parametrize("template", ["ad{c}min@msp.example", "admin@msp{c}.example", "{c}admin@msp.example"])
def test_an_address_with_a_direction_control_is_refused(control: str, template: str) -> None:
    with pytest.raises(FieldError, match=re.escape(BIDI_MESSAGE)):
        clean_email(template.format(c=control))


@pytest.mark.parametrize("control", BIDI)
def test_names_and_texts_refuse_direction_overrides(control: str) -> None:
    with pytest.raises(FieldError, match=re.escape(BIDI_MESSAGE)):
        clean_name(f"Ada {control}ecalevoL")
    with pytest.raises(FieldError, match=re.escape(BIDI_MESSAGE)):
        clean_optional_text(f"Office {control}reganaM")


def test_names_keep_right_to_left_text_and_its_marks() -> None:
    assert clean_name("דוד כהן") == "דוד כהן"
    assert clean_name("\u200fمحمد\u200f") == "\u200fمحمد\u200f"
    assert clean_optional_text("مدير المكتب") == "مدير المكتب"
