"""Notices: what OCIS told a person, kept in-platform beside its email."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry

from auth.policy import Relation
from auth.principal import Principal
from auth.relations import relation_to_person, relation_to_row, subject_of
from models import MailStatus, Notice
from resolvers import accounts, notice_preferences
from resolvers.accounts import notice_text
from resolvers.notice_preferences import Preference
from schema.attributes import attribute
from schema.context import Info
from schema.errors import MutationError, coded_errors
from schema.need_to_know import personal_data
from schema.relay import from_global_id, to_global_id


@personal_data
@strawberry.type(
    name="Notice",
    description="Something OCIS told you: kept here, and sent to your email address.",
)
class NoticeType:
    model: strawberry.Private[Notice]
    contact: strawberry.Private[str]
    public_url: strawberry.Private[str]
    relation: strawberry.Private[Relation]
    kind: str | None = attribute("What the notice is about, e.g. identity.linked.")
    created_at: datetime | None = attribute()
    read_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Notice", self.model.id)

    @strawberry.field
    def subject(self) -> str | None:
        return notice_text(self.model, self.contact, self.public_url).subject

    @strawberry.field
    def body(self) -> str | None:
        return notice_text(self.model, self.contact, self.public_url).body

    @strawberry.field(description="When its email was handed to the mail server, if it was.")
    def emailed_at(self) -> datetime | None:
        sent = self.model.mail_status == MailStatus.SENT
        return self.model.mail_sent_at if sent else None


@personal_data
@strawberry.type(
    name="NoticePreference",
    description="Whether one kind of notice comes by email too; every notice is kept here.",
)
class NoticePreferenceType:
    kind: str | None = strawberry.field(description="The kind of notice, as in Notice.kind.")
    by_mail: bool | None = strawberry.field(
        description="Whether notices of this kind are sent by email too."
    )
    always_by_mail: bool | None = strawberry.field(
        description="Security notices, and mails that carry a link, cannot be turned off."
    )
    owner: strawberry.Private[UUID | None]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        return self.owner


def _preference(principal: Principal, chosen: Preference) -> NoticePreferenceType:
    return NoticePreferenceType(
        kind=chosen.kind,
        by_mail=chosen.by_mail,
        always_by_mail=chosen.always_by_mail,
        owner=principal.user_id,
        relation=relation_to_person(principal, principal.user_id),
    )


@strawberry.type
class SetNoticePreferenceSuccess:
    preference: NoticePreferenceType


SetNoticePreferenceResult = Annotated[
    SetNoticePreferenceSuccess | MutationError, strawberry.union("SetNoticePreferenceResult")
]


@strawberry.type
class MarkNoticesReadSuccess:
    marked: int


MarkNoticesReadResult = Annotated[
    MarkNoticesReadSuccess | MutationError, strawberry.union("MarkNoticesReadResult")
]


@strawberry.type
class NoticesQuery:
    @strawberry.field(description="What OCIS told you (sign-in changes and more), newest first.")
    @coded_errors
    async def my_notices(
        self, info: Info, first: int = 20, unread_only: bool = False
    ) -> list[NoticeType] | None:
        principal = info.context.principal
        found = await accounts.my_notices(principal, first, unread_only)
        context = info.context
        return [
            NoticeType(
                model=notice,
                contact=context.privacy_contact,
                public_url=context.public_url,
                relation=relation_to_row(principal, notice),
            )
            for notice in found
        ]

    @strawberry.field(description="Every kind of notice, and whether you get it by email.")
    @coded_errors
    async def my_notice_preferences(self, info: Info) -> list[NoticePreferenceType] | None:
        principal = info.context.principal
        found = await notice_preferences.my_notice_preferences(principal)
        return [_preference(principal, each) for each in found]


@strawberry.type
class NoticesMutation:
    @strawberry.mutation(description="Mark some of your notices read.")
    async def mark_notices_read(
        self, info: Info, ids: list[strawberry.ID]
    ) -> MarkNoticesReadResult:
        notice_ids = [from_global_id(ident, "Notice", "ids")[1] for ident in ids]
        marked = await accounts.mark_notices_read(info.context.principal, notice_ids)
        return MarkNoticesReadSuccess(marked=marked)

    @strawberry.mutation(
        description="Choose whether one kind of notice also comes by email "
        "(security notices always do)."
    )
    async def set_notice_preference(
        self, info: Info, kind: str, by_mail: bool
    ) -> SetNoticePreferenceResult:
        principal = info.context.principal
        chosen = await notice_preferences.set_notice_preference(principal, kind, by_mail=by_mail)
        return SetNoticePreferenceSuccess(preference=_preference(principal, chosen))
