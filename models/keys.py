"""Data keys at rest, wrapped by the master key, and this process's cache of unwrapped ones.

Each subject (the person a row is about, or the row itself when no person is known) has data
keys of its own; the newest ``active`` one seals new values. Unwrapped keys are cached for
``CACHE_TTL_SECONDS`` so that a key destroyed or superseded by another process stops being used
here within that time. A key created inside a transaction is only trusted for sealing inside
that transaction until a later query finds it committed, so a rolled-back key never seals data.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.models import Model

from models import crypto
from models.crypto import DataCipher, DecryptionError, KeyPurpose

CACHE_TTL_SECONDS = 60.0
# At most this many related subjects' keys are fetched along with the keys a batch names.
PRELOAD_SUBJECTS = 1000
BLIND_INDEX_KEY_ID = "blind-index"


class KeyState(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    RETIRED = "retired"
    DESTROYED = "destroyed"


class DataKey(Model):
    """A wrapped key: a subject's data key (one per version) or the blind-index key.

    ``active``: seals new values (the subject's newest); ``superseded``: a newer version exists,
    it still opens what it sealed while rotation moves those values; ``retired``: no ciphertext
    names it any more, so it can be deleted; ``destroyed``: its material is erased and every
    value it sealed is unreadable.
    """

    id = fields.CharField(max_length=16, primary_key=True)
    purpose = fields.CharEnumField(KeyPurpose, max_length=16, default=KeyPurpose.DATA)
    subject_id = fields.UUIDField(null=True)
    version = fields.IntField(default=1)
    state = fields.CharEnumField(KeyState, max_length=16, default=KeyState.ACTIVE)
    wrapped_key = fields.CharField(max_length=128, null=True)
    kek_id = fields.CharField(max_length=16, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "data_keys"
        indexes = (("subject_id", "state"),)


class KeyRotation(Model):
    """One run of data-key rotation: an unfinished run is resumed by the next one."""

    id = fields.IntField(primary_key=True)
    started_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "key_rotations"


@dataclass
class _TransactionKeys:
    sealing: dict[UUID, DataCipher] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)


@dataclass
class _Cache:
    opening: dict[str, tuple[float, DataCipher | None]] = field(default_factory=dict)
    sealing: dict[UUID, tuple[float, DataCipher]] = field(default_factory=dict)
    transactions: weakref.WeakKeyDictionary[BaseDBAsyncClient, _TransactionKeys] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    loading: dict[str, asyncio.Future[None]] = field(default_factory=dict)


_cache = _Cache()


def forget() -> None:
    """Drop every cached key (a new connection, a new master key, or a test's clean slate)."""
    global _cache
    _cache = _Cache()


def _expiry() -> float:
    return time.monotonic() + CACHE_TTL_SECONDS


def _transaction(db: BaseDBAsyncClient) -> _TransactionKeys | None:
    root: BaseDBAsyncClient | None = None
    current: object = db
    while isinstance(current, TransactionalDBClient):
        root = current
        current = getattr(current, "_parent", None)
    if root is None:
        return None
    keys = _cache.transactions.get(root)
    if keys is None:
        keys = _cache.transactions[root] = _TransactionKeys()
    return keys


def cached_cipher(key_id: str, *, stale_ok: bool = False) -> tuple[bool, DataCipher | None]:
    """(known, cipher): a known key with no cipher was destroyed.

    ``stale_ok`` accepts an expired entry: for values whose key was loaded for them just now.
    """
    entry = _cache.opening.get(key_id)
    if entry is None or (entry[0] < time.monotonic() and not stale_ok):
        return False, None
    return True, entry[1]


def remember_cipher(cipher: DataCipher) -> None:
    _cache.opening[cipher.key_id] = (_expiry(), cipher)


def remember_sealing(subject_id: UUID, cipher: DataCipher) -> None:
    """The subject's current key, known to be committed."""
    remember_cipher(cipher)
    _cache.sealing[subject_id] = (_expiry(), cipher)


def forget_subjects(subject_ids: Iterable[UUID]) -> None:
    for subject_id in subject_ids:
        _cache.sealing.pop(subject_id, None)


def forget_destroyed(subject_id: UUID, key_ids: Iterable[str]) -> None:
    _cache.sealing.pop(subject_id, None)
    for transaction in _cache.transactions.values():
        transaction.sealing.pop(subject_id, None)
    for key_id in key_ids:
        _cache.opening[key_id] = (_expiry(), None)


def open_record(record: DataKey) -> DataCipher | None:
    """Unwrap a stored data key; None when it was destroyed."""
    if record.purpose != KeyPurpose.DATA:
        raise DecryptionError("a ciphertext names a key that is not a data key")
    if record.state == KeyState.DESTROYED or record.wrapped_key is None:
        return None
    if record.subject_id is None:
        raise DecryptionError("a data key without a subject")
    return crypto.keyring().open_data_key(
        record.id, record.subject_id, record.wrapped_key, record.kek_id
    )


def new_record(subject_id: UUID, version: int) -> tuple[DataCipher, DataKey]:
    cipher, wrapped = crypto.keyring().new_data_key(subject_id)
    record = DataKey(
        id=wrapped.key_id,
        purpose=KeyPurpose.DATA,
        subject_id=subject_id,
        version=version,
        state=KeyState.ACTIVE,
        wrapped_key=wrapped.wrapped_key,
        kek_id=wrapped.kek_id,
    )
    return cipher, record


async def load_ciphers(
    key_ids: Iterable[str], db: BaseDBAsyncClient, related: Iterable[UUID] = ()
) -> None:
    """Load the named data keys in one query (destroyed ones are remembered as such).

    The same query also fetches the active keys of ``related`` subjects (the people the rows
    point at), which the next batches of a request usually need. Keys another batch is already
    loading are waited for, not queried again: a request's DataLoaders run concurrently.
    """
    wanted = {key_id for key_id in key_ids if not cached_cipher(key_id)[0]}
    if not wanted:
        return
    loading = _cache.loading
    elsewhere = {loading[key_id] for key_id in wanted if key_id in loading}
    mine = [key_id for key_id in wanted if key_id not in loading]
    if mine:
        done = asyncio.get_running_loop().create_future()
        for key_id in mine:
            loading[key_id] = done
        try:
            await _load(mine, db, related)
        finally:
            for key_id in mine:
                if loading.get(key_id) is done:
                    del loading[key_id]
            done.set_result(None)
    if elsewhere:
        await asyncio.wait(elsewhere)
        # A failed or invisible load elsewhere: look for ourselves.
        left = [key_id for key_id in wanted if not cached_cipher(key_id)[0]]
        if left:
            await _load(left, db)


async def _load(key_ids: list[str], db: BaseDBAsyncClient, related: Iterable[UUID] = ()) -> None:
    wanted = Q(id__in=key_ids)
    subjects = list(set(related))
    if 0 < len(subjects) <= PRELOAD_SUBJECTS:
        wanted |= Q(subject_id__in=subjects, state=KeyState.ACTIVE, purpose=KeyPurpose.DATA)
    for record in await DataKey.filter(wanted).using_db(db):
        cipher = open_record(record)
        if cipher is None:
            _cache.opening[record.id] = (_expiry(), None)
        else:
            remember_cipher(cipher)


def _newest(records: Iterable[DataKey]) -> DataKey | None:
    return max(records, key=lambda r: (r.version, r.created_at, r.id), default=None)


async def sealing_ciphers(
    subject_ids: Iterable[UUID], db: BaseDBAsyncClient
) -> dict[UUID, DataCipher]:
    """Each subject's current data key, creating one for a subject that has none.

    Costs nothing when every key is cached, else one SELECT, plus one INSERT when keys are new.
    """
    wanted = set(subject_ids)
    now = time.monotonic()
    transaction = _transaction(db)
    found: dict[UUID, DataCipher] = {}
    for subject_id in wanted:
        if transaction is not None and subject_id in transaction.sealing:
            found[subject_id] = transaction.sealing[subject_id]
            continue
        entry = _cache.sealing.get(subject_id)
        if entry is not None and entry[0] > now:
            found[subject_id] = entry[1]
    missing = wanted - found.keys()
    if not missing:
        return found

    by_subject: dict[UUID, list[DataKey]] = {}
    for record in await DataKey.filter(
        purpose=KeyPurpose.DATA, subject_id__in=list(missing)
    ).using_db(db):
        if record.subject_id is not None:
            by_subject.setdefault(record.subject_id, []).append(record)

    created: list[tuple[UUID, DataCipher, DataKey]] = []
    for subject_id in missing:
        records = by_subject.get(subject_id, [])
        current = _newest(r for r in records if r.state == KeyState.ACTIVE)
        if current is None:
            version = max((r.version for r in records), default=0) + 1
            cipher, record = new_record(subject_id, version)
            created.append((subject_id, cipher, record))
            found[subject_id] = cipher
            continue
        opened = open_record(current)
        if opened is None:
            raise DecryptionError(f"data key {current.id} is active but has no material")
        found[subject_id] = opened
        if transaction is not None and current.id in transaction.created:
            remember_cipher(opened)
            transaction.sealing[subject_id] = opened
        else:
            remember_sealing(subject_id, opened)

    if created:
        await DataKey.bulk_create([record for _, _, record in created], using_db=db)
        for subject_id, cipher, record in created:
            remember_cipher(cipher)
            if transaction is not None:
                transaction.created.add(record.id)
                transaction.sealing[subject_id] = cipher
            else:
                remember_sealing(subject_id, cipher)
    return found


async def load_blind_index_key() -> None:
    """Install the stored blind-index key, storing the initial one on a fresh database.

    The initial key is derived from the master key in use when the database was created, so
    processes starting together agree on it; afterwards it is read back (wrapped under whichever
    master key is current) and survives master-key rotation unchanged.
    """
    ring = crypto.keyring()
    record = await DataKey.get_or_none(id=BLIND_INDEX_KEY_ID)
    if record is None:
        material = ring.current.initial_blind_index_key
        wrapped = ring.wrap(KeyPurpose.BLIND_INDEX, BLIND_INDEX_KEY_ID, None, material)
        try:
            await DataKey.create(
                id=BLIND_INDEX_KEY_ID,
                purpose=KeyPurpose.BLIND_INDEX,
                subject_id=None,
                version=1,
                wrapped_key=wrapped.wrapped_key,
                kek_id=wrapped.kek_id,
            )
        except IntegrityError:
            record = await DataKey.get(id=BLIND_INDEX_KEY_ID)
        else:
            crypto.install_blind_index_key(material)
            return
    if record.wrapped_key is None:
        raise DecryptionError("the blind-index key has been destroyed")
    material = ring.unwrap(
        KeyPurpose.BLIND_INDEX, record.id, None, record.wrapped_key, record.kek_id
    )
    crypto.install_blind_index_key(material)
