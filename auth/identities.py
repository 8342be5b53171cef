"""Pieces of identity mapping that need no audit: pending steps, claims records, principals.

An email never decides which account an identity reaches. A provider's word on an email
that belongs to an existing account only *suggests* linking; the link is made once the
person proves control of that account (a signed-in session when the flow started, or a
password sign-in that presents the pending-link token).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from redis.asyncio import Redis

from auth.oidc import VerifiedIdentity
from auth.principal import Principal, parse_roles
from models import User

PENDING_TTL = 600
PENDING_PREFIX = "ocis:oidc:pending:"
MINIMUM_AGE = 16

Step = Literal["signed_in", "linked", "needs_birthdate", "needs_password_to_link"]


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


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def identity_record(identity: VerifiedIdentity) -> dict[str, Any]:
    return {
        "provider": identity.provider,
        "issuer": identity.issuer,
        "subject": identity.subject,
        "tenant_id": identity.tenant_id,
        "email": identity.email,
        "email_trusted": identity.email_trusted,
        "name": identity.name,
    }


async def remember(store: Redis, kind: str, record: dict[str, Any]) -> str:
    token = secrets.token_urlsafe(32)
    await store.set(
        PENDING_PREFIX + _digest(token), json.dumps({"kind": kind, **record}), ex=PENDING_TTL
    )
    return token


async def take_pending(store: Redis, token: str | None, kind: str) -> dict[str, Any] | None:
    """A pending sign-up or link, usable once."""
    if not token or len(token) > 128:
        return None
    raw = await store.getdel(PENDING_PREFIX + _digest(token))
    if raw is None:
        return None
    record: dict[str, Any] = json.loads(raw)
    return record if record.get("kind") == kind else None


def parse_birthdate(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def principal_of(user: User, request_id: str | None) -> Principal:
    return Principal.for_user(
        user.id,
        parse_roles(user.roles),
        user.team_id,  # type: ignore[attr-defined]
        request_id=request_id,
    )
