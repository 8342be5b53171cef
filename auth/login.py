"""Local sign-in with email (or username) and password."""

from __future__ import annotations

from redis.asyncio import Redis

from auth.client_info import ClientInfo
from auth.passwords import MAX_LENGTH, verify_password
from auth.sessions import NewSession, start_session
from models import SIGN_IN_STATUSES, User, UserStatus, crypto

MAX_LOGIN = 320


class AccountDisabled(Exception):
    """The password was right, but the account may not sign in."""


async def find_account(login: str) -> User | None:
    """The account an email or username names (any case, surrounding spaces ignored)."""
    if not login.strip():
        return None
    lookup = crypto.blind_index(login[:MAX_LOGIN])
    user: User | None = await User.get_or_none(email_index=lookup) or await User.get_or_none(
        username_index=lookup
    )
    return user


def attempt_key(login: str, account: User | None) -> str:
    """What the per-account attempt limit counts: the account a login names, whichever way
    it was typed (email or username); a login that names none counts as typed."""
    return f"account:{account.id}" if account is not None else login[:MAX_LOGIN]


async def sign_in_with_password(
    store: Redis, account: User | None, password: str, client: ClientInfo, ttl_seconds: int
) -> NewSession | None:
    """A new session, or None with the same answer and cost for every kind of failure.

    Only someone who knows the password learns that the account is disabled. An account whose
    address is not verified yet cannot sign in.
    """
    candidate_hash = account.password_hash if account is not None else None
    valid = await verify_password(candidate_hash, password[:MAX_LENGTH])
    # An unverified address's account cannot be used yet: to whoever typed the right password
    # (perhaps someone else registering that address), it is as if it were wrong.
    if not valid or account is None or account.status == UserStatus.ERASED:
        return None
    if account.email_verified_at is None:
        return None
    if account.status not in SIGN_IN_STATUSES:
        raise AccountDisabled
    return await start_session(store, account, client, ttl_seconds)
