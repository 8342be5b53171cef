"""The links of the audit trail's chains: keys, genesis and the hash of one record.

Keys. A link is an HMAC-SHA256 under a key derived from the master key (HKDF, label
``ocis/audit-chain``), which the database never holds; ``key_id`` names the key by its
fingerprint, so records keyed before a rotation verify under OCIS_PREVIOUS_MASTER_KEYS.

Each chain starts from a genesis of its own (``genesis(chain)``). The chain ``legacy``, rows
from before migration 0007, has SHA-256 links (``link_hash``) from the all-zero ``GENESIS``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from models import AuditEvent, crypto

GENESIS = "0" * 64
LEGACY_CHAIN = "legacy"
LEGACY_KEY_ID = "sha256"


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


def canonical(  # noqa: PLR0913 - the record's fields, in their canonical order
    occurred_at: datetime,
    actor_id: UUID | None,
    actor_roles: Sequence[str],
    subject_id: UUID | None,
    action: str,
    entity: str,
    entity_id: str | None,
    field_names: Sequence[str],
    purpose: str | None,
    request_id: str | None,
) -> str:
    """The canonical text of what a record says, from its values (appends hash rows, not
    model instances; ``content`` reads the same from a loaded record)."""
    return json.dumps(
        [
            occurred_at.astimezone(UTC).isoformat(),
            str(actor_id) if actor_id else None,
            sorted(actor_roles),
            str(subject_id) if subject_id else None,
            action,
            entity,
            entity_id,
            sorted(field_names),
            purpose,
            request_id,
        ],
        separators=(",", ":"),
    )


def content(event: AuditEvent) -> str:
    """The canonical text of what a record says (its chain place aside)."""
    return canonical(
        event.occurred_at,
        event.actor_id,
        event.actor_roles,
        event.subject_id,
        event.action,
        event.entity,
        event.entity_id,
        event.field_names,
        event.purpose,
        event.request_id,
    )


def link_hash(prev_hash: str, event: AuditEvent) -> str:
    """The unkeyed link of the legacy chain (before migration 0007)."""
    return hashlib.sha256(f"{prev_hash}|{content(event)}".encode()).hexdigest()


def chain_link(key: AuditKey, chain: str, position: int, prev_hash: str, text: str) -> str:
    """The keyed link of a record at ``position`` of ``chain`` whose canonical text is ``text``."""
    return key.mac(f"{chain}|{position}|{prev_hash}|{text}")


def keyed_link(key: AuditKey, event: AuditEvent) -> str:
    return chain_link(key, event.chain, event.position, event.prev_hash, content(event))


def genesis(chain: str) -> str:
    return hashlib.sha256(f"ocis/audit-genesis|{chain}".encode()).hexdigest()
