"""Legal holds and legal disclosures (P13, GDPR Art. 17(3)(b) and (e), Art. 23).

A hold keeps a subject's data while the law requires it (a court order, a regulator's
inquiry): while it is active (placed, not lifted), erasure (privacy/erasure.py) waits and
retention skips that subject. A disclosure records what OCIS handed to an authority because it
had to; its subject sees it in their export once the authority allows them to be told
(``subject_may_be_told_on``), never before. Each is audited with ids and field names only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from uuid import UUID

from tortoise.expressions import Q

from auth.principal import Principal
from models import LegalDisclosure, LegalHold
from privacy import audit
from privacy.audit_actions import AuditAction

_HOLD_FIELDS = ["LegalHold.authority", "LegalHold.reference", "LegalHold.reason"]
_HOLD_FIELDS_ALL = [*_HOLD_FIELDS, "LegalHold.reviewOn"]
_DISCLOSURE_FIELDS = [
    "LegalDisclosure.authority",
    "LegalDisclosure.legalBasis",
    "LegalDisclosure.dataCategories",
    "LegalDisclosure.disclosedOn",
    "LegalDisclosure.subjectMayBeToldOn",
]


class HoldNotActive(ValueError):
    """The hold was lifted already; nothing changed."""


def _active(now: datetime) -> Q:
    return Q(placed_at__lte=now) & (Q(lifted_at__isnull=True) | Q(lifted_at__gt=now))


async def held_subjects(
    subject_ids: Iterable[UUID] | None = None, *, now: datetime | None = None
) -> set[UUID]:
    """The subjects (of `subject_ids`; None: of all) with a hold active at `now` (default the
    present): the ones erasure and retention must leave as they are."""
    query = LegalHold.filter(_active(now or datetime.now(UTC)))
    if subject_ids is not None:
        wanted = list(dict.fromkeys(subject_ids))
        if not wanted:
            return set()
        query = query.filter(subject_id__in=wanted)
    found = await query.distinct().values_list("subject_id", flat=True)
    return {value if isinstance(value, UUID) else UUID(str(value)) for value in found}


async def is_held(subject_id: UUID) -> bool:
    """Whether a hold on this subject is active now."""
    return bool(await held_subjects([subject_id]))


async def active_holds(subject_id: UUID) -> list[LegalHold]:
    """The subject's active holds, the oldest first."""
    now = datetime.now(UTC)
    return await LegalHold.filter(_active(now), subject_id=subject_id).order_by("placed_at", "id")


async def place_hold(
    principal: Principal,
    subject_id: UUID,
    *,
    authority: str,
    reference: str,
    reason: str,
    review_on: date,
) -> LegalHold:
    """Place a hold on a subject's data (in the caller's transaction), audited."""
    hold = LegalHold(
        subject_id=subject_id,
        authority=authority,
        reference=reference,
        reason=reason,
        review_on=review_on,
        placed_by_id=principal.user_id,
        placed_at=datetime.now(UTC),
    )
    await hold.save()
    await audit.record(
        principal,
        action=AuditAction.LEGAL_HOLD_PLACE,
        entity="LegalHold",
        entity_id=hold.id,
        subject_id=subject_id,
        field_names=_HOLD_FIELDS_ALL,
    )
    return hold


async def lift_hold(principal: Principal, hold: LegalHold) -> LegalHold:
    """Lift a hold the caller locked (in their transaction), audited; HoldNotActive when it
    was lifted already."""
    if hold.lifted_at is not None:
        raise HoldNotActive("This legal hold was lifted already.")
    hold.lifted_at = datetime.now(UTC)
    hold.lifted_by_id = principal.user_id
    await hold.save(update_fields=["lifted_at", "lifted_by_id"])
    await audit.record(
        principal,
        action=AuditAction.LEGAL_HOLD_LIFT,
        entity="LegalHold",
        entity_id=hold.id,
        subject_id=hold.subject_id,
        field_names=["LegalHold.liftedAt"],
    )
    return hold


async def record_disclosure(
    principal: Principal,
    subject_id: UUID,
    *,
    authority: str,
    legal_basis: str,
    data_categories: list[str],
    disclosed_on: date,
    subject_may_be_told_on: date | None,
) -> LegalDisclosure:
    """Record a disclosure to an authority (in the caller's transaction), audited."""
    disclosure = LegalDisclosure(
        subject_id=subject_id,
        authority=authority,
        legal_basis=legal_basis,
        data_categories=data_categories,
        disclosed_on=disclosed_on,
        subject_may_be_told_on=subject_may_be_told_on,
        recorded_by_id=principal.user_id,
        recorded_at=datetime.now(UTC),
    )
    await disclosure.save()
    await audit.record(
        principal,
        action=AuditAction.LEGAL_DISCLOSURE_RECORD,
        entity="LegalDisclosure",
        entity_id=disclosure.id,
        subject_id=subject_id,
        field_names=_DISCLOSURE_FIELDS,
    )
    return disclosure


def may_be_told(disclosure: LegalDisclosure, today: date) -> bool:
    """Whether its subject may be told of this disclosure on `today`."""
    told_on = disclosure.subject_may_be_told_on
    return told_on is None or told_on <= today


async def told_disclosures(subject_id: UUID, today: date | None = None) -> list[LegalDisclosure]:
    """The subject's disclosures they may be told of (on `today`, default today in UTC), the
    oldest first: what their export shows."""
    day = today or datetime.now(UTC).date()
    return await LegalDisclosure.filter(
        Q(subject_may_be_told_on__isnull=True) | Q(subject_may_be_told_on__lte=day),
        subject_id=subject_id,
    ).order_by("disclosed_on", "id")
