"""Device cookies: a browser that signed in to an account before is told apart from others.

After OWASP's "Slow Down Online Guessing Attacks with Device Cookies". A successful password
sign-in gives the browser a cookie naming the account, an expiry and a random nonce, MACed
(HMAC-SHA256) under a key derived from the master key, so every process checks it alike and
nothing is stored until it is used. A request presenting a valid cookie for the account it
signs in to is judged by that cookie's own failure allowance (`auth/rate_limit.py`); anyone
else, a forged, expired or other account's cookie included, shares the account's allowance for
untrusted clients. Guessers elsewhere thus cannot lock the owner's own browsers out.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

import settings as config
from models import crypto

VERSION = "d1"
LIFETIME_SECONDS = 180 * 24 * 3600
NONCE_BYTES = 16
MAX_CHARS = 256  # a genuine cookie is about 150; longer is not worth parsing


@dataclass(frozen=True, slots=True)
class Device:
    """A browser that signed in to `account_id`; `nonce` tells it apart from the owner's others."""

    account_id: UUID
    nonce: str

    @property
    def key(self) -> str:
        """What its failure counter counts (it holds no personal data beyond the account id)."""
        return f"{self.account_id.hex}:{self.nonce}"


@functools.lru_cache(maxsize=8)
def _mac_key(master_key: bytes) -> bytes:
    return crypto.derive(master_key, "ocis/device-cookie")


def _mac(master_key: bytes, payload: str) -> str:
    return hmac.new(_mac_key(master_key), payload.encode(), hashlib.sha256).hexdigest()


def issue(settings: config.Settings, account_id: UUID, *, now: float | None = None) -> str:
    """A new cookie value for a browser that just signed in to `account_id`."""
    expires = int(time.time() if now is None else now) + LIFETIME_SECONDS
    nonce = secrets.token_hex(NONCE_BYTES)
    payload = f"{VERSION}.{account_id.hex}.{expires}.{nonce}"
    return f"{payload}.{_mac(settings.master_key, payload)}"


def verify(
    settings: config.Settings, value: str | None, *, now: float | None = None
) -> Device | None:
    """The device a cookie value names, or None if it is absent, malformed, forged or expired.

    Cookies MACed under a previous master key stay valid until they expire.
    """
    if not value or len(value) > MAX_CHARS:
        return None
    payload, _, mac = value.rpartition(".")
    parts = payload.split(".")
    if len(parts) != 4 or parts[0] != VERSION:
        return None
    masters = (settings.master_key, *settings.previous_master_keys)
    if not any(hmac.compare_digest(mac, _mac(master, payload)) for master in masters):
        return None
    _, account_hex, expires, nonce = parts
    try:
        account_id = UUID(hex=account_hex)
        expired = int(expires) <= (time.time() if now is None else now)
    except ValueError:
        return None
    if expired:
        return None
    return Device(account_id, nonce)


def trusted_for(
    settings: config.Settings, value: str | None, account_id: UUID | None
) -> Device | None:
    """The device a cookie names if it is valid and for `account_id`; else None (untrusted)."""
    device = verify(settings, value)
    if device is None or account_id is None or device.account_id != account_id:
        return None
    return device
