"""Ways in: linked provider identities and the sign-ins made with them."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry

from auth.policy import Relation
from auth.relations import subject_of
from models import ExternalIdentity, SignInSession
from resolvers import federated
from schema.attributes import attribute
from schema.context import Info
from schema.errors import MutationError
from schema.need_to_know import personal_data
from schema.relay import Node, from_global_id, to_global_id


@personal_data
@strawberry.type(name="LinkedIdentity", description="A provider account linked for sign-in.")
class LinkedIdentityType(Node):
    model: strawberry.Private[ExternalIdentity]
    relation: strawberry.Private[Relation]
    provider: str | None = attribute("google, microsoft, linkedin or another configured name.")
    email: str | None = attribute()
    email_verified: bool | None = attribute("Whether the provider vouched for the email.")
    linked_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("LinkedIdentity", self.model.id)


@personal_data
@strawberry.type(name="SignIn", description="One sign-in and the metadata collected with it.")
class SignInType(Node):
    model: strawberry.Private[SignInSession]
    relation: strawberry.Private[Relation]
    current_session: strawberry.Private[UUID | None] = None
    method: str | None = attribute()
    ip_address: str | None = attribute()
    browser: str | None = attribute()
    browser_version: str | None = attribute()
    os: str | None = attribute()
    device_type: str | None = attribute()
    time_zone: str | None = attribute()
    referrer: str | None = attribute()
    location: str | None = attribute()
    created_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("SignIn", self.model.id)

    @strawberry.field(description="True for the session making this request.")
    def current(self) -> bool | None:
        return self.model.id == self.current_session


@strawberry.type
class UnlinkIdentitySuccess:
    removed_id: strawberry.ID


UnlinkIdentityResult = Annotated[
    UnlinkIdentitySuccess | MutationError, strawberry.union("UnlinkIdentityResult")
]


@strawberry.type
class IdentitiesMutation:
    @strawberry.mutation(description="Unlink a provider account (never your last way in).")
    async def unlink_identity(self, info: Info, id: strawberry.ID) -> UnlinkIdentityResult:
        _, identity_id = from_global_id(id, "LinkedIdentity")
        await federated.unlink_identity(info.context.principal, identity_id)
        return UnlinkIdentitySuccess(removed_id=id)
