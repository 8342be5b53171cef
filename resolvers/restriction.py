"""Restriction of processing (P25): the officer lifts it; staff edits of a restricted account
are refused. Completing a restriction request restricts (resolvers/privacy_requests.py); the
rules are privacy/restriction.py's."""

from __future__ import annotations

from uuid import UUID

from tortoise.transactions import in_transaction

from auth.principal import Principal
from models import PrivacyRequest, User
from privacy import restriction
from resolvers.errors import AccountRestricted, IllegalTransition, NotFound
from resolvers.privacy_requests import MAX_OUTCOME, require_officer
from resolvers.validation import text


async def refuse_if_restricted(user_id: UUID) -> None:
    """Staff may not edit an account whose processing is restricted (call before a change)."""
    user = await User.get_or_none(id=user_id).only("id", "status", "status_before_disable")
    if user is not None and restriction.is_restricted(user):
        raise AccountRestricted(
            "This account's processing is restricted: it cannot be changed until the "
            "restriction is lifted.",
            field="userId",
        )


async def lift_restriction(principal: Principal, user_id: UUID, reason: str) -> PrivacyRequest:
    """The officer lifts a restriction: its subject is told, with the reason, and it is lifted
    once that notice is sent. Answers the restriction request, its history showing the step."""
    require_officer(principal)
    cleaned = text(reason, "reason", max_length=MAX_OUTCOME, multiline=True)
    async with in_transaction():
        if not await User.filter(id=user_id).exists():
            raise NotFound("No such account.", field="userId")
        try:
            request, _ = await restriction.decide_lift(principal, user_id, cleaned)
        except (restriction.NotRestricted, restriction.LiftPending) as refused:
            raise IllegalTransition(str(refused), field="userId") from None
    return request
