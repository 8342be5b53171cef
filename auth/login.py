"""Local sign-in with email (or username) and password."""

from __future__ import annotations

from redis.asyncio import Redis

from auth.client_info import ClientInfo
from auth.passwords import MAX_LENGTH, verify_password
from auth.sessions import NewSession, start_session
from models import SIGN_IN_STATUSES, User, UserStatus, crypto


class AccountDisabled(Exception):
    """The password was right, but the account may not sign in."""


async def sign_in_with_password(
    store: Redis, login: str, password: str, client: ClientInfo, ttl_seconds: int
) -> NewSession | None:
    """A new session, or None with the same answer and cost for every kind of failure.

    Only someone who knows the password learns that the account is disabled.
    """
    lookup = crypto.blind_index(login[:320]) if login.strip() else ""
    user = None
    if lookup:
        user = await User.get_or_none(email_index=lookup) or await User.get_or_none(
            username_index=lookup
        )
    candidate_hash = user.password_hash if user is not None else None
    valid = await verify_password(candidate_hash, password[:MAX_LENGTH])
    if not valid or user is None or user.status == UserStatus.ERASED:
        return None
    if user.status not in SIGN_IN_STATUSES:
        raise AccountDisabled
    return await start_session(store, user, client, ttl_seconds)
