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
from dataclasses import dataclass
from datetime import UTC

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


def content(event: AuditEvent) -> str:
    """The canonical text of what a record says (its chain place aside)."""
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
    return hashlib.sha256(f"{prev_hash}|{content(event)}".encode()).hexdigest()


def keyed_link(key: AuditKey, event: AuditEvent) -> str:
    return key.mac(f"{event.chain}|{event.position}|{event.prev_hash}|{content(event)}")


def genesis(chain: str) -> str:
    return hashlib.sha256(f"ocis/audit-genesis|{chain}".encode()).hexdigest()
