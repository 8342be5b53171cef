"""Consent ids: how an anonymous visitor's consent decisions are told apart (P05).

A consent id is a random id MACed (HMAC-SHA256) under a key derived from the master key, so
every process checks it alike and nothing is stored to issue one. The web frontend keeps it
in a first-party cookie and sends it as the `visitorId` argument; it opens only that
visitor's own consent state, never an account. Ids MACed under a previous master key stay
valid. They do not expire: the ledger they name is a record that outlives any cookie.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from uuid import UUID, uuid4

from auth.card_data import contains_card_data
from models import crypto

VERSION = "c1"
MAX_CHARS = 128  # a genuine id is 100 characters
COOKIE = "ocis_consent"
COOKIE_MAX_AGE = 395 * 24 * 3600  # 13 months, after which consent is asked again


def cookie_name(*, secure: bool) -> str:
    """The cookie's name: `__Host-` over https, like the gateway's other cookies."""
    return f"__Host-{COOKIE}" if secure else COOKIE


@dataclass(frozen=True, slots=True)
class Visitor:
    """An anonymous visitor proven by a consent id; `id` is also its data subject."""

    id: UUID


# Whose consent ledger: an account's id, or an anonymous visitor.
Owner = UUID | Visitor


@functools.lru_cache(maxsize=8)
def _mac_key(master_key: bytes) -> bytes:
    return crypto.derive(master_key, "ocis/visitor-consent-id")


def _mac(master_key: bytes, payload: str) -> str:
    return hmac.new(_mac_key(master_key), payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class VisitorIds:
    """Issues and checks consent ids under the current master key (and previous ones)."""

    master_keys: tuple[bytes, ...]

    def issue(self) -> tuple[Visitor, str]:
        """A new visitor and the consent id that proves it. Hex can hold a run of digits that
        passes the Luhn check, which the card-data guard (P03) would refuse when the visitor
        sends it back: such an id is never issued, another is drawn instead."""
        while True:
            visitor = Visitor(uuid4())
            payload = f"{VERSION}.{visitor.id.hex}"
            token = f"{payload}.{_mac(self.master_keys[0], payload)}"
            if not contains_card_data(token):
                return visitor, token

    def verify(self, value: str | None) -> Visitor | None:
        """The visitor a consent id proves, or None if it is absent, malformed or forged."""
        if not value or len(value) > MAX_CHARS:
            return None
        payload, _, mac = value.rpartition(".")
        version, _, visitor_hex = payload.partition(".")
        if version != VERSION or len(visitor_hex) != 32:
            return None
        if not any(hmac.compare_digest(mac, _mac(key, payload)) for key in self.master_keys):
            return None
        try:
            return Visitor(UUID(hex=visitor_hex))
        except ValueError:
            return None
