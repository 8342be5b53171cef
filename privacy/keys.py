"""Key management: master-key rotation, data-key rotation, and destroying a subject's keys.

Rotation runs while the application serves. Re-wrapping changes only how data keys are
stored. Data-key rotation gives every subject a new key version, re-encrypts the rows that
still name an older one in batches (each batch locked and written in one transaction), and
retires an old key once no ciphertext names it; a retired key can be deleted. The work left is
always "rows naming a superseded key", so a run that stops is resumed by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from redis.asyncio import Redis
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from models import crypto, db, keys
from models.base import Entity
from models.crypto import KEY_ID_CHARS, KEY_ID_SQL_START, DecryptionError, KeyPurpose
from models.keys import DataKey, KeyRotation, KeyState

DEFAULT_BATCH_SIZE = 500
# Every process listens here: a subject's keys destroyed (an erasure) are dropped from each
# process's cache at once, not after the cache's lifetime.
DESTROYED_CHANNEL = "ocis:keys:destroyed"
# How long a listener waits for a message before looking at whether it should stop.
LISTEN_POLL_SECONDS = 0.4

logger = logging.getLogger("ocis.keys")

Phase = Literal["re-wrap", "new keys", "re-encrypt", "settle", "retire"]


@dataclass(frozen=True, slots=True)
class Step:
    """Progress of a rotation: a batch done (running count, per table when re-encrypting), or
    the seconds it waits ("settle")."""

    phase: Phase
    count: int
    table: str | None = None


Progress = Callable[[Step], None]


@dataclass(frozen=True, slots=True)
class DataKeyRotation:
    new_keys: int
    rows_reencrypted: int
    unreadable_rows: int
    retired: int
    still_referenced: int


def _now() -> datetime:
    return datetime.now(UTC)


def _report(progress: Progress | None, step: Step) -> None:
    if progress is not None:
        progress(step)


def encrypted_models() -> list[type[Entity]]:
    """Every model with encrypted columns, in a stable order."""
    found = [
        model
        for model in Tortoise.apps[db.APP].values()
        if issubclass(model, Entity) and model.encrypted_columns()
    ]
    return sorted(found, key=lambda model: model._meta.db_table)


async def rotate_master_key(
    batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None
) -> int:
    """Re-wrap every stored key (data keys and the blind-index key) under the current master key.

    Keys wrapped under a previous master key need that key in OCIS_PREVIOUS_MASTER_KEYS. Every
    serving process should run with the new OCIS_MASTER_KEY (and the old one as previous)
    before this runs, so that each can read both forms. Returns how many keys were re-wrapped.
    """
    ring = crypto.keyring()
    current = ring.current.kek_id
    rewrapped = 0
    after = ""
    while True:
        batch = (
            await DataKey.filter(id__gt=after, wrapped_key__not_isnull=True)
            .exclude(kek_id=current)
            .order_by("id")
            .limit(batch_size)
        )
        if not batch:
            return rewrapped
        async with in_transaction() as connection:
            for record in batch:
                if record.wrapped_key is None:
                    continue
                material = ring.unwrap(
                    record.purpose, record.id, record.subject_id, record.wrapped_key, record.kek_id
                )
                wrapped = ring.wrap(record.purpose, record.id, record.subject_id, material)
                rewrapped += await (
                    DataKey.filter(id=record.id, kek_id=record.kek_id)
                    .using_db(connection)
                    .update(wrapped_key=wrapped.wrapped_key, kek_id=wrapped.kek_id)
                )
        after = batch[-1].id
        _report(progress, Step("re-wrap", rewrapped))


async def _supersede_old_keys(cutoff: datetime, batch_size: int, progress: Progress | None) -> int:
    """Give every subject whose active key predates the rotation a new key version."""
    created_total = 0
    while True:
        old = (
            await DataKey.filter(
                purpose=KeyPurpose.DATA, state=KeyState.ACTIVE, created_at__lt=cutoff
            )
            .order_by("subject_id", "id")
            .limit(batch_size)
        )
        if not old:
            return created_total
        subjects = {record.subject_id for record in old if record.subject_id is not None}
        fresh: list[tuple[UUID, crypto.DataCipher]] = []
        async with in_transaction() as connection:
            history = await DataKey.filter(
                purpose=KeyPurpose.DATA, subject_id__in=list(subjects)
            ).using_db(connection)
            rotated = {
                record.subject_id
                for record in history
                if record.state == KeyState.ACTIVE and record.created_at >= cutoff
            }
            versions: dict[UUID, int] = {}
            for record in history:
                if record.subject_id is not None:
                    versions[record.subject_id] = max(
                        versions.get(record.subject_id, 0), record.version
                    )
            records = []
            for subject_id in sorted(subjects - rotated):
                cipher, record = keys.new_record(subject_id, versions[subject_id] + 1)
                fresh.append((subject_id, cipher))
                records.append(record)
            if records:
                await DataKey.bulk_create(records, using_db=connection)
            await (
                DataKey.filter(id__in=[record.id for record in old])
                .using_db(connection)
                .update(state=KeyState.SUPERSEDED, updated_at=_now())
            )
        keys.forget_subjects(subjects)
        for subject_id, cipher in fresh:
            keys.remember_sealing(subject_id, cipher)
        created_total += len(fresh)
        _report(progress, Step("new keys", created_total))


def _names_superseded_key(column: str) -> str:
    """SQL: the data key named by this column's ciphertext is superseded."""
    named = f'substr("{column}", {KEY_ID_SQL_START}, {KEY_ID_CHARS})'
    superseded = KeyState.SUPERSEDED.value
    return f"""{named} IN (SELECT "id" FROM "data_keys" WHERE "state" = '{superseded}')"""  # noqa: S608 - our names


async def _rows_to_reencrypt(model: type[Entity], after: UUID | None, limit: int) -> list[UUID]:
    connection = Tortoise.get_connection("default")
    postgres = connection.capabilities.dialect == "postgres"
    table = model._meta.db_table
    condition = " OR ".join(
        _names_superseded_key(column) for _, column in model.encrypted_columns()
    )
    values: list[Any] = []
    where = f"({condition})"
    if after is not None:
        values.append(after if postgres else str(after))
        where += f' AND "id" > {"$1" if postgres else "?"}'
    sql = f'SELECT "id" FROM "{table}" WHERE {where} ORDER BY "id" LIMIT {int(limit)}'  # noqa: S608 - our table and column names, numbers
    _, rows = await connection.execute_query(sql, values)
    return [UUID(str(row["id"])) for row in rows]


async def _reencrypt_rows(model: type[Entity], ids: list[UUID]) -> tuple[int, int]:
    """Re-seal these rows under their subjects' current keys: (rows written, rows unreadable)."""
    async with in_transaction() as connection:
        unreadable = 0
        try:
            rows = await model.filter(id__in=ids).select_for_update().using_db(connection)
        except DecryptionError:
            # Some row was tampered with: move the others, leave it for someone to look at.
            rows = []
            for ident in ids:
                try:
                    rows += await model.filter(id=ident).select_for_update().using_db(connection)
                except DecryptionError:
                    unreadable += 1
        groups: dict[tuple[str, ...], list[Entity]] = {}
        for row in rows:
            attributes = tuple(
                attribute
                for attribute, _ in model.encrypted_columns()
                if getattr(row, attribute) is not None and attribute not in row.shredded_fields
            )
            if attributes:
                groups.setdefault(attributes, []).append(row)
        for attributes, members in groups.items():
            await model.bulk_update(members, fields=attributes, using_db=connection)
    return sum(len(members) for members in groups.values()), unreadable


async def _reencrypt(batch_size: int, progress: Progress | None) -> tuple[int, int]:
    written_total = unreadable_total = 0
    for model in encrypted_models():
        table = model._meta.db_table
        in_table = 0
        after: UUID | None = None
        while ids := await _rows_to_reencrypt(model, after, batch_size):
            written, unreadable = await _reencrypt_rows(model, ids)
            in_table += written
            unreadable_total += unreadable
            after = ids[-1]
            _report(progress, Step("re-encrypt", in_table, table))
        written_total += in_table
    return written_total, unreadable_total


async def referenced_superseded_keys() -> set[str]:
    """Superseded keys that some ciphertext still names."""
    connection = Tortoise.get_connection("default")
    named: set[str] = set()
    for model in encrypted_models():
        table = model._meta.db_table
        for _, column in model.encrypted_columns():
            key_id = f'substr("{column}", {KEY_ID_SQL_START}, {KEY_ID_CHARS})'
            _, rows = await connection.execute_query(
                f'SELECT DISTINCT {key_id} AS "key_id" FROM "{table}" '  # noqa: S608 - our names
                f"WHERE {_names_superseded_key(column)}"
            )
            named.update(str(row["key_id"]) for row in rows)
    return named


async def _retire(settle_seconds: float, progress: Progress | None) -> tuple[int, int]:
    """Retire superseded keys no ciphertext names; (retired, still referenced)."""
    settled = _now() - timedelta(seconds=settle_seconds)
    candidates = set(
        await DataKey.filter(state=KeyState.SUPERSEDED, updated_at__lte=settled).values_list(
            "id", flat=True
        )
    )
    referenced = await referenced_superseded_keys() & candidates
    unreferenced = sorted(candidates - referenced)
    retired = 0
    for start in range(0, len(unreferenced), DEFAULT_BATCH_SIZE):
        retired += await DataKey.filter(
            id__in=unreferenced[start : start + DEFAULT_BATCH_SIZE], state=KeyState.SUPERSEDED
        ).update(state=KeyState.RETIRED, updated_at=_now())
    _report(progress, Step("retire", retired))
    return retired, len(referenced)


async def rotate_data_keys(
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    settle_seconds: float = keys.CACHE_TTL_SECONDS,
    progress: Progress | None = None,
) -> DataKeyRotation:
    """Give every subject a new data key, re-encrypt their rows, retire the old keys.

    Old keys keep opening what they sealed until retired, so reads never fail meanwhile. Other
    processes may seal under a superseded key until their key cache expires: old keys are only
    retired ``settle_seconds`` (the cache lifetime) after being superseded, after a last pass.
    Resumable: an unfinished run is continued with the same cut-off by the next call.
    """
    rotation = await KeyRotation.filter(finished_at__isnull=True).order_by("id").first()
    if rotation is None:
        rotation = await KeyRotation.create(started_at=_now())
    new_keys = await _supersede_old_keys(rotation.started_at, batch_size, progress)
    written, unreadable = await _reencrypt(batch_size, progress)
    newest = await DataKey.filter(state=KeyState.SUPERSEDED).order_by("-updated_at").first()
    if newest is not None:
        wait = settle_seconds - (_now() - newest.updated_at).total_seconds()
        if wait > 0:
            _report(progress, Step("settle", math.ceil(wait)))
            await asyncio.sleep(wait)
            new_keys += await _supersede_old_keys(rotation.started_at, batch_size, progress)
            more, also_unreadable = await _reencrypt(batch_size, progress)
            written += more
            unreadable = also_unreadable
    retired, still_referenced = await _retire(settle_seconds, progress)
    if not still_referenced:
        rotation.finished_at = _now()
        await rotation.save(update_fields=["finished_at"])
    return DataKeyRotation(new_keys, written, unreadable, retired, still_referenced)


async def delete_retired_keys() -> int:
    """Delete keys no ciphertext names any more; returns how many."""
    return await DataKey.filter(state=KeyState.RETIRED).delete()


async def destroy_subject_keys(subject_id: UUID) -> int:
    """Erase every data key of a subject: all values sealed under them become unreadable.

    The rows stay; their encrypted attributes read as None. Other processes stop opening them
    when their key cache expires (``models.keys.CACHE_TTL_SECONDS``), or at once when told
    (``destroy_and_broadcast``). Returns how many keys.
    """
    return len(await _destroy(subject_id))


async def _destroy(subject_id: UUID) -> list[str]:
    doomed = [
        str(key_id)
        for key_id in await DataKey.filter(purpose=KeyPurpose.DATA, subject_id=subject_id)
        .exclude(state=KeyState.DESTROYED)
        .values_list("id", flat=True)
    ]
    if doomed:
        await DataKey.filter(id__in=doomed).update(
            state=KeyState.DESTROYED, wrapped_key=None, kek_id=None, updated_at=_now()
        )
    keys.forget_destroyed(subject_id, doomed)
    return doomed


async def destroy_and_broadcast(store: Redis, subject_ids: Iterable[UUID]) -> int:
    """Destroy these subjects' data keys and tell every process sharing the store to drop its
    cached copies at once; how many keys. Safe to repeat (the message names the subject, so a
    repeat drops whatever a process still holds)."""
    destroyed = 0
    for subject_id in subject_ids:
        doomed = await _destroy(subject_id)
        destroyed += len(doomed)
        message = json.dumps({"subject": str(subject_id), "keys": doomed})
        await store.publish(DESTROYED_CHANNEL, message)
    return destroyed


def _forget_announced(raw: object) -> None:
    try:
        announced = json.loads(str(raw))
        subject_id = UUID(str(announced["subject"]))
        key_ids = [str(key_id) for key_id in announced["keys"]]
    except (ValueError, KeyError, TypeError):
        logger.warning("ignored a malformed key destruction message")
        return
    keys.forget_destroyed(subject_id, key_ids)
    # The sealing keys of any subject named: their newest key may be among those destroyed.
    keys.forget_subjects([subject_id])


# How long the listener's pub/sub connection gets to close.
STOP_SECONDS = 5.0


async def listen_for_destroyed_keys(store: Redis, stopping: asyncio.Event) -> None:
    """Drop each data key another process destroyed as soon as it says so, until `stopping`.

    A dropped connection may have missed a message: the whole cache is dropped then, and the
    keys are loaded again as they are needed.
    """
    resubscribing = False
    while not stopping.is_set():
        pubsub = store.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(DESTROYED_CHANNEL)
            if resubscribing:  # anything destroyed while not subscribed is forgotten too
                keys.forget()
            while not stopping.is_set():
                message = await pubsub.get_message(timeout=LISTEN_POLL_SECONDS)
                if message is not None and message.get("type") == "message":
                    _forget_announced(message.get("data"))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the store went away: listen again once it is back
            resubscribing = True
            logger.warning("key destruction listener: %s; listening again", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=LISTEN_POLL_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), STOP_SECONDS)  # type: ignore[no-untyped-call]


@asynccontextmanager
async def listening(store: Redis) -> AsyncIterator[None]:
    """Listen for destroyed keys while the block runs (every serving and working process)."""
    stopping = asyncio.Event()
    task = asyncio.create_task(listen_for_destroyed_keys(store, stopping))
    try:
        yield
    finally:
        stopping.set()
        task.cancel()
        # Bounded: a pub/sub connection that will not close must not keep the process alive.
        done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
        if not done:
            logger.warning("key destruction listener did not stop within %.0f s", STOP_SECONDS)
