"""AES-256-GCM envelope encryption of personal data, and the HMAC blind index for lookups.

Every subject's values are sealed under a data key (DEK) of its own; data keys are stored
wrapped (AES-256-GCM) under a key-encryption key derived from a master key. Ciphertexts read
``v2:<data key id>:<base64url(nonce | ciphertext | tag)>`` and are bound to their table, column
and row by associated data. The blind-index key is random-looking, stored wrapped next to the
data keys, and independent of which master key is current.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import unicodedata
from dataclasses import dataclass, replace
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "v2"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID_CHARS = 12
# Where the data key id starts in a ciphertext, counted from 1 as SQL's substr() does.
KEY_ID_SQL_START = len(f"{FORMAT}:") + 1


class DecryptionError(Exception):
    """A ciphertext or wrapped key failed authentication: wrong key, row, column or tampering."""


class UnknownMasterKey(DecryptionError):
    """A data key is wrapped under a master key this process was not given."""


class KeyPurpose(StrEnum):
    DATA = "data"
    BLIND_INDEX = "blind_index"


def derive(secret: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()
    ).derive(secret)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key_id() -> str:
    """A short random data-key id (12 URL-safe characters, never a colon)."""
    return secrets.token_urlsafe(9)


def parse(ciphertext: str) -> tuple[str, bytes]:
    """(data key id, nonce | sealed bytes) of a ciphertext; DecryptionError when malformed."""
    try:
        version, key_id, payload = ciphertext.split(":", 2)
        raw = _unb64(payload)
    except ValueError as exc:
        raise DecryptionError("malformed ciphertext") from exc
    if version != FORMAT:
        raise DecryptionError("unknown ciphertext format")
    if not key_id or len(raw) <= NONCE_BYTES:
        raise DecryptionError("malformed ciphertext")
    return key_id, raw


def key_id_of(ciphertext: str) -> str:
    return parse(ciphertext)[0]


@dataclass(frozen=True, slots=True)
class DataCipher:
    """One unwrapped data key: seals and opens values bound to their table, column and row."""

    key_id: str
    aead: AESGCM

    @classmethod
    def generate(cls, key_id: str | None = None) -> tuple[DataCipher, bytes]:
        material = AESGCM.generate_key(bit_length=256)
        return cls(key_id or new_key_id(), AESGCM(material)), material

    def _aad(self, associated_data: str) -> bytes:
        return f"{FORMAT}|{self.key_id}|{associated_data}".encode()

    def seal(self, plaintext: str, associated_data: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.aead.encrypt(nonce, plaintext.encode(), self._aad(associated_data))
        return f"{FORMAT}:{self.key_id}:{_b64(nonce + sealed)}"

    def open(self, ciphertext: str, associated_data: str) -> str:
        key_id, raw = parse(ciphertext)
        if key_id != self.key_id:
            raise DecryptionError("ciphertext names another data key")
        return self.open_parsed(raw, associated_data)

    def open_parsed(self, raw: bytes, associated_data: str) -> str:
        """Open what ``parse`` returned for a ciphertext naming this key (parsed once)."""
        try:
            plaintext = self.aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(associated_data)
            )
        except InvalidTag as exc:
            raise DecryptionError("ciphertext does not belong here or was altered") from exc
        return plaintext.decode()


def wrapping_aad(purpose: KeyPurpose, key_id: str, subject_id: object | None) -> bytes:
    """What binds a wrapped key to its row: purpose, key id and subject."""
    return f"ocis/key|{purpose.value}|{key_id}|{subject_id or ''}".encode()


@dataclass(frozen=True, slots=True)
class MasterKey:
    """A key-encryption key derived from one master key, known by a fingerprint (kek id)."""

    kek_id: str
    kek: AESGCM
    initial_blind_index_key: bytes

    @classmethod
    def from_bytes(cls, master_key: bytes) -> MasterKey:
        fingerprint = hmac.new(master_key, b"ocis/kek-id", hashlib.sha256).hexdigest()[:16]
        return cls(
            kek_id=fingerprint,
            kek=AESGCM(derive(master_key, "ocis/key-encryption-key")),
            initial_blind_index_key=derive(master_key, "ocis/blind-index"),
        )

    def wrap(self, material: bytes, aad: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        return _b64(nonce + self.kek.encrypt(nonce, material, aad))

    def unwrap(self, wrapped: str, aad: bytes) -> bytes:
        try:
            raw = _unb64(wrapped)
            return self.kek.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except (ValueError, InvalidTag) as exc:
            raise DecryptionError("wrapped key does not belong to this row or was altered") from exc


@dataclass(frozen=True, slots=True)
class WrappedKey:
    key_id: str
    wrapped_key: str
    kek_id: str


@dataclass(frozen=True, slots=True)
class Keyring:
    """The master keys this process holds (current first) and the blind-index key."""

    current: MasterKey
    previous: tuple[MasterKey, ...]
    blind_index_key: bytes

    @classmethod
    def from_master_key(cls, master_key: bytes, previous: tuple[bytes, ...] = ()) -> Keyring:
        """A keyring whose blind-index key is the initial one until the stored one is loaded."""
        current = MasterKey.from_bytes(master_key)
        older = tuple(MasterKey.from_bytes(key) for key in previous if key != master_key)
        return cls(current, older, current.initial_blind_index_key)

    def with_blind_index_key(self, key: bytes) -> Keyring:
        return replace(self, blind_index_key=key)

    def master(self, kek_id: str | None) -> MasterKey:
        for candidate in (self.current, *self.previous):
            if candidate.kek_id == kek_id:
                return candidate
        raise UnknownMasterKey(
            f"a key is wrapped under master key {kek_id}, which is neither OCIS_MASTER_KEY"
            " nor one of OCIS_PREVIOUS_MASTER_KEYS"
        )

    def wrap(
        self, purpose: KeyPurpose, key_id: str, subject_id: object | None, material: bytes
    ) -> WrappedKey:
        aad = wrapping_aad(purpose, key_id, subject_id)
        return WrappedKey(key_id, self.current.wrap(material, aad), self.current.kek_id)

    def unwrap(
        self,
        purpose: KeyPurpose,
        key_id: str,
        subject_id: object | None,
        wrapped_key: str,
        kek_id: str | None,
    ) -> bytes:
        aad = wrapping_aad(purpose, key_id, subject_id)
        return self.master(kek_id).unwrap(wrapped_key, aad)

    def new_data_key(self, subject_id: object) -> tuple[DataCipher, WrappedKey]:
        """A fresh data key for a subject, and its form wrapped under the current master key."""
        key, material = DataCipher.generate()
        return key, self.wrap(KeyPurpose.DATA, key.key_id, subject_id, material)

    def open_data_key(
        self, key_id: str, subject_id: object, wrapped_key: str, kek_id: str | None
    ) -> DataCipher:
        material = self.unwrap(KeyPurpose.DATA, key_id, subject_id, wrapped_key, kek_id)
        return DataCipher(key_id, AESGCM(material))

    def blind_index(self, value: str) -> str:
        """Keyed hash of a normalised lookup value (case and surrounding spaces ignored)."""
        normalised = unicodedata.normalize("NFKC", value).strip().casefold()
        # A lone surrogate (JSON can carry one) hashes too: rate limits key on what was typed,
        # before the validator refuses it, and must not fail with an internal error.
        encoded = normalised.encode("utf-8", "surrogatepass")
        return hmac.new(self.blind_index_key, encoded, hashlib.sha256).hexdigest()


_keyring: Keyring | None = None


def configure(master_key: bytes, previous: tuple[bytes, ...] = ()) -> Keyring:
    """Install the process keyring (current and previous master keys)."""
    global _keyring
    _keyring = Keyring.from_master_key(master_key, previous)
    return _keyring


def install_blind_index_key(key: bytes) -> Keyring:
    """Use the stored blind-index key from now on (see ``models.keys.load_blind_index_key``)."""
    global _keyring
    _keyring = keyring().with_blind_index_key(key)
    return _keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise RuntimeError("models.crypto.configure() has not been called")
    return _keyring


def blind_index(value: str) -> str:
    return keyring().blind_index(value)
