"""The access audit: recording reads of personal data, and answering who accessed it."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from auth import scoping
from auth.principal import Principal
from auth.scopes import Scope
from models import AuditEvent
from privacy.audit import Entry, record_many
from privacy.audit_actions import AuditAction
from resolvers.errors import InvalidInput, NotAllowed
from resolvers.users import require_user

MAX_ENTRIES = 200


async def record_reads(principal: Principal, reads: Mapping[UUID, set[str]]) -> None:
    """One audit record per person whose personal data was read, in one write."""
    entries = [
        Entry(
            action=AuditAction.PERSONAL_DATA_READ,
            entity="personal_data",
            entity_id=None,
            subject_id=subject,
            field_names=sorted(names),
        )
        for subject, names in sorted(reads.items(), key=lambda item: str(item[0]))
    ]
    await record_many(principal, entries)


def _limit(first: int) -> int:
    if not 1 <= first <= MAX_ENTRIES:
        raise InvalidInput(f"first must be between 1 and {MAX_ENTRIES}.", field="first")
    return first


async def accesses_to_my_data(principal: Principal, first: int = 50) -> list[AuditEvent]:
    """What others did with the caller's personal data, newest first."""
    me = require_user(principal)
    return (
        await scoping.readable_audit_events(principal)
        .filter(subject_id=me)
        .exclude(actor_id=me)
        .order_by("-seq")
        .limit(_limit(first))
    )


async def audit_trail(principal: Principal, subject_id: UUID, first: int = 50) -> list[AuditEvent]:
    """Every record about one person, for the privacy officer."""
    if not principal.has(Scope.PRIVACY_REQUESTS):
        raise NotAllowed("The audit trail is for the privacy officer.")
    return (
        await scoping.readable_audit_events(principal)
        .filter(subject_id=subject_id)
        .order_by("-seq")
        .limit(_limit(first))
    )
