"""Audit checkpoints and anchors, kept outside the database: sealing, opening and storage.

Checkpoints. After every batch that committed, the writer stores one keyed checkpoint (its
chains' positions and head hashes, and the time) outside the database: with REDIS_URL to
``ocis:audit:checkpoint:<writer>`` in Redis plus one INFO log line, else as a line appended
to ``checkpoint-<writer>.jsonl`` under OCIS_AUDIT_CHECKPOINT_DIR (``var/audit-checkpoints``).
Each is sealed with an HMAC under the chain key (``key_id`` beside it); one that does not open
under our keys is a forgery. The pruning's anchors (``anchor-<chain>``) are stored the same way.

Legacy. The first start after migration 0007 anchors the head of the chain ``legacy`` with a
keyed checkpoint, after which truncating it shows too; it is never appended to again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from models import AuditEvent
from privacy.audit_links import LEGACY_CHAIN, AuditKey
from privacy.audit_state import Config, Head, Writer, current_config

REDIS_PREFIX = "ocis:audit:"
# A checkpoint file is rewritten with its newest line alone once it grows past this.
MAX_CHECKPOINT_FILE_BYTES = 1 << 20

logger = logging.getLogger("ocis.audit")


def sealed(key: AuditKey, body: dict[str, Any]) -> str:
    body = {**body, "key_id": key.key_id}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return json.dumps({**body, "mac": key.mac(canonical)}, sort_keys=True, separators=(",", ":"))


def opened(keys: dict[str, AuditKey], text: str) -> dict[str, Any] | None:
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


async def cover(heads: dict[str, Head]) -> None:
    """Store this writer's checkpoint with these heads, unless it already covers them."""
    covered = {**Writer.covered, **heads}
    if covered == Writer.covered:
        return
    previous, Writer.covered = Writer.covered, covered
    try:
        await put(f"checkpoint-{Writer.id}", checkpoint_body(Writer.id, covered))
    except BaseException:
        # Not stored (Redis down, say): the next checkpoint, or the one at shutdown, must be.
        if Writer.covered is covered:
            Writer.covered = previous
        raise


def checkpoint_body(writer: str, heads: dict[str, Head]) -> dict[str, Any]:
    return {
        "kind": "checkpoint",
        "writer": writer,
        "chains": {chain: [position, hash_] for chain, (position, hash_) in heads.items()},
        "at": datetime.now(UTC).isoformat(),
    }


async def put(name: str, body: dict[str, Any]) -> None:
    settings = current_config()
    text = sealed(settings.current, body)
    url = settings.settings.redis_url
    if url:
        await _with_redis(settings, lambda redis: redis.set(REDIS_PREFIX + name, text))
        heads = " ".join(f"{chain}@{pos}:{head}" for chain, (pos, head) in body["chains"].items())
        logger.info("audit %s %s", name, heads)
    else:
        # One appended line costs less than a hop to a thread (measured).
        write_file(settings.settings.audit_checkpoint_dir, name, text)


def write_file(directory: Path, name: str, text: str) -> None:
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


async def _with_redis(settings: Config, action: Callable[[Redis], Awaitable[Any]]) -> Any:
    if settings.store is not None:
        return await action(settings.store)
    async with Redis.from_url(str(settings.settings.redis_url), decode_responses=True) as redis:
        return await action(redis)


async def stored() -> list[str]:
    """Every checkpoint and anchor, as stored."""
    settings = current_config()
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


async def anchor_legacy() -> None:
    """Checkpoint the head of the chain from before migration 0007, once."""
    legacy = AuditEvent.filter(chain=LEGACY_CHAIN)
    count = await legacy.count()
    if not count:
        return
    keys = current_config().keys
    for text in await stored():
        doc = opened(keys, text)
        if doc is not None and LEGACY_CHAIN in doc.get("chains", {}):
            return
    last = await legacy.order_by("-seq").only("seq", "hash").first()
    if last is None:
        return
    await put(
        f"checkpoint-{LEGACY_CHAIN}",
        checkpoint_body(LEGACY_CHAIN, {LEGACY_CHAIN: (count, last.hash)}),
    )
