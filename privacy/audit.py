"""The audit trail: keyed, hash-chained records of references and field names, never values.

Chains. Each process draws a writer id at startup and appends only to chains of its own:
``<writer>.r`` for reads of personal data (one insert per request, after a head cached in
this process) and ``<writer>.c`` for changes (inside the transaction of the change they
record). Processes therefore neither collide nor queue on a shared row. Each chain starts
from a genesis of its own, so the unique ``prev_hash`` still turns two appends after the same
record of one chain into a collision (retried) instead of a fork.

Keys. A link is an HMAC-SHA256 under a key derived from the master key (HKDF, label
``ocis/audit-chain``), which the database never holds; ``key_id`` names the key by its
fingerprint, so records keyed before a rotation verify under OCIS_PREVIOUS_MASTER_KEYS.

Checkpoints. After every batch that committed, the writer stores one keyed checkpoint (its
chains' positions and head hashes, and the time) outside the database: with REDIS_URL to
``ocis:audit:checkpoint:<writer>`` in Redis plus one INFO log line, else as a line appended
to ``checkpoint-<writer>.jsonl`` under OCIS_AUDIT_CHECKPOINT_DIR (``var/audit-checkpoints``).
A change appended inside a caller's transaction is covered once it is seen committed: by the
process's next read batch, or by ``checkpoint()``.

Verification. ``verify_chain`` walks every chain in seq order and names the first record that
was altered or had its hash recomputed (its HMAC does not verify under our key), or was removed
or moved (its position or ``prev_hash`` does not follow); then any chain that ends before its
checkpoint (truncation) or a trail that is empty while checkpoints remain (wiping).

Pruning. ``prune_before`` first stores, per chain, a keyed anchor (``anchor-<chain>``, beside
the checkpoints) naming the last pruned record's position and hash, then deletes the records
up to it; the verifier starts that chain from its anchor, so removing more than was pruned
still shows. The deletion runs through a caller-given runner: the append-only triggers refuse
it to the application, and the retention run decides how it is allowed.

Legacy. Rows from before migration 0007 form the chain ``legacy``: SHA-256 links in seq order,
verified as before. The first start after the migration anchors its head with a keyed
checkpoint, after which truncating it shows too; it is never appended to again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

import settings as config
from auth.principal import Principal
from models import AuditEvent, crypto

GENESIS = "0" * 64
MAX_ATTEMPTS = 20
READ_ACTION = "personal_data.read"
LEGACY_CHAIN = "legacy"
LEGACY_KEY_ID = "sha256"
REDIS_PREFIX = "ocis:audit:"
# A change not seen committed this long after its append was rolled back: stop looking.
PENDING_SECONDS = 10.0
# A checkpoint file is rewritten with its newest line alone once it grows past this.
MAX_CHECKPOINT_FILE_BYTES = 1 << 20

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


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The chain key derived from one master key, known by a fingerprint."""

    key_id: str
    secret: bytes

    @classmethod
    def from_master_key(cls, master_key: bytes) -> AuditKey:
        secret = crypto.derive(master_key, "ocis/audit-chain")
        key_id = hmac.new(secret, b"ocis/audit-key-id", hashlib.sha256).hexdigest()[:16]
        return cls(key_id, secret)

    def mac(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()


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
    """The unkeyed link of the legacy chain (before migration 0007)."""
    return hashlib.sha256(f"{prev_hash}|{_content(event)}".encode()).hexdigest()


def keyed_link(key: AuditKey, event: AuditEvent) -> str:
    return key.mac(f"{event.chain}|{event.position}|{event.prev_hash}|{_content(event)}")


def genesis(chain: str) -> str:
    return hashlib.sha256(f"ocis/audit-genesis|{chain}".encode()).hexdigest()


@dataclass(slots=True)
class _Config:
    settings: config.Settings
    current: AuditKey
    keys: dict[str, AuditKey]
    store: Redis | None = None


Head = tuple[int, str]


class _Writer:
    """This process's chains, their cached heads and what its checkpoints already cover."""

    config: _Config | None = None
    id: str = secrets.token_hex(8)
    read_head: Head | None = None
    pending_change: tuple[Head, float] | None = None
    covered: dict[str, Head] = {}
    retries: int = 0
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

    @classmethod
    def reads_chain(cls) -> str:
        return f"{cls.id}.r"

    @classmethod
    def changes_chain(cls) -> str:
        return f"{cls.id}.c"


def configure(settings: config.Settings, store: Redis | None = None) -> _Config:
    """Use these settings' master keys and checkpoint place; ``store``: a Redis client to share."""
    keys = [AuditKey.from_master_key(settings.master_key)]
    keys += [AuditKey.from_master_key(key) for key in settings.previous_master_keys]
    _Writer.config = _Config(settings, keys[0], {key.key_id: key for key in keys}, store)
    return _Writer.config


def _config() -> _Config:
    return _Writer.config or configure(config.from_environ())


def retries() -> int:
    """How many appends of this process collided and were retried."""
    return _Writer.retries


def forget_head() -> None:
    """Drop the cached head; the next append reads it from the database."""
    _Writer.read_head = None
    _Writer.pending_change = None
    _Writer.covered = {}


async def prime_head(settings: config.Settings | None = None, store: Redis | None = None) -> None:
    """Start this process's chains under a fresh writer id (at startup); anchor the legacy chain."""
    if settings is not None:
        configure(settings, store)
    elif _Writer.config is None:
        configure(config.from_environ())
    else:
        # A client shared by an earlier app may be closed by now.
        _Writer.config.store = None
    _Writer.id = secrets.token_hex(8)
    forget_head()
    _Writer.read_head = (0, genesis(_Writer.reads_chain()))
    await _anchor_legacy()


async def _read_head(chain: str) -> Head:
    last = (
        await AuditEvent.filter(chain=chain).order_by("-position").only("position", "hash").first()
    )
    return (last.position, last.hash) if last else (0, genesis(chain))


def _events(
    key: AuditKey, principal: Principal, entries: Iterable[Entry], chain: str, head: Head
) -> list[AuditEvent]:
    now = datetime.now(UTC).replace(microsecond=0)
    roles = sorted(role.value for role in principal.roles)
    position, prev_hash = head
    events = []
    for entry in entries:
        position += 1
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
            chain=chain,
            position=position,
            key_id=key.key_id,
            prev_hash=prev_hash,
        )
        event.hash = keyed_link(key, event)
        prev_hash = event.hash
        events.append(event)
    return events


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
    key = _config().current
    chain = _Writer.changes_chain()
    committed = _outside_transactions()
    for _ in range(MAX_ATTEMPTS):
        try:
            async with in_transaction():
                (event,) = _events(key, principal, [entry], chain, await _read_head(chain))
                await event.save()
        except IntegrityError:
            # Only another transaction of this process appends to this chain.
            _Writer.retries += 1
            continue
        head = (event.position, event.hash)
        if committed:
            await _checkpoint({chain: head})
        else:
            # The surrounding transaction may still roll back: covered once seen committed.
            _Writer.pending_change = (head, time.monotonic())
        return event
    raise RuntimeError("audit chain stayed contended; the change was not recorded")


async def record_many(principal: Principal, entries: Sequence[Entry]) -> None:
    """Append a batch in one statement after the cached head, then checkpoint it."""
    if not entries:
        return
    cacheable = _outside_transactions()
    async with _Writer.lock():
        await _append_batch(principal, entries, cacheable)


async def _append_batch(principal: Principal, entries: Sequence[Entry], cacheable: bool) -> None:
    key = _config().current
    chain = _Writer.reads_chain()
    for _ in range(MAX_ATTEMPTS):
        head = _Writer.read_head if cacheable and _Writer.read_head else await _read_head(chain)
        events = _events(key, principal, entries, chain, head)
        try:
            async with in_transaction():
                await AuditEvent.bulk_create(events)
        except IntegrityError:
            _Writer.retries += 1
            _Writer.read_head = None
            continue
        new_head = (events[-1].position, events[-1].hash)
        _Writer.read_head = new_head if cacheable else None
        if cacheable:
            await _checkpoint({chain: new_head, **await _committed_change()})
        return
    raise RuntimeError("audit chain stayed contended; the reads were not recorded")


async def _committed_change() -> dict[str, Head]:
    """The changes chain's head once the pending change is seen committed (else nothing)."""
    if _Writer.pending_change is None:
        return {}
    (position, _), since = _Writer.pending_change
    chain = _Writer.changes_chain()
    head = await _read_head(chain)
    if head[0] >= position or time.monotonic() - since > PENDING_SECONDS:
        _Writer.pending_change = None
    return {chain: head} if head[0] else {}


async def checkpoint() -> None:
    """Cover this process's committed chain heads now (at shutdown, or after changes)."""
    heads = {
        chain: await _read_head(chain) for chain in (_Writer.reads_chain(), _Writer.changes_chain())
    }
    _Writer.pending_change = None
    await _checkpoint({chain: head for chain, head in heads.items() if head[0]})


async def checkpoint_at_shutdown() -> None:
    """The last checkpoint of a stopping process; a failure is logged, never stops the shutdown."""
    try:
        await checkpoint()
    except Exception:  # noqa: BLE001 - the database or store may already be gone
        logger.warning("final audit checkpoint failed: this writer's newest records stay uncovered")


def _sealed(key: AuditKey, body: dict[str, Any]) -> str:
    body = {**body, "key_id": key.key_id}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return json.dumps({**body, "mac": key.mac(canonical)}, sort_keys=True, separators=(",", ":"))


def _opened(keys: dict[str, AuditKey], text: str) -> dict[str, Any] | None:
    """A stored checkpoint or anchor whose MAC verifies under one of our keys, else None."""
    try:
        doc = json.loads(text)
        mac = doc.pop("mac")
        key = keys[doc["key_id"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    if not isinstance(mac, str) or not hmac.compare_digest(mac, key.mac(canonical)):
        return None
    return doc  # type: ignore[no-any-return]


async def _checkpoint(heads: dict[str, Head]) -> None:
    covered = {**_Writer.covered, **heads}
    if covered == _Writer.covered:
        return
    _Writer.covered = covered
    await _put(f"checkpoint-{_Writer.id}", _checkpoint_body(_Writer.id, covered))


def _checkpoint_body(writer: str, heads: dict[str, Head]) -> dict[str, Any]:
    return {
        "kind": "checkpoint",
        "writer": writer,
        "chains": {chain: [position, hash_] for chain, (position, hash_) in heads.items()},
        "at": datetime.now(UTC).isoformat(),
    }


async def _put(name: str, body: dict[str, Any]) -> None:
    settings = _config()
    text = _sealed(settings.current, body)
    url = settings.settings.redis_url
    if url:
        await _with_redis(settings, lambda redis: redis.set(REDIS_PREFIX + name, text))
        heads = " ".join(f"{chain}@{pos}:{head}" for chain, (pos, head) in body["chains"].items())
        logger.info("audit %s %s", name, heads)
    else:
        # One appended line costs less than a hop to a thread (measured).
        _write_file(settings.settings.audit_checkpoint_dir, name, text)


def _write_file(directory: Path, name: str, text: str) -> None:
    # Appending a line is cheap; replacing a file costs a flush on ext4 (measured 1.4 ms).
    path = directory / f"{name}.jsonl"
    try:
        handle = path.open("a")
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    with handle:
        handle.write(text + "\n")
        size = handle.tell()
    if size > MAX_CHECKPOINT_FILE_BYTES:
        partial = directory / f".{name}.partial"
        partial.write_text(text + "\n")
        os.replace(partial, path)


async def _with_redis(settings: _Config, action: Callable[[Redis], Awaitable[Any]]) -> Any:
    if settings.store is not None:
        return await action(settings.store)
    async with Redis.from_url(str(settings.settings.redis_url), decode_responses=True) as redis:
        return await action(redis)


async def _stored() -> list[str]:
    """Every checkpoint and anchor, as stored."""
    settings = _config()
    if settings.settings.redis_url:

        async def read_all(redis: Redis) -> list[str]:
            names = [str(name) async for name in redis.scan_iter(match=REDIS_PREFIX + "*")]
            values = await redis.mget(names) if names else []
            return [
                value if isinstance(value, str) else value.decode()
                for value in values
                if value is not None
            ]

        result: list[str] = await _with_redis(settings, read_all)
        return result
    return await asyncio.to_thread(_read_files, settings.settings.audit_checkpoint_dir)


def _read_files(directory: Path) -> list[str]:
    """The newest complete line of each file (a crash may have cut the last one short)."""
    if not directory.is_dir():
        return []
    newest = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in reversed(path.read_text().splitlines()):
            try:
                json.loads(line)
            except ValueError:
                continue
            newest.append(line)
            break
    return newest


async def _anchor_legacy() -> None:
    """Checkpoint the head of the chain from before migration 0007, once."""
    legacy = AuditEvent.filter(chain=LEGACY_CHAIN)
    count = await legacy.count()
    if not count:
        return
    keys = _config().keys
    for text in await _stored():
        doc = _opened(keys, text)
        if doc is not None and LEGACY_CHAIN in doc.get("chains", {}):
            return
    last = await legacy.order_by("-seq").only("seq", "hash").first()
    if last is None:
        return
    await _put(
        f"checkpoint-{LEGACY_CHAIN}",
        _checkpoint_body(LEGACY_CHAIN, {LEGACY_CHAIN: (count, last.hash)}),
    )


async def prune_before(
    cutoff: datetime, delete: Callable[[list[str]], Awaitable[None]]
) -> dict[str, int]:
    """Anchor each keyed chain at its last record before ``cutoff`` and delete up to there.

    ``delete`` runs the DELETE statements (the append-only triggers refuse them to the
    application). Returns the pruned position per chain.
    """
    pruned: dict[str, int] = {}
    chains = (
        await AuditEvent.filter(occurred_at__lt=cutoff)
        .exclude(chain=LEGACY_CHAIN)
        .distinct()
        .values_list("chain", flat=True)
    )
    for chain in sorted({str(name) for name in chains}):
        newest, _ = await _read_head(chain)
        # The newest record stays: appends go on from it, and it bears the checkpoint.
        last = (
            await AuditEvent.filter(chain=chain, occurred_at__lt=cutoff, position__lt=newest)
            .order_by("-position")
            .only("position", "hash")
            .first()
        )
        if last is None:
            continue
        await _put(
            f"anchor-{chain}",
            {
                "kind": "anchor",
                "chains": {chain: [last.position, last.hash]},
                "at": datetime.now(UTC).isoformat(),
            },
        )
        pruned[chain] = last.position
    if any(not chain.replace(".", "").isalnum() for chain in pruned):
        raise ValueError("an audit chain name is not one of ours")
    if pruned:
        await delete(
            [
                # Chain names are our hex writer ids (checked above), positions integers.
                f"DELETE FROM audit_events WHERE chain = '{chain}' AND position <= {position}"  # noqa: S608
                for chain, position in pruned.items()
            ]
        )
    return pruned


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What ``audit-verify`` found; ``first_broken_seq`` is 0 when no record can be named."""

    checked: int
    first_broken_seq: int | None
    reason: str | None

    @property
    def intact(self) -> bool:
        return self.reason is None


@dataclass(slots=True)
class _Walk:
    position: int
    hash: str
    seq: int = 0
    anchored: Head | None = None


async def verify_chain(batch_size: int = 1000) -> ChainReport:
    """Walk every chain and its checkpoints; name the first altered, removed or moved record."""
    keys = _config().keys
    checkpoints: dict[str, Head] = {}
    anchors: dict[str, Head] = {}
    for text in await _stored():
        doc = _opened(keys, text)
        if doc is None:
            return ChainReport(0, 0, "a checkpoint does not verify under our key (forged?)")
        target = anchors if doc.get("kind") == "anchor" else checkpoints
        for chain, (position, hash_) in doc["chains"].items():
            if position >= target.get(chain, (0, ""))[0]:
                target[chain] = (position, hash_)
    walks: dict[str, _Walk] = {}
    checked = 0
    last_seq = 0
    while True:
        batch = await AuditEvent.filter(seq__gt=last_seq).order_by("seq").limit(batch_size)
        if not batch:
            break
        for event in batch:
            anchor = anchors.get(event.chain)
            if anchor is not None and 0 < event.position <= anchor[0]:
                continue  # pruned already as far as the anchor says; deleted next
            walk = walks.get(event.chain)
            if walk is None:
                start = anchors.get(event.chain)
                if start is None:
                    start = (0, GENESIS if event.chain == LEGACY_CHAIN else genesis(event.chain))
                walk = walks[event.chain] = _Walk(*start)
            problem = _link_problem(keys, walk, event)
            if problem is None and event.chain in checkpoints:
                problem = _checkpoint_problem(checkpoints[event.chain], walk, event)
            if problem is not None:
                return ChainReport(checked, event.seq, problem)
            walk.position += 1
            walk.hash = event.hash
            walk.seq = event.seq
            checked += 1
        last_seq = batch[-1].seq
    return _ends(checked, walks, checkpoints)


def _link_problem(keys: dict[str, AuditKey], walk: _Walk, event: AuditEvent) -> str | None:
    legacy = event.chain == LEGACY_CHAIN
    position = 0 if legacy else walk.position + 1
    if event.position != position or event.prev_hash != walk.hash:
        return "does not follow the previous record of its chain (one was removed or moved)"
    if legacy:
        if event.key_id != LEGACY_KEY_ID or link_hash(walk.hash, event) != event.hash:
            return "content does not match its hash"
        return None
    key = keys.get(event.key_id)
    if key is None:
        return "keyed under a key that is neither OCIS_MASTER_KEY nor a previous one"
    if not hmac.compare_digest(keyed_link(key, event), event.hash):
        return "does not verify under our key: altered, or its hash recomputed without the key"
    return None


def _checkpoint_problem(checkpoint_: Head, walk: _Walk, event: AuditEvent) -> str | None:
    position, hash_ = checkpoint_
    if walk.position + 1 == position and event.hash != hash_:
        return "differs from the checkpoint of its position: the trail was rewritten"
    if walk.position + 1 > position and event.chain == LEGACY_CHAIN:
        return "appended to the legacy chain after it was anchored"
    return None


def _ends(checked: int, walks: dict[str, _Walk], checkpoints: dict[str, Head]) -> ChainReport:
    if not checked and checkpoints:
        total = sum(position for position, _ in checkpoints.values())
        return ChainReport(
            0, 0, f"wiped: no records, but checkpoints name {total} in {len(checkpoints)} chains"
        )
    for chain, (position, _) in sorted(checkpoints.items()):
        walk = walks.get(chain)
        reached = walk.position if walk else 0
        if reached < position:
            return ChainReport(
                checked,
                walk.seq if walk else 0,
                f"truncated: chain {chain} ends at position {reached} but its checkpoint names"
                f" {position}; records after it are missing",
            )
    if LEGACY_CHAIN in walks and LEGACY_CHAIN not in checkpoints and len(walks) > 1:
        return ChainReport(checked, 0, "the legacy chain has no checkpoint (never anchored)")
    return ChainReport(checked, None, None)
