"""Sign-in records (P04): what a person's own sign-ins collected."""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

from auth import scoping
from auth.principal import Principal
from models import SignInSession

MAX_LISTED = 50


async def load_sign_ins(principal: Principal, user_ids: list[UUID]) -> list[list[SignInSession]]:
    """Batch: the latest sign-ins per person, as far as the caller may read them."""
    rows = await (
        scoping.readable_sign_ins(principal)
        .filter(user_id__in=user_ids)
        .order_by("-created_at")
        .limit(MAX_LISTED * len(user_ids))
    )
    grouped: dict[UUID, list[SignInSession]] = defaultdict(list)
    for row in rows:
        bucket = grouped[row.user_id]
        if len(bucket) < MAX_LISTED:
            bucket.append(row)
    return [grouped.get(ident, []) for ident in user_ids]
