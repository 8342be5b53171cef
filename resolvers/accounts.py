"""Ending sign-ins: sign out everywhere, and disabling or enabling an account.

Both act on the shared store, so they take effect at once in every process: sessions are
forgotten there, refresh families are revoked there (which stops their access tokens too),
and every request re-reads the account's status, so a disabled account's credentials stop
working even if one were missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from auth import tokens
from auth.principal import Principal
from auth.scopes import Scope
from auth.sessions import end_all_sessions
from models import Notice, User, UserStatus
from privacy import audit, notices
from privacy.audit_actions import AuditAction
from resolvers import live, staff
from resolvers.errors import InvalidInput, NotAllowed, NotFound
from resolvers.users import require_user

MAX_NOTICES = 50


@dataclass(frozen=True, slots=True)
class Ended:
    sessions: int
    app_sign_ins: int


async def _end_everything(store: Redis, user_id: UUID, *, keep: UUID | None = None) -> Ended:
    """End every web session (but the sign-in `keep`) and every app sign-in of one person."""
    sessions = await end_all_sessions(store, user_id, keep=keep)
    families = await tokens.revoke_all_for_user(store, user_id)
    await live.announce_account_change(store, user_id)
    return Ended(sessions=sessions, app_sign_ins=families)


async def sign_out_everywhere(principal: Principal, store: Redis) -> Ended:
    """End every session and app sign-in of the caller, this one included."""
    user_id = require_user(principal)
    ended = await _end_everything(store, user_id)
    async with in_transaction():
        await audit.record(
            principal,
            action=AuditAction.ACCOUNT_SIGN_OUT_EVERYWHERE,
            entity="User",
            entity_id=user_id,
            subject_id=user_id,
        )
        await notices.notify(user_id, "account.signed_out_everywhere")
    return ended


async def _account(principal: Principal, user_id: UUID) -> User:
    require_user(principal)
    if not principal.has(Scope.ACCOUNTS_DISABLE):
        raise NotAllowed("Only an administrator may disable or enable accounts.")
    user = await User.get_or_none(id=user_id).only("id", "status", "status_before_disable")
    if user is None or user.status == UserStatus.ERASED:
        raise NotFound("No such account.", field="userId")
    return user


async def _change_status(
    principal: Principal,
    user_id: UUID,
    before: UserStatus,
    after: UserStatus,
    action: AuditAction,
    **also: UserStatus | None,
) -> None:
    """Move an account between statuses once: audited, and its owner told."""
    async with in_transaction():
        changed = await User.filter(id=user_id, status=before).update(status=after, **also)
        if changed:
            await audit.record(
                principal,
                action=action,
                entity="User",
                entity_id=user_id,
                subject_id=user_id,
                field_names=["User.status"],
            )
            await notices.notify(user_id, f"{action}d")


async def disable_account(principal: Principal, store: Redis, user_id: UUID) -> Ended:
    """Stop an account from signing in, ending every sign-in it holds; it keeps its data."""
    user = await _account(principal, user_id)
    if user_id == principal.user_id:
        raise InvalidInput("You cannot disable your own account.", field="userId")
    if user.status != UserStatus.DISABLED:
        await staff.ensure_not_last_administrator(user_id)
        # Remember what to return to: a restriction of processing outlives the disable.
        await _change_status(
            principal,
            user_id,
            user.status,
            UserStatus.DISABLED,
            AuditAction.ACCOUNT_DISABLE,
            status_before_disable=user.status,
        )
    # After the commit, every request already refuses the account; this frees the store.
    return await _end_everything(store, user_id)


async def enable_account(principal: Principal, user_id: UUID) -> None:
    """Let a disabled account sign in again, in the status it had (old sessions stay ended)."""
    user = await _account(principal, user_id)
    if user.status != UserStatus.DISABLED:
        raise InvalidInput("This account is not disabled.", field="userId")
    previous = UserStatus(user.status_before_disable or UserStatus.ACTIVE)
    await _change_status(
        principal,
        user_id,
        UserStatus.DISABLED,
        previous,
        AuditAction.ACCOUNT_ENABLE,
        status_before_disable=None,
    )


def notice_text(notice: Notice, contact: str, public_url: str = "") -> notices.Template:
    """The words of a notice, the same in-platform as in its email."""
    return notices.render(notice, contact=contact, public_url=public_url)


async def my_notices(principal: Principal, first: int, unread_only: bool) -> list[Notice]:
    user_id = require_user(principal)
    if not 1 <= first <= MAX_NOTICES:
        raise InvalidInput(f"first must be between 1 and {MAX_NOTICES}.", field="first")
    found = await notices.for_user(user_id, first=first, unread_only=unread_only)
    await notices.load_texts(found)
    return found


async def mark_notices_read(principal: Principal, notice_ids: list[UUID]) -> int:
    user_id = require_user(principal)
    if len(notice_ids) > MAX_NOTICES:
        raise InvalidInput(f"At most {MAX_NOTICES} notices at a time.", field="ids")
    return await notices.mark_read(user_id, notice_ids)
