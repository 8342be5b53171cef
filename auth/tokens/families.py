"""Refresh families, one per sign-in of the app: rotation, reuse detection and revocation.

Each use rotates the refresh token; a used token presented again revokes its whole family,
and revoking a family stops its access tokens at once.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn
from uuid import UUID

from redis.asyncio import Redis

import settings as config
from auth.sessions import end_app_sign_ins, token_hash
from auth.tokens.access import (
    ACCESS_TOKEN_TTL,
    family_owner,
    issue_access_token,
    live_user,
    verify_access_token,
)
from auth.tokens.errors import CredentialReuse, InvalidAccessToken, InvalidGrant
from auth.tokens.keyspace import (
    CODE_TTL,
    FAMILY_PREFIX,
    NOT_BEFORE_PREFIX,
    REFRESH_CLAIM_PREFIX,
    REFRESH_FAMILY_TTL,
    REFRESH_PREFIX,
    USER_FAMILIES_PREFIX,
    opaque,
)

ROTATION_IN_FLIGHT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    refresh_token: str
    family_id: str
    expires_in: int = ACCESS_TOKEN_TTL

    def response(self) -> dict[str, str | int]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


async def start_family(
    store: Redis, settings: config.Settings, user_id: UUID, client_id: str, now: float
) -> TokenGrant:
    """A new sign-in of the app: its family, its first refresh token and access token."""
    family_id = uuid.uuid4().hex
    refresh_token = secrets.token_urlsafe(32)
    owner = {"user_id": str(user_id), "client_id": client_id}
    families = USER_FAMILIES_PREFIX + str(user_id)
    async with store.pipeline(transaction=True) as pipe:
        pipe.set(
            FAMILY_PREFIX + family_id,
            json.dumps({**owner, "created_at": int(now)}),
            ex=REFRESH_FAMILY_TTL,
        )
        pipe.set(
            REFRESH_PREFIX + token_hash(refresh_token),
            json.dumps({**owner, "family_id": family_id}),
            ex=REFRESH_FAMILY_TTL,
        )
        pipe.sadd(families, family_id)
        pipe.expire(families, REFRESH_FAMILY_TTL)
        await pipe.execute()
    access_token = issue_access_token(settings, user_id, family_id, client_id, now=now)
    return TokenGrant(access_token, refresh_token, family_id)


async def refresh(
    store: Redis,
    settings: config.Settings,
    refresh_token: str,
    *,
    client_id: str | None = None,
    received_at: float | None = None,
) -> TokenGrant:
    """Rotate a refresh token: it becomes used and exactly one child takes its place.

    `received_at` is when the request reached the server (default: now). It tells a
    request that raced the rotation apart from a replay that came after it.
    """
    arrived = time.time() if received_at is None else received_at
    if not opaque(refresh_token):
        raise InvalidGrant
    digest = token_hash(refresh_token)
    raw = await store.get(REFRESH_PREFIX + digest)
    if raw is None:
        raise InvalidGrant
    record = json.loads(raw)
    family_id: str = record["family_id"]
    if client_id is not None and client_id != record["client_id"]:
        raise InvalidGrant
    claim_key = REFRESH_CLAIM_PREFIX + digest
    # Claim and look in one atomic step: SET NX lets exactly one caller ever claim this
    # token (so one child, never two), and every other caller sees the winner's claim.
    async with store.pipeline(transaction=True) as pipe:
        pipe.set(claim_key, json.dumps({"at": arrived}), nx=True, ex=REFRESH_FAMILY_TTL)
        pipe.get(claim_key)
        pipe.exists(FAMILY_PREFIX + family_id)
        won, seen, alive = await pipe.execute()
    if not alive:
        raise InvalidGrant
    if not won:
        await _lost_claim(store, json.loads(seen), arrived, family_id, UUID(record["user_id"]))
    remaining = await store.ttl(FAMILY_PREFIX + family_id)
    user = await live_user(record["user_id"])
    if user is None or remaining <= 0:
        await revoke_family(store, family_id)
        raise InvalidGrant
    child = secrets.token_urlsafe(32)
    await store.set(REFRESH_PREFIX + token_hash(child), raw, ex=remaining)
    access_token = issue_access_token(
        settings, user.id, family_id, record["client_id"], now=arrived
    )
    finished = json.dumps({"at": arrived, "done_at": time.time()})
    await store.set(claim_key, finished, xx=True, keepttl=True)
    return TokenGrant(access_token, child, family_id)


async def _lost_claim(
    store: Redis, claim: dict[str, Any], arrived: float, family_id: str, user_id: UUID
) -> NoReturn:
    """Refuse a token someone else rotated: a parallel request, or a replay."""
    done_at = claim.get("done_at")
    if done_at is None:
        # The winner is still at work, unless it died long ago mid-rotation.
        parallel = arrived - claim["at"] < ROTATION_IN_FLIGHT_SECONDS
    else:
        parallel = arrived <= done_at
    if parallel:
        # The race loser: this request reached the server before the winner's rotation was
        # done, so its sender cannot have seen the child; it is the same app refreshing
        # twice at once. It is refused and issues nothing; the family and the winner's
        # child stay valid. A request that arrives after the rotation is a replay (below).
        raise InvalidGrant
    if await revoke_family(store, family_id):
        raise CredentialReuse("refresh_token.reuse", family_id, user_id)
    raise InvalidGrant


async def revoke_family(store: Redis, family_id: str) -> bool:
    """End one sign-in of the app at once: its refresh and access tokens stop working."""
    raw = await store.getdel(FAMILY_PREFIX + family_id)
    await end_app_sign_ins([family_id])
    if raw is None:
        return False
    await store.srem(USER_FAMILIES_PREFIX + json.loads(raw)["user_id"], family_id)
    return True


async def sign_out_app(
    store: Redis, settings: config.Settings, *, access_token: str | None, refresh_token: str | None
) -> bool:
    """The app signs out: the family of its access or refresh token ends at once.

    Answers whether a live family was ended; an unknown or invalid token ends nothing.
    """
    families: set[str] = set()
    if access_token:
        with contextlib.suppress(InvalidAccessToken):
            claims = verify_access_token(settings, access_token, expired_ok=True)
            # An ended family may be ended again (its sign-in records with it); another
            # person's family never.
            if await family_owner(store, claims.family_id) in (None, str(claims.user_id)):
                families.add(claims.family_id)
    if refresh_token and opaque(refresh_token):
        raw = await store.get(REFRESH_PREFIX + token_hash(refresh_token))
        if raw is not None:
            families.add(json.loads(raw)["family_id"])
    ended = [await revoke_family(store, family_id) for family_id in sorted(families)]
    return any(ended)


async def revoke_all_for_user(store: Redis, user_id: UUID | str) -> int:
    """End every sign-in of the app for one person (sign out everywhere, account disable),
    and void the codes already issued to them that no family came of yet."""
    await store.set(NOT_BEFORE_PREFIX + str(user_id), repr(time.time()), ex=CODE_TTL * 2)
    families = USER_FAMILIES_PREFIX + str(user_id)
    members = await store.smembers(families)
    family_ids = sorted(member for member in members if isinstance(member, str))
    if not family_ids:
        return 0
    async with store.pipeline(transaction=True) as pipe:
        for family_id in family_ids:
            pipe.delete(FAMILY_PREFIX + family_id)
        # SREM, not DEL: a family started meanwhile stays listed for the next revocation.
        pipe.srem(families, *family_ids)
        results = await pipe.execute()
    await end_app_sign_ins(family_ids)
    return sum(results[:-1])
