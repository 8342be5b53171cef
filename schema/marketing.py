"""Marketing campaigns (P12), for marketing staff; customers get FORBIDDEN."""

from datetime import datetime
from typing import Annotated

import strawberry

from models import Campaign, CampaignState
from resolvers import marketing
from schema.attributes import attribute
from schema.context import Info
from schema.errors import MutationError, coded_errors
from schema.relay import from_global_id, to_global_id

strawberry.enum(CampaignState, name="CampaignState")


@strawberry.type(
    name="Campaign",
    description="A marketing mail about OCIS, sent once to the accounts that consent to it.",
)
class CampaignType:
    model: strawberry.Private[Campaign]
    subject: str = attribute()
    body: str = attribute()
    state: CampaignState = attribute()
    created_at: datetime = attribute()
    sent_at: datetime | None = attribute("When sending was asked for.")
    eligible: int = attribute("Accounts eligible when it was sent (a count, never who).")
    queued: int = attribute("Mails written for it so far.")

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Campaign", self.model.id)


@strawberry.type
class CampaignSuccess:
    campaign: CampaignType


CampaignResult = Annotated[CampaignSuccess | MutationError, strawberry.union("CampaignResult")]


@strawberry.type
class MarketingQuery:
    @strawberry.field(description="The newest marketing campaigns (marketing staff).")
    @coded_errors
    async def campaigns(self, info: Info, first: int = 20) -> list[CampaignType] | None:
        rows = await marketing.campaigns(info.context.principal, first)
        return [CampaignType(model=row) for row in rows]


@strawberry.type
class MarketingMutation:
    @strawberry.mutation(description="Write a marketing campaign as a draft (marketing staff).")
    async def create_campaign(self, info: Info, subject: str, body: str) -> CampaignResult:
        row = await marketing.create_campaign(info.context.principal, subject, body)
        return CampaignSuccess(campaign=CampaignType(model=row))

    @strawberry.mutation(
        description="Send a campaign, once, to every account that consents to marketing email "
        "(marketing staff); it is mailed in batches after the answer."
    )
    async def send_campaign(self, info: Info, id: strawberry.ID) -> CampaignResult:
        _, ident = from_global_id(id, "Campaign", "id")
        row = await marketing.send_campaign(info.context.principal, ident)
        return CampaignSuccess(campaign=CampaignType(model=row))
