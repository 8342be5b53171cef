"""Children's accounts (P29): OCIS is not for anyone under 16; an account found to be a
child's is restricted at once and erased without anyone asking (privacy/erasure.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from tortoise.transactions import in_transaction

from auth.principal import Principal
from auth.scopes import Scope, is_staff_account
from models import (
    OPEN_PRIVACY_REQUEST_STATUSES,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    User,
    UserStatus,
)
from privacy import audit, erasure, requests
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.errors import IllegalTransition, InvalidInput, NotAllowed, NotFound
from resolvers.users import require_user

MAX_REASON = 2_000
OUTCOME = "This account belongs to someone under 16, who may not use OCIS: its data is erased."


async def flag_child_account(principal: Principal, user_id: UUID, reason: str) -> PrivacyRequest:
    """Flag an account as a child's (the child-accounts scope): restricted at once, audited,
    and its erasure started by a request of its own, blocked while a legal hold applies."""
    me = require_user(principal)
    if not principal.has(Scope.CHILD_ACCOUNTS):
        raise NotAllowed("Only the privacy officer or an administrator may flag a child's account.")
    cleaned = validation.text(reason, "reason", max_length=MAX_REASON, multiline=True)
    async with in_transaction():
        user = await User.select_for_update().get_or_none(id=user_id)
        if user is None or user.status == UserStatus.ERASED:
            raise NotFound("No such account.", field="userId")
        if user.id == me or is_staff_account(user.roles):
            raise InvalidInput("A staff account is not a child's.", field="userId")
        if await PrivacyRequest.filter(
            subject_id=user.id,
            kind=PrivacyRequestKind.ERASURE,
            status__in=(*OPEN_PRIVACY_REQUEST_STATUSES, PrivacyRequestStatus.COMPLETED),
        ).exists():
            raise IllegalTransition(
                "An erasure of this account is under way already.", field="userId"
            )
        changed = _restrict(user)
        if changed:
            await user.save(update_fields=[changed, "updated_at"])
        await audit.record(
            principal,
            action=AuditAction.CHILD_ACCOUNT_FLAG,
            entity="User",
            entity_id=user.id,
            subject_id=user.id,
            field_names=["User.status"] if changed else [],
        )
        due = datetime.now(UTC) + requests.RESPONSE_WINDOW
        return await erasure.open_for_child(principal, user, cleaned, OUTCOME, due)


def _restrict(user: User) -> str | None:
    """Restrict the account's processing; the attribute changed (None: restricted already)."""
    if user.status == UserStatus.ACTIVE:
        user.status = UserStatus.RESTRICTED
        return "status"
    if user.status == UserStatus.DISABLED and user.status_before_disable != UserStatus.RESTRICTED:
        user.status_before_disable = UserStatus.RESTRICTED
        return "status_before_disable"
    return None
