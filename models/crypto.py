"""AES-256-GCM sealing of personal-data values and the HMAC blind index for lookups."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "v1"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A ciphertext failed authentication: wrong key, row, column or tampering."""


def _derive(master_key: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        master_key
    )


@dataclass(frozen=True, slots=True)
class Keyring:
    """Data keys by key id, the id new values are sealed under, and the blind-index key."""

    data_keys: dict[str, AESGCM]
    current_key_id: str
    blind_index_key: bytes

    @classmethod
    def from_master_key(cls, master_key: bytes) -> Keyring:
        current = "k1"
        return cls(
            data_keys={current: AESGCM(_derive(master_key, f"ocis/data-key/{current}"))},
            current_key_id=current,
            blind_index_key=_derive(master_key, "ocis/blind-index"),
        )

    def seal(self, plaintext: str, associated_data: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.data_keys[self.current_key_id].encrypt(
            nonce, plaintext.encode(), self._aad(self.current_key_id, associated_data)
        )
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{FORMAT}:{self.current_key_id}:{payload}"

    def open(self, ciphertext: str, associated_data: str) -> str:
        try:
            version, key_id, payload = ciphertext.split(":", 2)
            key = self.data_keys[key_id]
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        except (ValueError, KeyError) as exc:
            raise DecryptionError("malformed ciphertext or unknown key id") from exc
        if version != FORMAT:
            raise DecryptionError("unknown ciphertext format")
        try:
            plaintext = key.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(key_id, associated_data)
            )
        except InvalidTag as exc:
            raise DecryptionError("ciphertext does not belong here or was altered") from exc
        return plaintext.decode()

    @staticmethod
    def _aad(key_id: str, associated_data: str) -> bytes:
        return f"{FORMAT}|{key_id}|{associated_data}".encode()

    def blind_index(self, value: str) -> str:
        """Keyed hash of a normalised lookup value (case and surrounding spaces ignored)."""
        normalised = unicodedata.normalize("NFKC", value).strip().casefold()
        return hmac.new(self.blind_index_key, normalised.encode(), hashlib.sha256).hexdigest()


_keyring: Keyring | None = None


def configure(master_key: bytes) -> Keyring:
    """Install the process keyring; models seal and open values with it."""
    global _keyring
    _keyring = Keyring.from_master_key(master_key)
    return _keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise RuntimeError("models.crypto.configure() has not been called")
    return _keyring


def blind_index(value: str) -> str:
    return keyring().blind_index(value)
