"""Recognise full card numbers and security codes so they are never stored (P03)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# 13-19 digits, optionally grouped by single spaces or dashes, not part of a longer number
# and not an international phone number (which starts with "+").
_CARD_CANDIDATE = re.compile(r"(?<![\d+])(?:\d[ -]?){12,18}\d(?!\d)")
# A security-code label, then at most three short words ("is", "code", "number"), then 3-4 digits.
_SECURITY_CODE = re.compile(
    r"\b(?:cvv2?|cvc2?|cid|csc|card\s+(?:security|verification)\s+code|security\s+code)\b"
    r"(?:\W{1,5}[a-z]{1,6}){0,3}\W{0,5}\d{3,4}\b",
    re.IGNORECASE,
)
_SECURITY_CODE_NAMES = frozenset({"cvv", "cvv2", "cvc", "cvc2", "csc", "cid", "securitycode"})


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


def contains_card_data(text: str) -> bool:
    """True when text holds a Luhn-valid 13-19 digit number or a labelled security code."""
    for match in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return bool(_SECURITY_CODE.search(text))


def is_security_code_name(name: str) -> bool:
    return re.sub(r"[^a-z0-9]", "", name.lower()) in _SECURITY_CODE_NAMES


def value_holds_card_data(value: object) -> bool:
    """Search any JSON-like value: strings, numbers, and names of keys such as ``cvv``."""
    if isinstance(value, str):
        return contains_card_data(value)
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return contains_card_data(str(value))
    if isinstance(value, Mapping):
        return any(
            (isinstance(key, str) and is_security_code_name(key) and item not in (None, ""))
            or value_holds_card_data(item)
            for key, item in value.items()
        )
    if isinstance(value, Iterable):
        return any(value_holds_card_data(item) for item in value)
    return False
