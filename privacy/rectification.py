"""Rectification (GDPR Art. 16, P23): a request's proposed corrections, the officer's decision
on each, the accepted ones applied to the profile, and the outcome its subject is told.

The corrections are kept on the request, sealed, as JSON; the audit trail names the fields
corrected, never their values, and the outcome names fields and reasons, never values.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from auth.principal import Principal
from models import CorrectableField, PrivacyRequest, User
from privacy import audit
from privacy.audit_actions import AuditAction

# The audit trail's names and the words the subject reads, per correctable field.
AUDIT_NAMES = {
    CorrectableField.NAME: "User.name",
    CorrectableField.PHONE: "User.phone",
    CorrectableField.DATE_OF_BIRTH: "User.dateOfBirth",
}
LABELS = {
    CorrectableField.NAME: "name",
    CorrectableField.PHONE: "phone number",
    CorrectableField.DATE_OF_BIRTH: "date of birth",
}


@dataclass(frozen=True, slots=True)
class Correction:
    """One proposed correction; `accepted` is None until the officer decides it."""

    field: CorrectableField
    value: str | None
    accepted: bool | None = None
    reason: str | None = None


def dumps(corrections: list[Correction]) -> str:
    return json.dumps([asdict(c) | {"field": c.field.value} for c in corrections])


def loads(stored: str | None) -> list[Correction]:
    """The corrections a request holds (none for other kinds, or when the key was shredded)."""
    if not stored:
        return []
    return [
        Correction(
            field=CorrectableField(row["field"]),
            value=row["value"],
            accepted=row["accepted"],
            reason=row["reason"],
        )
        for row in json.loads(stored)
    ]


def merged(open_ones: list[Correction], later: list[Correction]) -> list[Correction]:
    """An open request's corrections with those a later duplicate of it proposes: a field
    proposed again takes the later value (the subject's latest word), the others are added;
    none is decided yet, the open request being undecided."""
    proposals = {c.field: c for c in open_ones}
    for correction in later:
        proposals[correction.field] = Correction(field=correction.field, value=correction.value)
    return list(proposals.values())


def labels(corrections: list[Correction]) -> str:
    """The fields the corrections name, as the subject reads them."""
    return ", ".join(LABELS[c.field] for c in corrections)


def decided(
    corrections: list[Correction], decisions: dict[CorrectableField, Correction]
) -> list[Correction]:
    """The corrections with the officer's decisions (one for each, keyed by field)."""
    return [
        replace(c, accepted=decisions[c.field].accepted, reason=decisions[c.field].reason)
        for c in corrections
    ]


def outcome(corrections: list[Correction]) -> str:
    """What the subject is told: which corrections were applied, which refused and why."""
    applied = [c for c in corrections if c.accepted]
    refused = [c for c in corrections if not c.accepted]
    lines = []
    if applied:
        lines.append("We corrected your " + ", ".join(LABELS[c.field] for c in applied) + ".")
        lines.extend(f"- {LABELS[c.field]}: {c.reason}" for c in applied if c.reason)
    if refused:
        lines.append("We did not correct your " + ", ".join(LABELS[c.field] for c in refused) + ":")
        lines.extend(f"- {LABELS[c.field]}: {c.reason}" for c in refused)
    return "\n".join(lines)


async def apply(
    principal: Principal, request: PrivacyRequest, corrections: list[Correction]
) -> None:
    """Write the accepted corrections to the subject's profile, locked, and audit them (field
    names only), in the caller's transaction."""
    accepted = [c for c in corrections if c.accepted]
    if not accepted:
        return
    user = await User.select_for_update().get(id=request.subject_id)
    for correction in accepted:
        setattr(user, correction.field.value, correction.value)
    await user.save(update_fields=[*(c.field.value for c in accepted), "updated_at"])
    await audit.record(
        principal,
        action=AuditAction.PROFILE_RECTIFY,
        entity="User",
        entity_id=user.id,
        subject_id=user.id,
        field_names=sorted(AUDIT_NAMES[c.field] for c in accepted),
    )
