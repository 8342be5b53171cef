"""Accounts: the User type, profile changes, the directory, account control (registration and
passwords: schema/local_accounts.py)."""

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import strawberry

from auth.policy import Relation
from auth.relations import relation_to_own_account
from models import User
from resolvers import accounts, policy, users
from resolvers.users import ProfileChanges
from schema.attributes import attribute
from schema.context import Context, Info, store_of
from schema.enums import Role, UserStatus
from schema.errors import (
    MutationError,
    coded_errors,
)
from schema.identities import LinkedIdentityType, SignInType
from schema.need_to_know import personal_data
from schema.payments import PaymentMethodType
from schema.relay import Connection, Node, connection, from_global_id, to_global_id


async def user_node(info: Info, user_id: UUID | None) -> "UserType | None":
    """A person reached through an object already in scope, with the caller's relation."""
    (node,) = await user_nodes(info.context, [user_id])
    return node


async def user_nodes(context: Context, user_ids: list[UUID | None]) -> "list[UserType | None]":
    """`user_node` for many at once (a compiled plan's batch): one load of the people, one of
    the caller's relations to those who exist."""
    loaders = context.loaders
    known = [ident for ident in dict.fromkeys(user_ids) if ident is not None]
    users = dict(zip(known, await loaders.users.load_many(known), strict=True)) if known else {}
    present = [ident for ident in known if users[ident] is not None]
    relations = (
        dict(zip(present, await loaders.relations.load_many(present), strict=True))
        if present
        else {}
    )
    nodes: list[UserType | None] = []
    for ident in user_ids:
        user = users.get(ident) if ident is not None else None
        nodes.append(None if user is None else UserType(model=user, relation=relations[user.id]))
    return nodes


@personal_data
@strawberry.type(name="User", description="An account. Personal fields follow need-to-know.")
class UserType(Node):
    model: strawberry.Private[User]
    relation: strawberry.Private[Relation]
    name: str | None = attribute()
    email: str | None = attribute()
    phone: str | None = attribute()
    username: str | None = attribute()
    locale: str | None = attribute()
    time_zone: str | None = attribute()
    status: UserStatus | None = attribute()
    source: str | None = attribute("Where this record came from: self, a provider or a partner.")
    created_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return self.model.id

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("User", self.model.id)

    @strawberry.field
    def date_of_birth(self) -> date | None:
        value = self.model.date_of_birth
        return date.fromisoformat(value) if value else None

    @strawberry.field
    def roles(self) -> list[Role] | None:
        return [Role(role) for role in self.model.roles]

    @strawberry.field
    async def payment_methods(self, info: Info) -> list[PaymentMethodType] | None:
        methods = await info.context.loaders.payment_methods.load(self.model.id)
        return [PaymentMethodType(model=method, relation=self.relation) for method in methods]

    @strawberry.field(description="Provider accounts that sign in to this account.")
    async def identities(self, info: Info) -> list[LinkedIdentityType] | None:
        linked = await info.context.loaders.identities.load(self.model.id)
        return [LinkedIdentityType(model=row, relation=self.relation) for row in linked]

    @strawberry.field(
        description="Whether a significant change of the privacy policy awaits your acceptance."
    )
    async def pending_policy_acceptance(self) -> bool | None:
        return await policy.pending_policy_acceptance(self.model.id, self.model.created_at)

    @strawberry.field(description="Recent sign-ins and what they collected (P04).")
    async def sign_ins(self, info: Info) -> list[SignInType] | None:
        records = await info.context.loaders.sign_ins.load(self.model.id)
        current = info.context.principal.session_id
        return [
            SignInType(model=r, relation=self.relation, current_session=current) for r in records
        ]


def own_account(user: User) -> UserType:
    return UserType(model=user, relation=relation_to_own_account(user))


@strawberry.input(description="Narrow the account directory.")
class UserFilterInput:
    role: Role | None = None
    status: UserStatus | None = None


@strawberry.input
class UpdateProfileInput:
    name: str | None = None
    phone: str | None = strawberry.field(default=None, description="An empty string clears it.")
    locale: str | None = None
    time_zone: str | None = None


@strawberry.type
class UpdateProfileSuccess:
    user: UserType


UpdateProfileResult = Annotated[
    UpdateProfileSuccess | MutationError, strawberry.union("UpdateProfileResult")
]


@strawberry.type
class SignOutEverywhereSuccess:
    sessions_ended: int
    app_sign_ins_ended: int


SignOutEverywhereResult = Annotated[
    SignOutEverywhereSuccess | MutationError, strawberry.union("SignOutEverywhereResult")
]


@strawberry.type
class DisableAccountSuccess:
    user_id: strawberry.ID
    sessions_ended: int
    app_sign_ins_ended: int


DisableAccountResult = Annotated[
    DisableAccountSuccess | MutationError, strawberry.union("DisableAccountResult")
]


@strawberry.type
class EnableAccountSuccess:
    user_id: strawberry.ID


EnableAccountResult = Annotated[
    EnableAccountSuccess | MutationError, strawberry.union("EnableAccountResult")
]


@strawberry.type
class UsersQuery:
    @strawberry.field(description="The signed-in account, or null when anonymous.")
    async def me(self, info: Info) -> UserType | None:
        return await user_node(info, info.context.principal.user_id)

    @strawberry.field(description="The account directory (staff with the directory scope).")
    @coded_errors
    async def users(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: UserFilterInput | None = None,
    ) -> Connection[UserType] | None:
        page = await users.list_users(
            info.context.principal,
            first=first,
            after=after,
            role=filter.role if filter else None,
            status=filter.status if filter else None,
        )
        loaders = info.context.loaders
        for person in page.items:
            loaders.users.prime(person.id, person)
        relations = await loaders.relations.load_many([person.id for person in page.items])
        nodes = [
            UserType(model=person, relation=relation)
            for person, relation in zip(page.items, relations, strict=True)
        ]
        return connection(page, nodes)


@strawberry.type
class UsersMutation:
    @strawberry.mutation(description="Change your own name, phone, locale or time zone.")
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UpdateProfileResult:
        changes = ProfileChanges(
            name=input.name,
            phone=input.phone or None,
            clear_phone=input.phone == "",
            locale=input.locale,
            time_zone=input.time_zone,
        )
        user = await users.update_profile(info.context.principal, changes)
        return UpdateProfileSuccess(user=own_account(user))

    @strawberry.mutation(
        description="End every session and app sign-in of your account, this one included."
    )
    async def sign_out_everywhere(self, info: Info) -> SignOutEverywhereResult:
        ended = await accounts.sign_out_everywhere(info.context.principal, store_of(info.context))
        return SignOutEverywhereSuccess(
            sessions_ended=ended.sessions, app_sign_ins_ended=ended.app_sign_ins
        )

    @strawberry.mutation(
        description="Stop an account from signing in and end its sign-ins (administrator)."
    )
    async def disable_account(self, info: Info, user_id: strawberry.ID) -> DisableAccountResult:
        _, ident = from_global_id(user_id, "User", "userId")
        context = info.context
        ended = await accounts.disable_account(context.principal, store_of(context), ident)
        return DisableAccountSuccess(
            user_id=user_id, sessions_ended=ended.sessions, app_sign_ins_ended=ended.app_sign_ins
        )

    @strawberry.mutation(description="Let a disabled account sign in again (administrator).")
    async def enable_account(self, info: Info, user_id: strawberry.ID) -> EnableAccountResult:
        _, ident = from_global_id(user_id, "User", "userId")
        await accounts.enable_account(info.context.principal, ident)
        return EnableAccountSuccess(user_id=user_id)
