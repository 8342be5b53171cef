"""Which notices each person wants by mail; the rest stay in-platform only."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from auth.principal import Principal
from privacy import audit, notices
from privacy.audit_actions import AuditAction
from privacy.notices import Preference
from resolvers.errors import InvalidInput
from resolvers.users import require_user

__all__ = ["Preference", "my_notice_preferences", "set_notice_preference"]


async def my_notice_preferences(principal: Principal) -> list[Preference]:
    """Every kind of notice, and whether the caller gets it by mail."""
    return await notices.preferences(require_user(principal))


async def set_notice_preference(principal: Principal, kind: str, *, by_mail: bool) -> Preference:
    """Choose whether one kind of notice also comes by mail; security notices always do."""
    user_id = require_user(principal)
    if kind not in notices.TEMPLATES:
        raise InvalidInput("There is no notice of this kind.", field="kind")
    if not by_mail and notices.always_mailed(kind):
        raise InvalidInput(
            "Security notices, and mails that carry a link, are always sent by email.",
            field="kind",
        )
    async with in_transaction():
        if await notices.set_preference(user_id, kind, by_mail=by_mail):
            await audit.record(
                principal,
                action=AuditAction.NOTICE_PREFERENCE_SET,
                entity="NoticePreference",
                entity_id=kind,
                subject_id=user_id,
                field_names=["NoticePreference.byMail"],
            )
    return Preference(kind, by_mail, notices.always_mailed(kind))
