"""Root query fields."""

from __future__ import annotations

import strawberry

from models import (
    ExternalIdentity,
    PaymentMethod,
    PrivacyRequest,
    SignInSession,
    Ticket,
    TicketMessage,
    User,
)
from resolvers import accounts, audit_trail, consents, nodes, privacy_requests, tickets, users
from resolvers.errors import DomainError
from resolvers.tickets import TicketFilter
from schema.context import Info
from schema.errors import from_domain, not_found
from schema.types import (
    AuditEntryType,
    Connection,
    ConsentEntryType,
    ConsentState,
    LinkedIdentityType,
    Node,
    NoticeType,
    PaymentMethodType,
    PrivacyRequestType,
    RoleEnum,
    SignInType,
    TicketMessageType,
    TicketStatusEnum,
    TicketType,
    UserStatusEnum,
    UserType,
    audit_entry,
    connection,
    from_global_id,
    relation_to_self,
    ticket_nodes,
    user_node,
)


@strawberry.input(description="Narrow a ticket list; every condition must hold.")
class TicketFilterInput:
    status: TicketStatusEnum | None = None  # type: ignore[valid-type]
    assignee_id: strawberry.ID | None = None
    requester_id: strawberry.ID | None = None
    unassigned: bool = False


@strawberry.input(description="Narrow the account directory.")
class UserFilterInput:
    role: RoleEnum | None = None  # type: ignore[valid-type]
    status: UserStatusEnum | None = None  # type: ignore[valid-type]


def _ticket_filter(given: TicketFilterInput | None) -> TicketFilter:
    if given is None:
        return TicketFilter()
    assignee = (
        from_global_id(given.assignee_id, "User", "assigneeId") if given.assignee_id else None
    )
    requester = (
        from_global_id(given.requester_id, "User", "requesterId") if given.requester_id else None
    )
    return TicketFilter(
        status=given.status,
        assignee_id=assignee[1] if assignee else None,
        requester_id=requester[1] if requester else None,
        unassigned=given.unassigned,
    )


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in account, or null when anonymous.")
    async def me(self, info: Info) -> UserType | None:
        return await user_node(info, info.context.principal.user_id)

    @strawberry.field(description="Any object by its global id, if you may reach it.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        try:
            type_name, ident = from_global_id(id)
        except DomainError as error:
            raise from_domain(error) from None
        principal = info.context.principal
        found = await nodes.get_node(principal, type_name, ident)
        if found is None:
            raise not_found()
        me = principal.user_id
        if isinstance(found, User):
            return await user_node(info, found.id)
        if isinstance(found, Ticket):
            (ticket,) = await ticket_nodes(info, [found])
            return ticket
        if isinstance(found, TicketMessage):
            return TicketMessageType(model=found, relation=relation_to_self(me, None))
        if isinstance(found, PrivacyRequest):
            owner = found.subject_id  # type: ignore[attr-defined]
            return PrivacyRequestType(model=found, relation=relation_to_self(me, owner))
        if isinstance(found, SignInSession):
            owner = found.user_id  # type: ignore[attr-defined]
            return SignInType(
                model=found,
                relation=relation_to_self(me, owner),
                current_session=principal.session_id,
            )
        if isinstance(found, ExternalIdentity):
            owner = found.user_id  # type: ignore[attr-defined]
            return LinkedIdentityType(model=found, relation=relation_to_self(me, owner))
        if isinstance(found, PaymentMethod):
            owner = found.user_id  # type: ignore[attr-defined]
            return PaymentMethodType(model=found, relation=relation_to_self(me, owner))
        raise not_found()

    @strawberry.field(description="Tickets you may read, newest first (at most 100 a page).")
    async def tickets(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: TicketFilterInput | None = None,
    ) -> Connection[TicketType]:
        principal = info.context.principal
        try:
            where = _ticket_filter(filter)
            page = await tickets.list_tickets(principal, first=first, after=after, where=where)
        except DomainError as error:
            raise from_domain(error) from None
        nodes_ = await ticket_nodes(info, page.items)
        return connection(page, nodes_)

    @strawberry.field(description="The account directory (staff with the directory scope).")
    async def users(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: UserFilterInput | None = None,
    ) -> Connection[UserType]:
        principal = info.context.principal
        try:
            page = await users.list_users(
                principal,
                first=first,
                after=after,
                role=filter.role if filter else None,
                status=filter.status if filter else None,
            )
        except DomainError as error:
            raise from_domain(error) from None
        loaders = info.context.loaders
        for person in page.items:
            loaders.users.prime(person.id, person)
        relations = await loaders.relations.load_many([person.id for person in page.items])
        nodes_ = [
            UserType(model=person, relation=relation)
            for person, relation in zip(page.items, relations, strict=True)
        ]
        return connection(page, nodes_)

    @strawberry.field(description="Your current decision for each consent purpose.")
    async def my_consents(self, info: Info) -> list[ConsentState]:
        try:
            states = await consents.my_consents(info.context.principal)
        except DomainError as error:
            raise from_domain(error) from None
        return [
            ConsentState(
                purpose=state.purpose,
                granted=state.granted,
                policy_version=state.policy_version,
                updated_at=state.updated_at,
                owner=info.context.principal.user_id,
            )
            for state in states
        ]

    @strawberry.field(description="Your consent ledger, newest first (last 100 entries).")
    async def my_consent_ledger(self, info: Info) -> list[ConsentEntryType]:
        principal = info.context.principal
        try:
            entries = await consents.my_consent_ledger(principal)
        except DomainError as error:
            raise from_domain(error) from None
        mine = relation_to_self(principal.user_id, principal.user_id)
        return [ConsentEntryType(model=entry, relation=mine) for entry in entries]

    @strawberry.field(description="Your privacy requests, newest first.")
    async def my_privacy_requests(self, info: Info) -> list[PrivacyRequestType]:
        principal = info.context.principal
        try:
            requests = await privacy_requests.my_privacy_requests(principal)
        except DomainError as error:
            raise from_domain(error) from None
        mine = relation_to_self(principal.user_id, principal.user_id)
        return [PrivacyRequestType(model=request, relation=mine) for request in requests]

    @strawberry.field(
        description="Who accessed or changed your personal data: roles and times, newest first."
    )
    async def my_data_accesses(self, info: Info, first: int = 50) -> list[AuditEntryType]:
        principal = info.context.principal
        try:
            events = await audit_trail.accesses_to_my_data(principal, first)
        except DomainError as error:
            raise from_domain(error) from None
        return [audit_entry(principal.user_id, event) for event in events]

    @strawberry.field(description="Every audit record about one person (privacy officer).")
    async def audit_trail(
        self, info: Info, subject_id: strawberry.ID, first: int = 50
    ) -> list[AuditEntryType]:
        principal = info.context.principal
        try:
            _, subject = from_global_id(subject_id, "User", "subjectId")
            events = await audit_trail.audit_trail(principal, subject, first)
        except DomainError as error:
            raise from_domain(error) from None
        return [audit_entry(principal.user_id, event) for event in events]

    @strawberry.field(description="What OCIS told you (sign-in changes and more), newest first.")
    async def my_notices(
        self, info: Info, first: int = 20, unread_only: bool = False
    ) -> list[NoticeType]:
        principal = info.context.principal
        try:
            found = await accounts.my_notices(principal, first, unread_only)
        except DomainError as error:
            raise from_domain(error) from None
        mine = relation_to_self(principal.user_id, principal.user_id)
        contact = info.context.privacy_contact
        return [NoticeType(model=notice, contact=contact, relation=mine) for notice in found]

    @strawberry.field(description="Where to write to exercise your privacy rights.")
    def privacy_contact(self, info: Info) -> str:
        return info.context.privacy_contact
