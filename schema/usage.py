"""Usage analytics (P09): usage events in, counts per feature and day out."""

from datetime import date, datetime
from typing import Annotated

import strawberry

from auth import rate_limit
from resolvers import usage
from schema.context import Info
from schema.errors import MutationError, RateLimitedError, coded_errors, refusal
from schema.privacy import VISITOR_ID, consent_ids


@strawberry.type(
    name="UsageCount", description="How often a feature was used on a day (UTC); no person."
)
class UsageCountType:
    feature: str
    day: date
    events: int


@strawberry.input(description="One use of a feature or page.")
class RecordUsageInput:
    feature: str = strawberry.field(
        description="Lower-case words joined by dots or underscores, e.g. `tickets.reply`"
        " (at most 64 characters, no digits, no free text)."
    )
    at: datetime = strawberry.field(description="When; within the last day, not in the future.")
    visitor_id: str | None = strawberry.field(default=None, description=VISITOR_ID)


@strawberry.type
class RecordUsageSuccess:
    counted: bool = strawberry.field(
        description="Whether it was counted: only with statistics consent, without an"
        " objection or a restriction. Otherwise only the drop is counted."
    )


RecordUsageResult = Annotated[
    RecordUsageSuccess | RateLimitedError | MutationError, strawberry.union("RecordUsageResult")
]


@strawberry.type
class UsageQuery:
    @strawberry.field(
        description="Administrators: usage counts per feature and day (UTC), never per"
        " person, for at most 92 days."
    )
    @coded_errors
    async def usage_counts(
        self,
        info: Info,
        first_day: Annotated[date, strawberry.argument(name="from")],
        last_day: Annotated[date, strawberry.argument(name="to")],
    ) -> list[UsageCountType] | None:
        rows = await usage.usage_counts(info.context.principal, first_day, last_day)
        return [UsageCountType(feature=row.feature, day=row.day, events=row.events) for row in rows]


@strawberry.type
class UsageMutation:
    @strawberry.mutation(
        description="Record one use of a feature or page, counted only where its sender allows"
        " it (statistics consent, no objection, no restriction)."
    )
    async def record_usage(self, info: Info, input: RecordUsageInput) -> RecordUsageResult:
        context = info.context
        principal = context.principal
        if context.store is not None:
            decision = await rate_limit.usage_attempt(
                context.store,
                account=str(principal.user_id) if principal.user_id else None,
                ip=context.client_ip,
            )
            if (refused := refusal(info, decision)) is not None:
                return refused
        counted = await usage.record_usage(
            principal,
            input.feature,
            input.at,
            visitor_ids=consent_ids(context),
            visitor_id=input.visitor_id,
        )
        return RecordUsageSuccess(counted=counted)
