"""Recognise full card numbers and security codes, however written, so they are never stored (P03).

Text is judged after Unicode NFKC normalisation (full-width and other compatibility forms),
without format characters (zero-width spaces and joiners, soft hyphens, direction marks) and
with every script's decimal digits read as digits. A card number is 13-19 digits whose Luhn
check holds, in groups separated by any run of whitespace or punctuation.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping
from enum import Enum

MIN_CARD_DIGITS = 13
MAX_CARD_DIGITS = 19
# E.164: a number written with a leading "+" has at most 15 digits; longer is not a phone.
MAX_PHONE_DIGITS = 15

_DIGITS = re.compile(r"[0-9]+")
_LETTER = r"[^\W\d_]"
# Between the letters of a label ("c.v.v", "c v v") and between the words of a longer one.
_INSIDE_LABEL = r"[\W_]{0,2}"


def _spelled(word: str) -> str:
    return _INSIDE_LABEL.join(re.escape(char) for char in word)


_LABELS = "|".join(
    [
        _spelled("cvv") + r"(?:[\W_]?2)?",
        _spelled("cvc") + r"(?:[\W_]?2)?",
        _spelled("cvn"),
        _spelled("cid"),
        _spelled("csc"),
        r"card[\W_]+(?:security|verification)[\W_]+(?:code|value)",
        r"security[\W_]+code",
    ]
)
# A label, then at most three short words ("is", "code", "number"), then 3-4 digits.
_SECURITY_CODE = re.compile(
    rf"(?<!{_LETTER})(?:{_LABELS})(?!{_LETTER})"
    rf"(?:[\W_]{{1,5}}{_LETTER}{{1,6}}){{0,3}}[\W_]{{0,5}}[0-9]{{3,4}}(?![0-9])",
    re.IGNORECASE,
)
_SECURITY_CODE_NAMES = frozenset({"cvv", "cvv2", "cvc", "cvc2", "csc", "cid", "securitycode"})

# Dates and times are digit groups between punctuation too; groups that all belong to valid
# dates or times (real years, months, days, hours, minutes) are not a card number.
_YEAR = r"(?:19|20)\d\d"
_MONTH = r"(?:0?[1-9]|1[0-2])"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_DATE = (
    rf"(?:{_YEAR}[-./]{_MONTH}[-./]{_DAY}|{_DAY}[-./]{_MONTH}[-./]{_YEAR}"
    rf"|{_MONTH}/{_DAY}/{_YEAR})"
)
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d{1,3})?)?"
_DATE_OR_TIME = re.compile(rf"(?<![0-9])(?:{_DATE}|{_TIME})(?![0-9])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _normal_char(char: str) -> str:
    if char.isascii():
        return char
    if unicodedata.category(char) == "Cf":
        return ""
    digit = unicodedata.decimal(char, None)
    return char if digit is None else str(digit)


def normalised(text: str) -> str:
    """NFKC, without format characters, every script's decimal digits as ASCII digits."""
    if text.isascii():
        return text
    return "".join(_normal_char(char) for char in unicodedata.normalize("NFKC", text))


def _is_separator(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def _digit_chains(text: str) -> Iterable[list[re.Match[str]]]:
    """Runs of digit groups with only separators (whitespace, punctuation) between them."""
    chain: list[re.Match[str]] = []
    for group in _DIGITS.finditer(text):
        if chain and not all(_is_separator(char) for char in text[chain[-1].end() : group.start()]):
            yield chain
            chain = []
        chain.append(group)
    if chain:
        yield chain


def _holds_card_number(text: str) -> bool:
    in_date_or_time = {
        group.start()
        for when in _DATE_OR_TIME.finditer(text)
        for group in _DIGITS.finditer(text, when.start(), when.end())
    }
    for chain in _digit_chains(text):
        phone = chain[0].start() > 0 and text[chain[0].start() - 1] == "+"
        for first in range(len(chain)):
            digits = ""
            for last in range(first, len(chain)):
                digits += chain[last].group()
                if len(digits) > MAX_CARD_DIGITS:
                    break
                if len(digits) < MIN_CARD_DIGITS or not luhn_valid(digits):
                    continue
                if first == 0 and phone and len(digits) <= MAX_PHONE_DIGITS:
                    continue
                if all(group.start() in in_date_or_time for group in chain[first : last + 1]):
                    continue
                return True
    return False


def contains_card_data(text: str) -> bool:
    """True when text holds a Luhn-valid 13-19 digit number or a labelled security code."""
    text = normalised(text)
    return _holds_card_number(text) or bool(_SECURITY_CODE.search(text))


def is_security_code_name(name: str) -> bool:
    return re.sub(r"[^a-z0-9]", "", normalised(name).lower()) in _SECURITY_CODE_NAMES


def value_holds_card_data(value: object) -> bool:
    """Search any value: strings, numbers, mappings (names of keys such as ``cvv`` too),
    sequences and dataclass instances (coerced GraphQL inputs)."""
    if isinstance(value, str):
        return contains_card_data(value)
    if isinstance(value, bool | Enum) or value is None:
        return False
    if isinstance(value, int):
        return contains_card_data(str(value))
    if isinstance(value, float):
        return value.is_integer() and contains_card_data(str(int(value)))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return any(
            (isinstance(key, str) and is_security_code_name(key) and _given(item))
            or value_holds_card_data(item)
            for key, item in value.items()
        )
    if isinstance(value, Iterable):
        return any(value_holds_card_data(item) for item in value)
    return False


def _given(item: object) -> bool:
    return item not in (None, "") and not isinstance(item, Enum)
