"""Verifying the audit trail against its checkpoints, and pruning it behind keyed anchors.

Verification. ``verify_chain`` walks every chain in seq order and names the first record that
was altered or had its hash recomputed (its HMAC does not verify under our key), or was removed
or moved (its position or ``prev_hash`` does not follow); then any chain that ends before its
checkpoint (truncation) or a trail that is empty while checkpoints remain (wiping). The legacy
chain is verified as before migration 0007: SHA-256 links in seq order.

Pruning. ``prune_before`` first stores, per chain, a keyed anchor (``anchor-<chain>``, beside
the checkpoints) naming the last pruned record's position and hash, then deletes the records
up to it; the verifier starts that chain from its anchor, so removing more than was pruned
still shows. The deletion runs through a caller-given runner: the append-only triggers refuse
it to the application, and the retention run decides how it is allowed.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from models import AuditEvent
from privacy.audit_checkpoints import opened, put, stored
from privacy.audit_links import (
    GENESIS,
    LEGACY_CHAIN,
    LEGACY_KEY_ID,
    AuditKey,
    genesis,
    keyed_link,
    link_hash,
)
from privacy.audit_state import Head, current_config, read_head


async def prune_points(cutoff: datetime, stop: Mapping[str, int] | None = None) -> dict[str, Head]:
    """Per keyed chain, its last record before ``cutoff`` that may be pruned (position, hash).

    A chain's newest record always stays: appends go on from it, and it bears the checkpoint.
    ``stop``: per chain, a position from which nothing is pruned (a record kept for a hold).
    """
    points: dict[str, Head] = {}
    chains = (
        await AuditEvent.filter(occurred_at__lt=cutoff)
        .exclude(chain=LEGACY_CHAIN)
        .distinct()
        .values_list("chain", flat=True)
    )
    for chain in sorted({str(name) for name in chains}):
        newest, _ = await read_head(chain)
        below = min(newest, (stop or {}).get(chain, newest))
        last = (
            await AuditEvent.filter(chain=chain, occurred_at__lt=cutoff, position__lt=below)
            .order_by("-position")
            .only("position", "hash")
            .first()
        )
        if last is not None:
            points[chain] = (last.position, last.hash)
    if any(not chain.replace(".", "").isalnum() for chain in points):
        raise ValueError("an audit chain name is not one of ours")
    return points


async def prune_before(
    cutoff: datetime,
    delete: Callable[[list[str]], Awaitable[None]],
    *,
    stop: Mapping[str, int] | None = None,
    batch_size: int | None = None,
) -> dict[str, int]:
    """Anchor each keyed chain at its last record before ``cutoff`` and delete up to there.

    ``delete`` runs the DELETE statements (the append-only triggers refuse them to the
    application); with ``batch_size``, once per that many positions of a chain, oldest first
    (each anchored already, so a prune cut short still verifies). ``stop``: as for
    ``prune_points``. Returns the pruned position per chain.
    """
    points = await prune_points(cutoff, stop)
    for chain, (position, hash_) in points.items():
        await put(
            f"anchor-{chain}",
            {
                "kind": "anchor",
                "chains": {chain: [position, hash_]},
                "at": datetime.now(UTC).isoformat(),
            },
        )
    if not points:
        return {}
    # Chain names are our hex writer ids (checked above), positions integers.
    delete_sql = "DELETE FROM audit_events WHERE chain = '{}' AND position > {} AND position <= {}"
    if batch_size is None:
        await delete(
            [delete_sql.format(chain, 0, position) for chain, (position, _) in points.items()]
        )
    else:
        for chain, (position, _) in points.items():
            oldest = (
                await AuditEvent.filter(chain=chain)
                .order_by("position")
                .first()
                .values_list("position", flat=True)
            )
            low = int(oldest) - 1 if isinstance(oldest, int) else 0
            while low < position:
                high = min(low + batch_size, position)
                await delete([delete_sql.format(chain, low, high)])
                low = high
    return {chain: position for chain, (position, _) in points.items()}


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
    keys = current_config().keys
    checkpoints: dict[str, Head] = {}
    anchors: dict[str, Head] = {}
    for text in await stored():
        doc = opened(keys, text)
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
