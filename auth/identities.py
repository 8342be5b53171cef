"""Pieces of identity mapping that need no audit: pending steps, claims records, principals.

An email never decides which account an identity reaches. A provider's word on an email
that belongs to an existing account only *suggests* linking; the link is made once the
person proves control of that account (a signed-in session when the flow started, or a
password sign-in that presents the pending-link token).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, TypedDict, overload

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

from auth.oidc import VerifiedIdentity
from auth.principal import Principal, parse_roles
from auth.redirects import Intent
from models import User

PENDING_TTL = 600
PENDING_PREFIX = "ocis:oidc:pending:"

Step = Literal["signed_in", "linked", "needs_birthdate", "needs_password_to_link"]


class IdentityRecord(TypedDict):
    """A verified identity as an account is created or linked from it."""

    provider: str
    issuer: str
    subject: str
    tenant_id: str
    email: str | None
    email_trusted: bool
    name: str | None


class _PendingStep(IdentityRecord):
    intent: Intent  # where the sign-in goes on once the step is done


class PendingSignUp(_PendingStep):
    """A first sign-in waiting for the date of birth its provider did not give."""

    kind: Literal["signup"]


class PendingLink(_PendingStep):
    """An identity waiting to be linked once its holder proves control of the account."""

    kind: Literal["link"]
    user_id: str  # the account whose holder must sign in


class MappingRefused(Exception):
    """The identity cannot be mapped as asked (e.g. it already belongs to someone else)."""


class TooYoung(MappingRefused):
    """Under 16: refused, and nothing about the person is kept."""


@dataclass(frozen=True, slots=True)
class Mapped:
    step: Step
    user: User | None = None
    pending: str | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def identity_record(identity: VerifiedIdentity) -> IdentityRecord:
    return {
        "provider": identity.provider,
        "issuer": identity.issuer,
        "subject": identity.subject,
        "tenant_id": identity.tenant_id,
        "email": identity.email,
        "email_trusted": identity.email_trusted,
        "name": identity.name,
    }


def new_binder() -> str:
    """A secret for the browser that finished the provider flow (its pending-step cookie)."""
    return secrets.token_urlsafe(32)


def _pending_key(token: str, binder: str) -> AESGCM:
    # Only the token and the browser's binder together open the record: the store keeps
    # neither, so its copy (names, emails, subjects) is unreadable on its own.
    material = f"ocis/pending\x00{token}\x00{binder}".encode()
    return AESGCM(hashlib.sha256(material).digest())


async def remember(store: Redis, record: PendingSignUp | PendingLink, binder: str) -> str:
    """Keep a pending sign-up or link for 10 minutes, usable only with `binder` beside it.

    The token travels in a URL fragment to the frontend; the binder stays in an HttpOnly
    cookie of the browser that finished the provider flow. A token sent to someone else
    (to make them link an attacker's identity, or sign in to an attacker's account) is
    worthless without that browser's cookie. The record is sealed under both.
    """
    token = secrets.token_urlsafe(32)
    nonce = secrets.token_bytes(12)
    plaintext = json.dumps(record).encode()
    sealed = nonce + _pending_key(token, binder).encrypt(nonce, plaintext, record["kind"].encode())
    encoded = base64.urlsafe_b64encode(sealed).decode()
    await store.set(PENDING_PREFIX + _digest(token), encoded, ex=PENDING_TTL)
    return token


@overload
async def take_pending(
    store: Redis, token: str | None, kind: Literal["signup"], binder: str | None
) -> PendingSignUp | None: ...


@overload
async def take_pending(
    store: Redis, token: str | None, kind: Literal["link"], binder: str | None
) -> PendingLink | None: ...


async def take_pending(
    store: Redis, token: str | None, kind: Literal["signup", "link"], binder: str | None
) -> PendingSignUp | PendingLink | None:
    """A pending sign-up or link, usable once, and only from the browser it was bound to."""
    if not token or len(token) > 128 or not binder or len(binder) > 128:
        return None
    raw = await store.getdel(PENDING_PREFIX + _digest(token))
    if raw is None:
        return None
    try:
        sealed = base64.urlsafe_b64decode(raw)
        plaintext = _pending_key(token, binder).decrypt(sealed[:12], sealed[12:], kind.encode())
    except (InvalidTag, ValueError):
        return None  # another browser's binder, or a step of another kind
    # Sealed with its kind as associated data: only a record of that kind opens here.
    record: PendingSignUp | PendingLink = json.loads(plaintext)
    return record


def parse_birthdate(value: str | None) -> date | None:
    """A provider's birthdate claim, or None when it is absent or no real date of birth
    (then the person is asked for one)."""
    if not value or len(value) != 10:
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        return None
    today = datetime.now(UTC).date()
    return parsed if 1900 <= parsed.year and parsed <= today else None


def principal_of(user: User, request_id: str | None) -> Principal:
    return Principal.for_user(
        user.id,
        parse_roles(user.roles),
        user.team_id,
        request_id=request_id,
    )
