"""Checks on plain input values, each raising InvalidInput that names the field.

Every text a person types goes through `characters` first: Unicode normalised to NFC, and
control, bidirectional-override and unassigned characters refused. Patterns then use
`fullmatch` only (`$` with `re.match` also accepts a trailing newline).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email

from resolvers.errors import InvalidInput

_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{4,24}")
_USERNAME = re.compile(r"[A-Za-z0-9._-]{3,50}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}")
_TIME_ZONES = frozenset(available_timezones())
MINIMUM_AGE = 16

# Embeddings, overrides and isolates reorder what follows them ("Trojan Source",
# CVE-2021-42574). The marks U+200E, U+200F and U+061C stay allowed: they reorder nothing,
# act like one strong letter, and right-to-left writers type them for mixed text.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Allowed only in multi-line bodies (ticket and message bodies, privacy-request details).
_BODY_WHITESPACE = frozenset("\n\t")
_LINE_SEPARATORS = frozenset("\u2028\u2029")


def _problem(value: str, *, multiline: bool) -> str | None:
    for char in value:
        if multiline and char in _BODY_WHITESPACE:
            continue
        if char in BIDI_CONTROLS:
            return "Bidirectional override and isolate characters are not allowed."
        category = unicodedata.category(char)
        if category == "Cc":
            return (
                "Control characters are not allowed."
                if multiline
                else "Line breaks, tabs and control characters are not allowed here."
            )
        if category in ("Cn", "Cs"):
            return "Unassigned characters, noncharacters and lone surrogates are not allowed."
        if not multiline and char in _LINE_SEPARATORS:
            return "Line breaks, tabs and control characters are not allowed here."
    return None


def characters(value: str, field: str, *, multiline: bool = False) -> str:
    """The value in NFC, once no character of it is refused (see the module docstring)."""
    problem = _problem(value, multiline=multiline)
    if problem:
        raise InvalidInput(problem, field=field)
    return unicodedata.normalize("NFC", value)


def text(
    value: str, field: str, *, max_length: int, min_length: int = 1, multiline: bool = False
) -> str:
    """Free text or a name: one line unless `multiline` (bodies), surrounding spaces trimmed."""
    cleaned = characters(value, field, multiline=multiline).strip()
    if len(cleaned) < min_length:
        raise InvalidInput("This field is required.", field=field)
    if len(cleaned) > max_length:
        raise InvalidInput(f"Use at most {max_length} characters.", field=field)
    return cleaned


def email(value: str, field: str = "email") -> str:
    """An address as email-validator reads it (syntax only, no DNS), domain in ASCII form.

    The local part is kept as typed (NFC); the domain is stored as IDNA A-labels, the form
    every address accepted before this check had, so blind indexes of existing accounts
    (NFKC, case-folded) still match.
    """
    cleaned = characters(value, field).strip()
    try:
        checked = validate_email(cleaned, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidInput("Enter a valid email address.", field=field) from None
    return f"{checked.local_part}@{checked.ascii_domain}"


def phone(value: str | None, field: str = "phone") -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = characters(value, field).strip()
    if not _PHONE.fullmatch(cleaned):
        raise InvalidInput("Enter a phone number of digits, spaces and an optional +.", field)
    return cleaned


def username(value: str | None, field: str = "username") -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = characters(value, field).strip()
    if not _USERNAME.fullmatch(cleaned):
        raise InvalidInput("Use 3-50 letters, digits, dots, dashes or underscores.", field)
    return cleaned


def locale(value: str | None, field: str = "locale") -> str | None:
    if value is None:
        return None
    if not _LOCALE.fullmatch(characters(value, field)):
        raise InvalidInput("Use a language tag such as en or pt-BR.", field=field)
    return value


def time_zone(value: str | None, field: str = "timeZone") -> str | None:
    if value is None:
        return None
    if characters(value, field) not in _TIME_ZONES:
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
