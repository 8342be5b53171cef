"""Single-use, expiring links mailed to an account (verify an address, reset a password,
confirm a new address).

A token is 32 random bytes; the database keeps only its SHA-256, so a dump holds no usable
link. Redeeming is one conditional UPDATE (unused and unexpired), so a token works once
across every process; inside the caller's transaction, the change it allows and its use are
committed together or not at all.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID

from models import AccountToken, AccountTokenPurpose

MAX_TOKEN_LENGTH = 128

LIFETIMES = {
    AccountTokenPurpose.VERIFY_EMAIL: timedelta(hours=24),
    AccountTokenPurpose.RESET_PASSWORD: timedelta(minutes=30),
    AccountTokenPurpose.CHANGE_EMAIL: timedelta(hours=24),
}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue(
    user_id: UUID, purpose: AccountTokenPurpose, *, new_email: str | None = None
) -> str:
    """A new link token for one account; earlier unused ones of the same purpose stop working."""
    await void(user_id, purpose)
    token = secrets.token_urlsafe(32)
    await AccountToken(
        user_id=user_id,
        purpose=purpose,
        token_hash=_digest(token),
        new_email=new_email,
        expires_at=datetime.now(UTC) + LIFETIMES[purpose],
    ).save()
    return token


async def peek(token: str, purpose: AccountTokenPurpose) -> AccountToken | None:
    """The token's row if it would redeem now, without using it (to check input first)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return await AccountToken.get_or_none(
        token_hash=_digest(token),
        purpose=purpose,
        used_at__isnull=True,
        expires_at__gt=datetime.now(UTC),
    )


async def redeem(token: str, purpose: AccountTokenPurpose) -> AccountToken | None:
    """The token's row, marked used; None for an unknown, used, expired or other-purpose one."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    now = datetime.now(UTC)
    digest = _digest(token)
    taken = await AccountToken.filter(
        token_hash=digest, purpose=purpose, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if not taken:
        return None
    return await AccountToken.get(token_hash=digest)


async def void(user_id: UUID, *purposes: AccountTokenPurpose) -> int:
    """Make every unused token of these purposes (all, if none named) of one account unusable."""
    query = AccountToken.filter(user_id=user_id, used_at__isnull=True)
    if purposes:
        query = query.filter(purpose__in=list(purposes))
    return await query.update(used_at=datetime.now(UTC))
