"""Recovery codes: format, entropy, normalisation, keyed hashing."""

from __future__ import annotations

import math
import re

import pytest
from mfa_service.codes import ALPHABET, CODE_COUNT, CodeHasher, generate_code, generate_codes, normalise


def test_ten_distinct_codes_in_groups_of_five() -> None:
    codes = generate_codes()
    assert len(codes) == CODE_COUNT == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[0-9a-z]{5}(-[0-9a-z]{5}){4}", code), code


def test_at_least_112_bits_each() -> None:
    symbols = len(generate_code().replace("-", ""))
    assert symbols * math.log2(len(ALPHABET)) >= 112


@pytest.mark.parametrize("variant", [
    "{c}", "{C}", "{nodash}", "{NODASH}", " {c} ", "{spaced}", "{Mixed}",
])
def test_any_case_with_or_without_dashes_and_spaces(variant: str) -> None:
    code = generate_code()
    shown = variant.format(c=code, C=code.upper(), nodash=code.replace("-", ""), NODASH=code.replace("-", "").upper(),
                           spaced=code.replace("-", " "), Mixed=code[:7].upper() + code[7:])
    assert normalise(shown) == code.replace("-", "")


def test_confusable_letters_read_as_digits() -> None:
    assert normalise("o1l1i-00000-00000-00000-00000") == "01111" + "0" * 20


@pytest.mark.parametrize("bad", ["", "abc", "abcde-fghjk", "uuuuu-uuuuu-uuuuu-uuuuu-uuuuu", "x" * 26, "é" * 25])
def test_not_a_code(bad: str) -> None:
    assert normalise(bad) is None


def test_hash_is_keyed_per_user_and_normalised() -> None:
    hasher = CodeHasher("server-key")
    code = generate_code()
    assert hasher.digest("u1", code) == hasher.digest("u1", code.upper().replace("-", " "))
    assert hasher.digest("u1", code) != hasher.digest("u2", code)
    assert hasher.digest("u1", code) != CodeHasher("other-key").digest("u1", code)
    assert len(hasher.digest("u1", code)) == 32
    with pytest.raises(ValueError):
        hasher.digest("u1", "nope")
