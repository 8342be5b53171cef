"""The privacy policy (P31) and notices to every user (P16)."""

from datetime import datetime
from typing import Annotated

import strawberry

from auth.relations import relation_to_row
from models import Announcement, PolicyVersion
from resolvers import policy
from resolvers.policy import CurrentPolicy, PolicyDraft
from schema.attributes import attribute
from schema.context import Info
from schema.errors import MutationError
from schema.privacy import ConsentEntryType
from schema.relay import to_global_id


@strawberry.type(name="PrivacyPolicy", description="The version of the privacy policy in effect.")
class PrivacyPolicyType:
    model: strawberry.Private[CurrentPolicy]
    version: str = attribute()
    effective_at: datetime | None = attribute("When it took effect (null: the built-in first).")
    url: str | None = attribute("Where to read it: an https URL or a path of OCIS.")
    text: str | None = attribute("Its text, when it is kept in OCIS.")
    summary: str | None = attribute("What changed from the version before.")
    significant: bool = attribute("Whether it changed something users had to accept again.")


@strawberry.type(name="PolicyVersion", description="A published version of the privacy policy.")
class PolicyVersionType:
    model: strawberry.Private[PolicyVersion]
    version: str = attribute()
    published_at: datetime = attribute()
    effective_at: datetime = attribute()
    url: str | None = attribute()
    text: str | None = attribute()
    significant: bool = attribute()

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("PolicyVersion", self.model.id)


@strawberry.type(name="Announcement", description="A notice sent to every user.")
class AnnouncementType:
    model: strawberry.Private[Announcement]
    title: str = attribute()
    body: str = attribute()
    created_at: datetime = attribute()

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Announcement", self.model.id)


@strawberry.input
class PublishPolicyVersionInput:
    version: str = strawberry.field(description="Its name, e.g. 2026-03.")
    significant: bool = strawberry.field(
        description="A significant change is notified to every user, who must accept it."
    )
    url: str | None = strawberry.field(default=None, description="An https URL or a path.")
    text: str | None = strawberry.field(default=None, description="Or its text.")
    effective_at: datetime | None = strawberry.field(
        default=None, description="When it takes effect (default: now; never in the past)."
    )
    summary: str | None = strawberry.field(default=None, description="What changed.")


@strawberry.type
class PublishPolicyVersionSuccess:
    policy_version: PolicyVersionType


PublishPolicyVersionResult = Annotated[
    PublishPolicyVersionSuccess | MutationError, strawberry.union("PublishPolicyVersionResult")
]


@strawberry.type
class AcceptPolicyVersionSuccess:
    consent: ConsentEntryType


AcceptPolicyVersionResult = Annotated[
    AcceptPolicyVersionSuccess | MutationError, strawberry.union("AcceptPolicyVersionResult")
]


@strawberry.input
class SendNoticeToAllUsersInput:
    title: str = strawberry.field(description="One line: the notice's subject.")
    body: str


@strawberry.type
class SendNoticeToAllUsersSuccess:
    announcement: AnnouncementType


SendNoticeToAllUsersResult = Annotated[
    SendNoticeToAllUsersSuccess | MutationError, strawberry.union("SendNoticeToAllUsersResult")
]


@strawberry.type
class PolicyQuery:
    @strawberry.field(description="The privacy policy in effect now (public).")
    async def privacy_policy(self) -> PrivacyPolicyType:
        return PrivacyPolicyType(model=await policy.privacy_policy())


@strawberry.type
class PolicyMutation:
    @strawberry.mutation(description="Publish a version of the privacy policy (administrator).")
    async def publish_policy_version(
        self, info: Info, input: PublishPolicyVersionInput
    ) -> PublishPolicyVersionResult:
        draft = PolicyDraft(
            version=input.version,
            url=input.url,
            text=input.text,
            effective_at=input.effective_at,
            significant=input.significant,
            summary=input.summary,
        )
        row = await policy.publish_policy_version(info.context.principal, draft)
        return PublishPolicyVersionSuccess(policy_version=PolicyVersionType(model=row))

    @strawberry.mutation(description="Accept a version of the privacy policy (in the ledger).")
    async def accept_policy_version(self, info: Info, version: str) -> AcceptPolicyVersionResult:
        context = info.context
        entry = await policy.accept_policy_version(
            context.principal,
            version,
            ip_address=context.client_ip,
            user_agent=context.user_agent,
            source=context.consent_source,
        )
        return AcceptPolicyVersionSuccess(
            consent=ConsentEntryType(
                model=entry, relation=relation_to_row(context.principal, entry)
            )
        )

    @strawberry.mutation(
        description="Send a notice to every user, in-platform and by email (administrator)."
    )
    async def send_notice_to_all_users(
        self, info: Info, input: SendNoticeToAllUsersInput
    ) -> SendNoticeToAllUsersResult:
        sent = await policy.send_notice_to_all_users(
            info.context.principal, input.title, input.body
        )
        return SendNoticeToAllUsersSuccess(announcement=AnnouncementType(model=sent.announcement))
