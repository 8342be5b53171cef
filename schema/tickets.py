"""Support tickets and their messages: types, the ticket list, and the ticket mutations."""

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry

from auth import rate_limit
from auth.policy import Relation
from auth.principal import Principal
from auth.relations import (
    person_in,
    relation_on_ticket,
    relation_to_row,
    relation_to_walk_in,
    requester_of,
    subject_of,
)
from models import Ticket, TicketMessage
from resolvers import tickets
from resolvers.pagination import Page, decode_cursor, page_size
from resolvers.tickets import OnBehalfOf, TicketFilter
from schema.attributes import attribute
from schema.context import Info
from schema.enums import Channel, TicketPriority, TicketStatus
from schema.errors import MutationError, RateLimitedError, coded_errors, refusal
from schema.need_to_know import personal_data
from schema.relay import Connection, Node, connection, from_global_id, to_global_id
from schema.users import UserType, user_node


@personal_data
@strawberry.type(name="Ticket", description="A support ticket.")
class TicketType(Node):
    model: strawberry.Private[Ticket]
    relation: strawberry.Private[Relation]
    subject: str | None = attribute()
    status: TicketStatus | None = attribute()
    priority: TicketPriority | None = attribute()
    channel: Channel | None = attribute()
    requester_name: str | None = attribute("Name of a requester known only by email.")
    requester_email: str | None = attribute("Email of a requester known only by email.")
    created_at: datetime | None = attribute()
    updated_at: datetime | None = attribute()
    closed_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return requester_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Ticket", self.model.id)

    @strawberry.field(description="The registered account that opened the ticket, if any.")
    async def requester(self, info: Info) -> UserType | None:
        return await user_node(info, subject_of(self.model))

    @strawberry.field
    async def assignee(self, info: Info) -> UserType | None:
        return await user_node(info, person_in(self.model, "assignee_id"))

    @strawberry.field(description="Public replies, and internal notes for staff, oldest first.")
    @coded_errors
    async def messages(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> "Connection[TicketMessageType] | None":
        page_size(first)
        if after is not None:
            decode_cursor(after, "TicketMessage")
        page = await info.context.loaders.message_pages.load((self.model.id, first, after))
        return connection(page, message_nodes(info.context.principal, self.model, page))


def message_nodes(
    principal: Principal, ticket: Ticket, page: Page[TicketMessage]
) -> "list[TicketMessageType]":
    """A page of a ticket's messages, each with the caller's relation to its author."""
    requester = requester_of(ticket)
    return [
        TicketMessageType(
            model=message, relation=relation_to_row(principal, message), requester_id=requester
        )
        for message in page.items
    ]


async def ticket_nodes(info: Info, rows: Sequence[Ticket]) -> list[TicketType]:
    """Tickets with the caller's relation to each requester.

    A requester is judged as a person: any ticket of theirs the caller works, found by
    account for registered requesters and by the email's blind index for the others.
    """
    requesters = [subject_of(ticket) for ticket in rows]
    known = [ident for ident in dict.fromkeys(requesters) if ident is not None]
    loaders = info.context.loaders
    relations = dict(zip(known, await loaders.relations.load_many(known), strict=True))
    walk_ins = list(
        dict.fromkeys(t.requester_email_index for t in rows if t.requester_email_index is not None)
    )
    worked = dict(zip(walk_ins, await loaders.walk_ins.load_many(walk_ins), strict=True))
    nodes = []
    for ticket, requester in zip(rows, requesters, strict=True):
        if requester is not None:
            relation = relations[requester]
        else:
            index = ticket.requester_email_index
            relation = relation_to_walk_in(bool(index and worked.get(index)))
        nodes.append(TicketType(model=ticket, relation=relation_on_ticket(ticket, relation)))
    return nodes


@personal_data
@strawberry.type(name="TicketMessage", description="A reply or an internal note.")
class TicketMessageType(Node):
    # On a compiled plan, a row read without the ORM (models/rows.py).
    model: strawberry.Private[TicketMessage]
    relation: strawberry.Private[Relation]
    # Whom the ticket is about: a message is their data as well as its author's.
    requester_id: strawberry.Private[UUID | None]
    body: str | None = attribute()
    internal: bool | None = attribute("True for a staff-only note; customers never receive these.")
    created_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @property
    def also_about(self) -> tuple[UUID | None]:
        return (self.requester_id,)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("TicketMessage", self.model.id)

    @strawberry.field
    async def author(self, info: Info) -> UserType | None:
        return await user_node(info, subject_of(self.model))


async def message_node(info: Info, message: TicketMessage) -> TicketMessageType:
    """A message reached without its ticket's page: its ticket's requester is looked up."""
    requester = await info.context.loaders.ticket_requesters.load(message.ticket_id)
    relation = relation_to_row(info.context.principal, message)
    return TicketMessageType(model=message, relation=relation, requester_id=requester)


@strawberry.input(description="Narrow a ticket list; every condition must hold.")
class TicketFilterInput:
    status: TicketStatus | None = None
    assignee_id: strawberry.ID | None = None
    requester_id: strawberry.ID | None = None
    unassigned: bool = False


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


@strawberry.input
class CreateTicketInput:
    subject: str
    body: str
    priority: TicketPriority = strawberry.field(
        default=TicketPriority.NORMAL,
        description="Only staff set it; everyone else's tickets are NORMAL.",
    )
    channel: Channel = strawberry.field(
        default=Channel.WEB,
        description="Only staff open tickets from EMAIL; others use WEB or MOBILE.",
    )
    requester_email: str | None = strawberry.field(
        default=None,
        description=(
            "Staff only: open the ticket for someone who wrote in. Until they write on it or"
            " someone other than you assigns it, the ticket tells you nothing about them, not"
            " even whether the address has an account; they and account admins see it all."
        ),
    )
    requester_name: str | None = None


@strawberry.type
class TicketSuccess:
    ticket: TicketType


CreateTicketResult = Annotated[
    TicketSuccess | RateLimitedError | MutationError, strawberry.union("CreateTicketResult")
]
AssignTicketResult = Annotated[
    TicketSuccess | MutationError, strawberry.union("AssignTicketResult")
]
ChangeTicketStatusResult = Annotated[
    TicketSuccess | MutationError, strawberry.union("ChangeTicketStatusResult")
]


@strawberry.input
class AddMessageInput:
    ticket_id: strawberry.ID
    body: str
    internal: bool = strawberry.field(default=False, description="Staff-only note when true.")


@strawberry.type
class AddMessageSuccess:
    message: TicketMessageType


AddMessageResult = Annotated[
    AddMessageSuccess | RateLimitedError | MutationError, strawberry.union("AddMessageResult")
]


@strawberry.input
class AssignTicketInput:
    ticket_id: strawberry.ID
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="Null returns the ticket to its team's queue."
    )


@strawberry.input
class ChangeTicketStatusInput:
    ticket_id: strawberry.ID
    status: TicketStatus


async def ticket_success(info: Info, ticket: Ticket) -> TicketSuccess:
    (node,) = await ticket_nodes(info, [ticket])
    return TicketSuccess(ticket=node)


async def _over_limit(
    info: Info, attempt: Callable[..., Awaitable[rate_limit.Decision]]
) -> RateLimitedError | None:
    """Counted per signed-in account; anonymous callers are refused by the use case."""
    context = info.context
    account = context.principal.user_id
    if context.store is None or account is None:
        return None
    return refusal(info, await attempt(context.store, account=str(account)))


@strawberry.type
class TicketsQuery:
    @strawberry.field(description="Tickets you may read, newest first (at most 100 a page).")
    @coded_errors
    async def tickets(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: TicketFilterInput | None = None,
    ) -> Connection[TicketType]:
        where = _ticket_filter(filter)
        page = await tickets.list_tickets(
            info.context.principal, first=first, after=after, where=where, rows=info.context.rows
        )
        return connection(page, await ticket_nodes(info, page.items))


@strawberry.type
class TicketsMutation:
    @strawberry.mutation(description="Open a support ticket with its first message.")
    async def create_ticket(self, info: Info, input: CreateTicketInput) -> CreateTicketResult:
        if (refused := await _over_limit(info, rate_limit.ticket_attempt)) is not None:
            return refused
        ticket = await tickets.create_ticket(
            info.context.principal,
            subject=input.subject,
            body=input.body,
            priority=input.priority,
            channel=input.channel,
            on_behalf_of=OnBehalfOf(input.requester_email, input.requester_name)
            if input.requester_email is not None
            else None,
            routing=info.context.routing,
        )
        return await ticket_success(info, ticket)

    @strawberry.mutation(description="Reply on a ticket, or add a staff-only internal note.")
    async def add_message(self, info: Info, input: AddMessageInput) -> AddMessageResult:
        if (refused := await _over_limit(info, rate_limit.reply_attempt)) is not None:
            return refused
        _, ticket_id = from_global_id(input.ticket_id, "Ticket", "ticketId")
        principal = info.context.principal
        message = await tickets.add_message(
            principal,
            ticket_id=ticket_id,
            body=input.body,
            internal=input.internal,
            store=info.context.store,
        )
        return AddMessageSuccess(message=await message_node(info, message))

    @strawberry.mutation(description="Assign a ticket to a staff member, or unassign it.")
    async def assign_ticket(self, info: Info, input: AssignTicketInput) -> AssignTicketResult:
        _, ticket_id = from_global_id(input.ticket_id, "Ticket", "ticketId")
        assignee_id = (
            from_global_id(input.assignee_id, "User", "assigneeId")[1]
            if input.assignee_id
            else None
        )
        ticket = await tickets.assign_ticket(
            info.context.principal,
            ticket_id=ticket_id,
            assignee_id=assignee_id,
            store=info.context.store,
        )
        return await ticket_success(info, ticket)

    @strawberry.mutation(description="Move a ticket to another status.")
    async def change_ticket_status(
        self, info: Info, input: ChangeTicketStatusInput
    ) -> ChangeTicketStatusResult:
        _, ticket_id = from_global_id(input.ticket_id, "Ticket", "ticketId")
        ticket = await tickets.change_ticket_status(
            info.context.principal,
            ticket_id=ticket_id,
            status=input.status,
            store=info.context.store,
        )
        return await ticket_success(info, ticket)
