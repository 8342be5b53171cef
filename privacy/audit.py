"""The audit trail: keyed, hash-chained records of references and field names, never values.

Chains. Each process draws a writer id at startup and appends only to chains of its own:
``<writer>.r`` for reads of personal data (one insert per request, after a head cached in
this process) and ``<writer>.c`` for changes (inside the transaction of the change they
record). Processes therefore neither collide nor queue on a shared row. Each chain starts
from a genesis of its own, so the unique ``prev_hash`` still turns two appends after the same
record of one chain into a collision instead of a fork.

Within a process, appends to one chain take turns: on PostgreSQL an append first takes a
transaction-scoped advisory lock named after its chain (held until the transaction that
holds the append ends), and only then reads the head, which is therefore the newest committed
record: concurrent requests of one process queue for the head instead of racing for it and
retrying (under load the optimistic retries ran out, and the change failed). SQLite runs one
transaction at a time, so its appends take turns already. The retry on a collision stays,
as a guard that should never run.

Coverage. After every batch that committed, the writer stores one keyed checkpoint of its
chains' heads outside the database (``privacy.audit_checkpoints``). A change appended inside a
caller's transaction is covered once it is seen committed: by the process's next read batch,
or by ``checkpoint()``.

Around it: the keys and links (``privacy.audit_links``), this process's writer state
(``privacy.audit_state``), and verification and pruning (``privacy.audit_verify``). Rows from
before migration 0007 form the chain ``legacy``, never appended to again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

import settings as config
from auth.principal import Principal
from models import AuditEvent
from observability import AUDIT_APPENDS, AUDIT_RETRIES
from privacy.audit_checkpoints import anchor_legacy, cover
from privacy.audit_links import AuditKey, canonical, chain_link, genesis
from privacy.audit_state import Head, Writer, configure, current_config, read_head

__all__ = [
    "MAX_ATTEMPTS",
    "PENDING_SECONDS",
    "READ_ACTION",
    "Entry",
    "checkpoint",
    "checkpoint_at_shutdown",
    "configure",
    "forget_head",
    "prime_head",
    "record",
    "record_many",
    "retries",
]

MAX_ATTEMPTS = 20
READ_ACTION = "personal_data.read"
# A change not seen committed this long after its append was rolled back: stop looking.
PENDING_SECONDS = 10.0

logger = logging.getLogger("ocis.audit")


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing to record: what was done, to which object, about whom, which fields."""

    action: str
    entity: str
    entity_id: str | None
    subject_id: UUID | None
    field_names: Sequence[str] = field(default_factory=tuple)
    purpose: str | None = None


def retries() -> int:
    """How many appends of this process collided and were retried."""
    return Writer.retries


def forget_head() -> None:
    """Drop the cached head; the next append reads it from the database."""
    Writer.read_head = None
    Writer.pending_change = None
    Writer.covered = {}


async def prime_head(settings: config.Settings | None = None, store: Redis | None = None) -> None:
    """Start this process's chains under a fresh writer id (at startup); anchor the legacy chain."""
    if settings is not None:
        configure(settings, store)
    elif Writer.config is None:
        configure(config.from_environ())
    else:
        # A client shared by an earlier app may be closed by now.
        Writer.config.store = None
    Writer.id = secrets.token_hex(8)
    forget_head()
    Writer.read_head = (0, genesis(Writer.reads_chain()))
    await anchor_legacy()


# The columns an append writes, in the order of a row's values (``seq`` is the database's).
COLUMNS = (
    "occurred_at",
    "actor_id",
    "actor_roles",
    "subject_id",
    "action",
    "entity",
    "entity_id",
    "field_names",
    "purpose",
    "request_id",
    "chain",
    "position",
    "key_id",
    "prev_hash",
    "hash",
)
_POSITION, _HASH = COLUMNS.index("position"), COLUMNS.index("hash")
# Rows per INSERT within PostgreSQL's limit of bound values per statement (SQLite's is higher).
ROWS_PER_STATEMENT = 32767 // len(COLUMNS)
Row = tuple[Any, ...]


def _rows(
    key: AuditKey, principal: Principal, entries: Iterable[Entry], chain: str, head: Head
) -> list[Row]:
    """The records of ``entries`` after ``head``, linked, as plain values in COLUMNS order."""
    now = datetime.now(UTC).replace(microsecond=0)
    roles = sorted(role.value for role in principal.roles)
    actor, request_id = principal.user_id, principal.request_id
    position, prev_hash = head
    rows = []
    for entry in entries:
        position += 1
        field_names = sorted(set(entry.field_names))
        text = canonical(
            now,
            actor,
            roles,
            entry.subject_id,
            entry.action,
            entry.entity,
            entry.entity_id,
            field_names,
            entry.purpose,
            request_id,
        )
        link = chain_link(key, chain, position, prev_hash, text)
        rows.append(
            (
                now,
                actor,
                roles,
                entry.subject_id,
                entry.action,
                entry.entity,
                entry.entity_id,
                field_names,
                entry.purpose,
                request_id,
                chain,
                position,
                key.key_id,
                prev_hash,
                link,
            )
        )
        prev_hash = link
    return rows


async def _insert(connection: BaseDBAsyncClient, rows: Sequence[Row]) -> None:
    """Write rows with one INSERT per ROWS_PER_STATEMENT, each value as the model's field
    would store it (so the verifier, which loads records, reads back what was hashed)."""
    meta = AuditEvent._meta
    stored = [meta.fields_map[name] for name in COLUMNS]
    columns = ", ".join(f'"{meta.fields_db_projection[name]}"' for name in COLUMNS)
    numbered = connection.capabilities.dialect == "postgres"
    # A batch's rows share their time, actor, roles, request and chain: the same objects,
    # converted once.
    converted: dict[tuple[int, int], Any] = {}
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        values = []
        for row in chunk:
            for index, (column, value) in enumerate(zip(stored, row, strict=True)):
                known = (index, id(value))
                if known not in converted:
                    converted[known] = column.to_db_value(value, AuditEvent)
                values.append(converted[known])
        await connection.execute_query(
            f'INSERT INTO "{meta.db_table}" ({columns}) VALUES {_groups(len(chunk), numbered)}',  # noqa: S608 - our names
            values,
        )


@functools.lru_cache(maxsize=64)
def _groups(rows: int, numbered: bool) -> str:
    """The VALUES placeholders of an INSERT of `rows` rows of COLUMNS."""
    count = rows * len(COLUMNS)
    marks = iter([f"${n}" for n in range(1, count + 1)] if numbered else ["?"] * count)
    return ", ".join("(" + ", ".join(next(marks) for _ in COLUMNS) + ")" for _ in range(rows))


def _chain_lock_key(chain: str) -> int:
    """The advisory-lock key of one chain: 64 bits of a hash of its name, signed as bigint."""
    digest = hashlib.sha256(b"ocis-audit-chain:" + chain.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _take_turn(connection: BaseDBAsyncClient, chain: str) -> None:
    """Wait until no other open transaction appends to ``chain``; hold it until this one ends.

    A statement of its own, before the head is read: under READ COMMITTED the head's read then
    sees what the previous holder committed (a statement's snapshot is taken when it starts).
    """
    if connection.capabilities.dialect == "postgres":
        await connection.execute_query("SELECT pg_advisory_xact_lock($1)", [_chain_lock_key(chain)])


def _outside_transactions() -> bool:
    return not isinstance(AuditEvent._choose_db(for_write=True), TransactionalDBClient)


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
    key = current_config().current
    chain = Writer.changes_chain()
    committed = _outside_transactions()
    for _ in range(MAX_ATTEMPTS):
        try:
            async with in_transaction() as connection:
                await _take_turn(connection, chain)
                (row,) = _rows(key, principal, [entry], chain, await read_head(chain))
                event = AuditEvent(**dict(zip(COLUMNS, row, strict=True)))
                await event.save()
        except IntegrityError:
            # Only another transaction of this process appends to this chain, and it waits
            # for its turn first: not expected to happen.
            Writer.retries += 1
            AUDIT_RETRIES.inc()
            continue
        AUDIT_APPENDS.inc()
        head = (event.position, event.hash)
        if committed:
            await cover({chain: head})
        else:
            # The surrounding transaction may still roll back: covered once seen committed.
            Writer.pending_change = (head, time.monotonic())
        return event
    raise RuntimeError("audit chain stayed contended; the change was not recorded")


async def record_many(principal: Principal, entries: Sequence[Entry]) -> None:
    """Append a batch in one statement after the cached head, then checkpoint it."""
    if not entries:
        return
    cacheable = _outside_transactions()
    async with Writer.lock():
        await _append_batch(principal, entries, cacheable)


async def _append_batch(principal: Principal, entries: Sequence[Entry], cacheable: bool) -> None:
    key = current_config().current
    chain = Writer.reads_chain()
    for _ in range(MAX_ATTEMPTS):
        head = Writer.read_head if cacheable else None
        try:
            if head is not None and len(entries) <= ROWS_PER_STATEMENT:
                # Exact: this process's appends of reads outside transactions take turns
                # (Writer.lock) and each has committed when the next one starts. One statement
                # is atomic by itself: no BEGIN and COMMIT round trips around it.
                rows = _rows(key, principal, entries, chain, head)
                await _insert(AuditEvent._choose_db(for_write=True), rows)
            else:
                async with in_transaction() as connection:
                    if head is None:
                        # After an append inside a transaction (it dropped the cache), or being
                        # one: wait until that transaction ended, then read what it left.
                        await _take_turn(connection, chain)
                        head = await read_head(chain)
                    rows = _rows(key, principal, entries, chain, head)
                    await _insert(connection, rows)
        except IntegrityError:
            Writer.retries += 1
            AUDIT_RETRIES.inc()
            Writer.read_head = None
            continue
        AUDIT_APPENDS.inc(len(rows))
        new_head = (rows[-1][_POSITION], rows[-1][_HASH])
        Writer.read_head = new_head if cacheable else None
        if cacheable:
            await cover({chain: new_head, **await _committed_change()})
        return
    raise RuntimeError("audit chain stayed contended; the reads were not recorded")


async def _committed_change() -> dict[str, Head]:
    """The changes chain's head once the pending change is seen committed (else nothing)."""
    if Writer.pending_change is None:
        return {}
    (position, _), since = Writer.pending_change
    chain = Writer.changes_chain()
    head = await read_head(chain)
    if head[0] >= position or time.monotonic() - since > PENDING_SECONDS:
        Writer.pending_change = None
    return {chain: head} if head[0] else {}


async def checkpoint() -> None:
    """Cover this process's committed chain heads now (at shutdown, or after changes)."""
    heads = {
        chain: await read_head(chain) for chain in (Writer.reads_chain(), Writer.changes_chain())
    }
    Writer.pending_change = None
    await cover({chain: head for chain, head in heads.items() if head[0]})


async def checkpoint_at_shutdown() -> None:
    """The last checkpoint of a stopping process; a failure is logged, never stops the shutdown."""
    try:
        await checkpoint()
    except Exception:  # noqa: BLE001 - the database or store may already be gone
        logger.warning("final audit checkpoint failed: this writer's newest records stay uncovered")
