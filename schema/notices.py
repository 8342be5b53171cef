"""Notices: what OCIS told a person, kept in-platform beside its email."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry

from auth.policy import Relation
from auth.relations import relation_to_row, subject_of
from models import MailStatus, Notice
from resolvers import accounts
from resolvers.accounts import notice_text
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
        return notice_text(self.model, self.contact).subject

    @strawberry.field
    def body(self) -> str | None:
        return notice_text(self.model, self.contact).body

    @strawberry.field(description="When its email was handed to the mail server, if it was.")
    def emailed_at(self) -> datetime | None:
        sent = self.model.mail_status == MailStatus.SENT
        return self.model.mail_sent_at if sent else None


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
    ) -> list[NoticeType]:
        principal = info.context.principal
        found = await accounts.my_notices(principal, first, unread_only)
        contact = info.context.privacy_contact
        return [
            NoticeType(model=notice, contact=contact, relation=relation_to_row(principal, notice))
            for notice in found
        ]


@strawberry.type
class NoticesMutation:
    @strawberry.mutation(description="Mark some of your notices read.")
    async def mark_notices_read(
        self, info: Info, ids: list[strawberry.ID]
    ) -> MarkNoticesReadResult:
        notice_ids = [from_global_id(ident, "Notice", "ids")[1] for ident in ids]
        marked = await accounts.mark_notices_read(info.context.principal, notice_ids)
        return MarkNoticesReadSuccess(marked=marked)
