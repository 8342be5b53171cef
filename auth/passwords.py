"""argon2id password hashing with a constant-time answer for unknown accounts, and the rules
a new password must meet (after NIST SP 800-63B: a length, a blocklist, nothing else).

Passwords are NFKC-normalised before they are measured, checked and hashed, so the same
password typed on two keyboards (a full-width digit, a composed or decomposed accent) is the
same password. Hashes made before normalisation still verify: a password that normalisation
changes is tried as typed too.
"""

from __future__ import annotations

import asyncio
import gzip
import unicodedata
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("ocis-dummy-password-for-unknown-accounts")

# NIST asks for at least 8 and allows at least 64; 10 leaves room for passphrases while a
# guesser's work grows with every character. Counted in code points, after normalisation.
MIN_LENGTH = 10
MAX_LENGTH = 256
# Common and breached passwords, shipped with the code (common-passwords.NOTICE says whence).
BLOCKLIST_PATH = Path(__file__).with_name("common-passwords.txt.gz")


def normalised(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


@cache
def blocklist() -> frozenset[str]:
    with gzip.open(BLOCKLIST_PATH, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, normalised(password))


def _verify(target: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(target, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check a password; with no account, hash a dummy so both answers take as long."""
    target = stored_hash or _DUMMY_HASH
    candidates = dict.fromkeys([normalised(password), password])
    for candidate in candidates:
        if await asyncio.to_thread(_verify, target, candidate):
            return stored_hash is not None
    return False


def password_problem(password: str, *, personal: tuple[str | None, ...] = ()) -> str | None:
    """Why a new password is refused (one sentence naming the rule), or None.

    `personal` holds what the password must not be: the account's email, its username.
    """
    candidate = normalised(password)
    if len(candidate) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(candidate) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    folded = candidate.casefold()
    if folded in blocklist():
        return "This password is too common: it is on a list of passwords that attackers try first."
    if len(set(folded)) == 1:
        return "Use more than one repeated character."
    for value in personal:
        if not value:
            continue
        words = {normalised(value).strip().casefold()}
        if "@" in value:
            words.add(normalised(value).strip().casefold().rsplit("@", 1)[0])
        if folded.strip() in words:
            return "Do not use your email address or username as your password."
    return None
