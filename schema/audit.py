"""The audit trail as its subjects and the privacy officer read it."""

from datetime import datetime
from uuid import UUID

import strawberry

from auth.policy import Relation
from auth.relations import relation_to_row
from models import AuditEvent
from resolvers import audit_trail
from schema.attributes import attribute
from schema.context import Info
from schema.enums import Role
from schema.errors import coded_errors
from schema.need_to_know import personal_data
from schema.relay import from_global_id
from schema.users import UserType, user_node


@personal_data
@strawberry.type(
    name="AuditEntry",
    description="One audit record: who did what with whose data (field names, never values).",
)
class AuditEntryType:
    model: strawberry.Private[AuditEvent]
    relation: strawberry.Private[Relation]
    occurred_at: datetime | None = attribute()
    action: str | None = attribute("What happened, e.g. personal_data.read or ticket.reply.")
    purpose: str | None = attribute()
    request_id: str | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return self.model.subject_id

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.model.seq))

    @strawberry.field(description="Type.field names that were read or changed.")
    def field_names(self) -> list[str] | None:
        return list(self.model.field_names)

    @strawberry.field(description="The roles the actor held at the time.")
    def actor_roles(self) -> list[Role] | None:
        return [Role(role) for role in self.model.actor_roles if role in Role.__members__.values()]

    @strawberry.field(description="Who acted (privacy officer only).")
    async def actor(self, info: Info) -> UserType | None:
        return await user_node(info, self.model.actor_id)


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description="Who accessed or changed your personal data: roles and times, newest first."
    )
    @coded_errors
    async def my_data_accesses(self, info: Info, first: int = 50) -> list[AuditEntryType] | None:
        principal = info.context.principal
        events = await audit_trail.accesses_to_my_data(principal, first)
        return [AuditEntryType(model=e, relation=relation_to_row(principal, e)) for e in events]

    @strawberry.field(description="Every audit record about one person (privacy officer).")
    @coded_errors
    async def audit_trail(
        self, info: Info, subject_id: strawberry.ID, first: int = 50
    ) -> list[AuditEntryType] | None:
        principal = info.context.principal
        _, subject = from_global_id(subject_id, "User", "subjectId")
        events = await audit_trail.audit_trail(principal, subject, first)
        return [AuditEntryType(model=e, relation=relation_to_row(principal, e)) for e in events]
