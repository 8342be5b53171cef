"""The audit trail: hash-chained records of references and field names, never values.

Each record's hash covers its content and the hash of the record before it. The
``prev_hash`` column is unique, so two writers that append after the same record collide
instead of forking the chain; the loser reads the new head and tries again. Reads of
personal data are batched into one insert per request, appended after a head cached in
this process, which costs one statement unless another writer got there first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from tortoise.backends.base.client import TransactionalDBClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from auth.principal import Principal
from models import AuditEvent

GENESIS = "0" * 64
MAX_ATTEMPTS = 20
READ_ACTION = "personal_data.read"


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing to record: what was done, to which object, about whom, which fields."""

    action: str
    entity: str
    entity_id: str | None
    subject_id: UUID | None
    field_names: Sequence[str] = field(default_factory=tuple)
    purpose: str | None = None


def _content(event: AuditEvent) -> str:
    return json.dumps(
        [
            event.occurred_at.astimezone(UTC).isoformat(),
            str(event.actor_id) if event.actor_id else None,
            sorted(event.actor_roles),
            str(event.subject_id) if event.subject_id else None,
            event.action,
            event.entity,
            event.entity_id,
            sorted(event.field_names),
            event.purpose,
            event.request_id,
        ],
        separators=(",", ":"),
    )


def link_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(f"{prev_hash}|{_content(event)}".encode()).hexdigest()


class _Head:
    """The last hash this process appended outside a transaction (so it surely committed)."""

    value: str | None = None
    # Requests in this process append one at a time; collisions are then only across processes.
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def lock(cls) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop not in cls.locks:
            cls.locks[loop] = asyncio.Lock()
        return cls.locks[loop]


def forget_head() -> None:
    """Drop the cached head; the next append reads it from the database."""
    _Head.value = None


async def prime_head() -> None:
    """Read the chain's head once (at startup) so reads cost one statement from the first."""
    _Head.value = await _read_head()


async def _read_head() -> str:
    last = await AuditEvent.all().order_by("-seq").only("seq", "hash").first()
    return last.hash if last else GENESIS


def _events(principal: Principal, entries: Iterable[Entry], head: str) -> list[AuditEvent]:
    now = datetime.now(UTC).replace(microsecond=0)
    roles = sorted(role.value for role in principal.roles)
    events = []
    for entry in entries:
        event = AuditEvent(
            occurred_at=now,
            actor_id=principal.user_id,
            actor_roles=roles,
            subject_id=entry.subject_id,
            action=entry.action,
            entity=entry.entity,
            entity_id=entry.entity_id,
            field_names=sorted(set(entry.field_names)),
            purpose=entry.purpose,
            request_id=principal.request_id,
            prev_hash=head,
        )
        event.hash = link_hash(head, event)
        head = event.hash
        events.append(event)
    return events


async def record(
    principal: Principal,
    *,
    action: str,
    entity: str,
    entity_id: UUID | str | None,
    subject_id: UUID | None,
    field_names: Iterable[str] = (),
    purpose: str | None = None,
) -> AuditEvent:
    """Append one change record; call it inside the transaction of the change it records."""
    entry = Entry(
        action=action,
        entity=entity,
        entity_id=str(entity_id) if entity_id is not None else None,
        subject_id=subject_id,
        field_names=tuple(field_names),
        purpose=purpose,
    )
    for _ in range(MAX_ATTEMPTS):
        try:
            async with in_transaction():
                (event,) = _events(principal, [entry], await _read_head())
                await event.save()
        except IntegrityError:
            continue
        # The surrounding transaction may still roll back: never cache this head.
        forget_head()
        return event
    raise RuntimeError("audit chain stayed contended; the change was not recorded")


async def record_many(principal: Principal, entries: Sequence[Entry]) -> None:
    """Append a batch in one statement after the cached head; refresh it on collision."""
    if not entries:
        return
    connection = AuditEvent._choose_db(for_write=True)
    cacheable = not isinstance(connection, TransactionalDBClient)
    async with _Head.lock():
        await _append_batch(principal, entries, cacheable)


async def _append_batch(principal: Principal, entries: Sequence[Entry], cacheable: bool) -> None:
    for _ in range(MAX_ATTEMPTS):
        head = _Head.value if cacheable and _Head.value else await _read_head()
        events = _events(principal, entries, head)
        try:
            async with in_transaction():
                await AuditEvent.bulk_create(events)
        except IntegrityError:
            forget_head()
            continue
        _Head.value = events[-1].hash if cacheable else None
        return
    raise RuntimeError("audit chain stayed contended; the reads were not recorded")


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
            if link_hash(prev_hash, event) != event.hash:
                return ChainReport(checked, event.seq, "content does not match its hash")
            prev_hash = event.hash
            last_seq = event.seq
            checked += 1
