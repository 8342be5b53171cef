"""Rectification's inputs: proposed corrections and the officer's decisions, validated as the
profile mutation validates the same fields (the workflow is resolvers/privacy_requests.py's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from models import CorrectableField, PrivacyRequest, PrivacyRequestKind
from privacy import rectification
from privacy.rectification import Correction
from resolvers import validation
from resolvers.errors import InvalidInput

MAX_REASON = 2_000
MAX_CORRECTIONS = len(CorrectableField)


@dataclass(frozen=True, slots=True)
class ProposedCorrection:
    field: CorrectableField
    value: str | None


@dataclass(frozen=True, slots=True)
class CorrectionDecision:
    field: CorrectableField
    accept: bool
    reason: str | None = None


def _value(field: CorrectableField, value: str | None) -> str | None:
    where = "corrections"
    if field is CorrectableField.NAME:
        return validation.text(value or "", where, max_length=200)
    if field is CorrectableField.PHONE:
        # An empty phone number proposes removing it, as clearPhone does on the profile.
        return validation.phone(value, where)
    try:
        birth = date.fromisoformat((value or "").strip())
    except ValueError:
        raise InvalidInput("Give a date of birth as YYYY-MM-DD.", field=where) from None
    return validation.date_of_birth(birth, datetime.now(UTC).date(), where).isoformat()


def corrections_of(request: PrivacyRequest) -> list[Correction]:
    """A request's corrections as proposed and, once decided, with their decisions."""
    return rectification.loads(request.corrections)


def proposed(
    kind: PrivacyRequestKind, corrections: Sequence[ProposedCorrection] | None
) -> str | None:
    """A rectification's corrections, validated and encoded for the request; none otherwise."""
    if kind != PrivacyRequestKind.RECTIFICATION:
        if corrections:
            raise InvalidInput("Only a rectification request proposes corrections.", "corrections")
        return None
    if not corrections:
        # A rectification may still be written out in its details alone, as before corrections.
        return None
    fields = [c.field for c in corrections]
    if len(set(fields)) != len(fields):
        raise InvalidInput("Propose one correction per field.", field="corrections")
    return rectification.dumps(
        [Correction(field=c.field, value=_value(c.field, c.value)) for c in corrections]
    )


def decisions(proposals: list[Correction], given: Sequence[CorrectionDecision]) -> list[Correction]:
    """The proposals with one decision each; a refusal needs its reason."""
    by_field: dict[CorrectableField, Correction] = {}
    for decision in given:
        if decision.field in by_field:
            raise InvalidInput("Decide each correction once.", field="decisions")
        reason = (
            validation.text(decision.reason, "reason", max_length=MAX_REASON, multiline=True)
            if decision.reason is not None and decision.reason.strip()
            else None
        )
        if not decision.accept and reason is None:
            raise InvalidInput("Give the reason for refusing a correction.", field="reason")
        by_field[decision.field] = Correction(
            field=decision.field, value=None, accepted=decision.accept, reason=reason
        )
    wanted = {c.field for c in proposals}
    if set(by_field) - wanted:
        raise InvalidInput("A decision names a field the request does not propose.", "decisions")
    if wanted - set(by_field):
        raise InvalidInput("Decide every proposed correction.", field="decisions")
    return rectification.decided(proposals, by_field)
