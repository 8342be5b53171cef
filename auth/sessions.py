"""Server-side web sessions in the shared store, keyed by a hash of the cookie value."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from auth.client_info import ClientInfo
from auth.principal import ANONYMOUS, Principal, parse_roles
from models import SIGN_IN_STATUSES, SignInSession, User

SESSION_PREFIX = "ocis:session:"
SESSION_COOKIE = "ocis_session"
# The method of an app sign-in's record starts with this; web sessions' never do.
APP_METHOD_PREFIX = "app:"


def session_cookie_name(*, secure: bool) -> str:
    """The session cookie's name: `__Host-` prefixed over https (web/cookies.py sets it)."""
    return f"__Host-{SESSION_COOKIE}" if secure else SESSION_COOKIE


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    sign_in: SignInSession


def _sign_in_record(
    digest: str, method: str, client: ClientInfo, ttl_seconds: int, **owner: Any
) -> SignInSession:
    """One sign-in and what was collected with it (P04); `owner` is user= or user_id=."""
    return SignInSession(
        **owner,
        token_hash=digest,
        method=method,
        ip_address=client.ip_address,
        browser=client.browser,
        browser_version=client.browser_version,
        os=client.os,
        device_type=client.device_type,
        time_zone=client.time_zone,
        referrer=client.referrer,
        location=client.location,
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
    )


async def start_session(
    store: Redis, user: User, client: ClientInfo, ttl_seconds: int, method: str = "password"
) -> NewSession:
    """Open a fresh session (a new id at every sign-in) and record its metadata."""
    token = secrets.token_urlsafe(32)
    digest = token_hash(token)
    sign_in = _sign_in_record(digest, method, client, ttl_seconds, user=user)
    await sign_in.save()
    record = json.dumps({"user_id": str(user.id), "sign_in_id": str(sign_in.id)})
    await store.set(SESSION_PREFIX + digest, record, ex=ttl_seconds)
    return NewSession(token=token, sign_in=sign_in)


async def resolve_session(store: Redis, token: str | None, request_id: str | None) -> Principal:
    """The principal behind a session cookie, or anonymous when it is unknown or revoked."""
    if not token or len(token) > 128:
        return ANONYMOUS
    raw = await store.get(SESSION_PREFIX + token_hash(token))
    if raw is None:
        return ANONYMOUS
    record = json.loads(raw)
    user = await User.get_or_none(id=record["user_id"], status__in=SIGN_IN_STATUSES).only(
        "id", "roles", "team_id"
    )
    if user is None:
        return ANONYMOUS
    return Principal.for_user(
        user.id,
        parse_roles(user.roles),
        user.team_id,
        session_id=UUID(record["sign_in_id"]),
        request_id=request_id,
    )


async def session_owner(store: Redis, token: str | None) -> UUID | None:
    """The account a live session cookie belongs to, or None."""
    if not token or len(token) > 128:
        return None
    raw = await store.get(SESSION_PREFIX + token_hash(token))
    return None if raw is None else UUID(json.loads(raw)["user_id"])


async def end_session(store: Redis, token: str | None) -> bool:
    """Revoke a session everywhere at once: the shared store forgets it."""
    if not token or len(token) > 128:
        return False
    digest = token_hash(token)
    removed = await store.delete(SESSION_PREFIX + digest)
    await SignInSession.filter(token_hash=digest, revoked_at__isnull=True).update(
        revoked_at=datetime.now(UTC)
    )
    return bool(removed)


async def end_all_sessions(store: Redis, user_id: UUID, *, keep: UUID | None = None) -> int:
    """Revoke every live web session of one person at once, in every process sharing the store
    (but the sign-in `keep`, when given: the caller's own).

    The sign-in records are the per-person index: each holds its session's key digest. Only
    the sessions ended here are marked ended (one started meanwhile is a new sign-in).
    """
    now = datetime.now(UTC)
    live = SignInSession.filter(user_id=user_id, revoked_at__isnull=True, expires_at__gt=now)
    if keep is not None:
        live = live.exclude(id=keep)
    digests = [
        str(digest)
        for digest in await live.exclude(method__startswith=APP_METHOD_PREFIX).values_list(
            "token_hash", flat=True
        )
    ]
    if digests:
        await store.delete(*(SESSION_PREFIX + digest for digest in digests))
        await SignInSession.filter(token_hash__in=digests).update(revoked_at=now)
    return len(digests)


def app_sign_in_hash(family_id: str) -> str:
    """The sign-in record key of an app sign-in (a refresh-token family), never a token."""
    return token_hash("family:" + family_id)


async def record_app_sign_in(
    user_id: UUID, family_id: str, client: ClientInfo, ttl_seconds: int, method: str
) -> SignInSession:
    """The sign-in metadata of a new app sign-in (P04), listed beside the web sessions."""
    digest = app_sign_in_hash(family_id)
    sign_in = _sign_in_record(digest, method[:30], client, ttl_seconds, user_id=user_id)
    await sign_in.save()
    return sign_in


async def end_app_sign_ins(family_ids: list[str]) -> None:
    """Mark the sign-in records of ended app sign-ins."""
    if family_ids:
        await SignInSession.filter(
            token_hash__in=[app_sign_in_hash(family_id) for family_id in family_ids],
            revoked_at__isnull=True,
        ).update(revoked_at=datetime.now(UTC))
