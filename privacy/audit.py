"""The audit trail: hash-chained records of references and field names, never values."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from auth.principal import Principal
from models import AuditEvent

GENESIS = "0" * 64
_CHAIN_LOCK = 0x0C15A0D1


def _digest(prev_hash: str, event: AuditEvent) -> str:
    body = json.dumps(
        [
            prev_hash,
            event.occurred_at.astimezone(UTC).isoformat(),
            str(event.actor_id) if event.actor_id else None,
            str(event.subject_id) if event.subject_id else None,
            event.action,
            event.entity,
            event.entity_id,
            sorted(event.field_names),
            event.request_id,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


async def record(
    principal: Principal,
    *,
    action: str,
    entity: str,
    entity_id: UUID | str | None,
    subject_id: UUID | None,
    field_names: Iterable[str] = (),
) -> AuditEvent:
    """Append one event to the chain; call inside the transaction of the change it records."""
    connection = AuditEvent._choose_db(for_write=True)
    if connection.capabilities.dialect == "postgres":
        await connection.execute_query("SELECT pg_advisory_xact_lock($1)", [_CHAIN_LOCK])
    last = await AuditEvent.all().order_by("-seq").only("seq", "hash").first()
    event = AuditEvent(
        occurred_at=datetime.now(UTC).replace(microsecond=0),
        actor_id=principal.user_id,
        subject_id=subject_id,
        action=action,
        entity=entity,
        entity_id=str(entity_id) if entity_id is not None else None,
        field_names=sorted(set(field_names)),
        request_id=principal.request_id,
        prev_hash=last.hash if last else GENESIS,
    )
    event.hash = _digest(event.prev_hash, event)
    await event.save()
    return event


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int
    first_broken_seq: int | None
    reason: str | None

    @property
    def intact(self) -> bool:
        return self.first_broken_seq is None


async def verify_chain(batch_size: int = 1000) -> ChainReport:
    """Walk the chain in order and name the first record that was altered, removed or moved."""
    prev_hash = GENESIS
    checked = 0
    last_seq = 0
    while True:
        batch = await AuditEvent.filter(seq__gt=last_seq).order_by("seq").limit(batch_size)
        if not batch:
            return ChainReport(checked, None, None)
        for event in batch:
            if event.prev_hash != prev_hash:
                return ChainReport(checked, event.seq, "does not follow the previous record")
            if _digest(prev_hash, event) != event.hash:
                return ChainReport(checked, event.seq, "content does not match its hash")
            prev_hash = event.hash
            last_seq = event.seq
            checked += 1
