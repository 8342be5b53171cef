"""Checks on plain input values, each raising InvalidInput that names the field."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import available_timezones

from resolvers.errors import InvalidInput

_EMAIL = re.compile(
    r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{4,24}$")
_USERNAME = re.compile(r"^[A-Za-z0-9._-]{3,50}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}$")
_TIME_ZONES = frozenset(available_timezones())
MINIMUM_AGE = 16


def text(value: str, field: str, *, max_length: int, min_length: int = 1) -> str:
    cleaned = value.strip()
    if len(cleaned) < min_length:
        raise InvalidInput("This field is required.", field=field)
    if len(cleaned) > max_length:
        raise InvalidInput(f"Use at most {max_length} characters.", field=field)
    if any(ord(char) < 32 and char not in "\n\t" for char in cleaned):
        raise InvalidInput("Control characters are not allowed.", field=field)
    return cleaned


def email(value: str, field: str = "email") -> str:
    cleaned = value.strip()
    if len(cleaned) > 254 or not _EMAIL.match(cleaned):
        raise InvalidInput("Enter a valid email address.", field=field)
    return cleaned


def phone(value: str | None, field: str = "phone") -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = value.strip()
    if not _PHONE.match(cleaned):
        raise InvalidInput("Enter a phone number of digits, spaces and an optional +.", field)
    return cleaned


def username(value: str | None, field: str = "username") -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = value.strip()
    if not _USERNAME.match(cleaned) or "@" in cleaned:
        raise InvalidInput("Use 3-50 letters, digits, dots, dashes or underscores.", field)
    return cleaned


def locale(value: str | None, field: str = "locale") -> str | None:
    if value is None:
        return None
    if not _LOCALE.match(value):
        raise InvalidInput("Use a language tag such as en or pt-BR.", field=field)
    return value


def time_zone(value: str | None, field: str = "timeZone") -> str | None:
    if value is None:
        return None
    if value not in _TIME_ZONES:
        raise InvalidInput("Use an IANA time zone such as Europe/Paris.", field=field)
    return value


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def old_enough(birth: date, today: date) -> bool:
    """OCIS is for people of MINIMUM_AGE or over (P29)."""
    return age_on(birth, today) >= MINIMUM_AGE


def date_of_birth(value: date, today: date, field: str = "dateOfBirth") -> date:
    if value > today or value.year < 1900:
        raise InvalidInput("Enter a real date of birth.", field=field)
    return value
