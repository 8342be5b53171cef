"""Usage analytics (P09): clients record usage events; administrators read the counts per
feature and day. Who may be counted is privacy/usage.py's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from auth.principal import Principal
from auth.scopes import Scope
from auth.visitor_ids import Owner, VisitorIds
from models import UsageCount
from privacy import usage
from resolvers.consents import checked_visitor
from resolvers.errors import InvalidInput, NotAllowed
from resolvers.users import require_user

# A client may send what it gathered while offline, for a day at most; its clock may run a
# little ahead of ours.
MAX_AGE = timedelta(days=1)
CLOCK_SKEW = timedelta(minutes=5)
# One read covers a quarter at most.
MAX_DAYS = 92


def _checked_time(at: datetime, now: datetime) -> datetime:
    if at.tzinfo is None:
        raise InvalidInput("Give the time with its time zone.", field="at")
    if at > now + CLOCK_SKEW:
        raise InvalidInput("A usage event cannot happen in the future.", field="at")
    if at < now - MAX_AGE:
        raise InvalidInput("A usage event older than a day is not recorded.", field="at")
    return min(at.astimezone(UTC), now)


async def record_usage(
    principal: Principal,
    feature: str,
    at: datetime,
    *,
    visitor_ids: VisitorIds,
    visitor_id: str | None,
) -> bool:
    """Count one use of a feature if its sender may be counted; answer whether it was. A
    dropped event leaves nothing but the count of drops."""
    if not usage.valid_feature(feature):
        raise InvalidInput(
            "A feature is lower-case words joined by dots or underscores (at most 64 "
            "characters, no digits).",
            field="feature",
        )
    moment = _checked_time(at, datetime.now(UTC))
    owner: Owner | None
    if principal.user_id is not None:
        if visitor_id is not None:
            raise InvalidInput("Signed in, send no visitorId.", field="visitorId")
        owner = principal.user_id
    else:
        owner = checked_visitor(visitor_ids, visitor_id)
    if owner is None or not await usage.may_count(owner):
        usage.dropped()
        return False
    await usage.count(feature, moment.date())
    return True


async def usage_counts(principal: Principal, first_day: date, last_day: date) -> list[UsageCount]:
    """Counts per feature and day (UTC), never per person: for administrators."""
    require_user(principal)
    if not principal.has(Scope.USAGE_READ):
        raise NotAllowed("Reading usage analytics needs the usage:read scope.")
    if first_day > last_day:
        raise InvalidInput("The first day comes before the last.", field="from")
    if (last_day - first_day).days >= MAX_DAYS:
        raise InvalidInput(f"Ask for {MAX_DAYS} days at most.", field="to")
    return await usage.counts(first_day, last_day)
