"""Usage analytics (P09): an event is counted only for someone who may be counted.

An event names a feature (or page) from a closed pattern, never free text, and a time. It is
kept only for a visitor or an account whose latest statistics decision in the consent ledger
is a grant (an objection is recorded as a withdrawal, so it counts) and, for an account, whose
processing is not restricted nor the account otherwise closed; otherwise it is dropped and
only the drop is counted, with no identity and no feature. What is kept is a count per feature
and day (UTC): no row names a person, a visitor or a time of day.
"""

from __future__ import annotations

import re
from datetime import date

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from auth.visitor_ids import Owner, Visitor
from models import ConsentPurpose, UsageCount, User, UserStatus
from observability import USAGE_DROPPED
from privacy import consent

# Lower-case words joined by dots or underscores ("tickets.reply", "page.privacy_requests"):
# no digits, so no id, no number, no free text fits.
FEATURE = re.compile(r"[a-z]+(?:[._][a-z]+){0,7}")
MAX_FEATURE = 64


def valid_feature(feature: str) -> bool:
    return len(feature) <= MAX_FEATURE and FEATURE.fullmatch(feature) is not None


async def may_count(owner: Owner) -> bool:
    """Whether this visitor's or account's usage may be counted, read now."""
    if not isinstance(owner, Visitor):
        user = await User.get_or_none(id=owner).only("id", "status")
        if user is None or user.status != UserStatus.ACTIVE:
            return False
    return await consent.granted(owner, ConsentPurpose.STATISTICS)


def dropped() -> None:
    """Count a dropped event: the only trace it leaves."""
    USAGE_DROPPED.inc()


async def count(feature: str, day: date) -> None:
    """Add one event to the feature's count for the day (one statement once the row exists)."""
    if not valid_feature(feature):
        raise ValueError("not a feature name")
    if await UsageCount.filter(feature=feature, day=day).update(events=F("events") + 1):
        return
    try:
        async with in_transaction():  # a savepoint: losing the race leaves the caller intact
            await UsageCount.create(feature=feature, day=day, events=1)
    except IntegrityError:
        await UsageCount.filter(feature=feature, day=day).update(events=F("events") + 1)


async def counts(first_day: date, last_day: date) -> list[UsageCount]:
    """The counts of the days from `first_day` to `last_day`, by day then feature."""
    return (
        await UsageCount.filter(day__gte=first_day, day__lte=last_day)
        .order_by("day", "feature")
        .limit(10_000)
    )
