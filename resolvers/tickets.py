"""Support tickets: listing, opening, replying, assigning and moving through statuses."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pypika_tortoise.analytics import RowNumber
from pypika_tortoise.terms import Field
from redis.asyncio import Redis
from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import scoping
from auth.policy import may_filter
from auth.principal import Principal
from auth.relations import requester_of
from auth.scopes import Scope, is_staff_account
from models import (
    Channel,
    Ticket,
    TicketMessage,
    TicketPriority,
    TicketStatus,
    User,
    UserStatus,
    crypto,
)
from models.rows import columns_of, fetch_rows, rows_of
from privacy import audit, walk_ins
from privacy.audit_actions import AuditAction
from resolvers import live, queues, validation
from resolvers.errors import InvalidInput, NotAllowed, NotFound
from resolvers.pagination import Page, after_clause, page_size, paginate
from resolvers.ticket_notices import tell_requester
from resolvers.users import require_user
from settings import Routing

NO_ROUTING = Routing()
MAX_SUBJECT = 200
MAX_BODY = 20_000
# The channels a customer opens tickets through; EMAIL is staff opening one for a mail.
CUSTOMER_CHANNELS = frozenset({Channel.WEB, Channel.MOBILE})


@dataclass(frozen=True, slots=True)
class TicketFilter:
    status: TicketStatus | None = None
    assignee_id: UUID | None = None
    requester_id: UUID | None = None
    unassigned: bool = False


async def list_tickets(
    principal: Principal,
    *,
    first: int | None,
    after: str | None,
    where: TicketFilter,
    rows: bool = False,
) -> Page[Ticket]:
    """A page of the tickets the caller may read, newest first (`rows`: read as rows without
    ORM instances, models/rows.py)."""
    used = {
        "status": where.status is not None,
        "assignee": where.unassigned or where.assignee_id is not None,
        "requester": where.requester_id is not None,
    }
    for name in (name for name, given in used.items() if given):
        if not may_filter("Ticket", name, principal):
            raise NotAllowed(f"Filtering tickets by {name} needs the right to read it.")
    query = scoping.readable_tickets(principal)
    if where.status is not None:
        query = query.filter(status=where.status)
    if where.unassigned:
        query = query.filter(assignee_id__isnull=True)
    elif where.assignee_id is not None:
        query = query.filter(assignee_id=where.assignee_id)
    if where.requester_id is not None:
        query = query.filter(requester_id=where.requester_id)
    return await paginate(
        query, first=first, after=after, newest_first=True, read=fetch_rows if rows else None
    )


async def get_ticket(principal: Principal, ticket_id: UUID) -> Ticket:
    ticket = await scoping.readable_tickets(principal).get_or_none(id=ticket_id)
    if ticket is None:
        raise NotFound("No such ticket.", field="ticketId")
    return ticket


@dataclass(frozen=True, slots=True)
class OnBehalfOf:
    """A requester known only by email, for tickets staff open from the email channel."""

    email: str
    name: str | None = None


async def create_ticket(
    principal: Principal,
    *,
    subject: str,
    body: str,
    priority: TicketPriority = TicketPriority.NORMAL,
    channel: Channel = Channel.WEB,
    on_behalf_of: OnBehalfOf | None = None,
    routing: Routing = NO_ROUTING,
) -> Ticket:
    """Open a ticket as its requester, or as staff for someone who wrote in by email."""
    author_id = require_user(principal)
    if not principal.is_staff:
        if priority != TicketPriority.NORMAL:
            raise InvalidInput("Staff set a ticket's priority.", field="priority")
        if channel not in CUSTOMER_CHANNELS:
            raise InvalidInput("Tickets you open come from the web or the app.", field="channel")
    subject = validation.text(subject, "subject", max_length=MAX_SUBJECT)
    body = validation.text(body, "body", max_length=MAX_BODY, multiline=True)
    ticket = Ticket(subject=subject, priority=priority, channel=channel)
    # On someone's behalf the requester's details wait for a step the opener does not control.
    ticket.awaiting_requester = on_behalf_of is not None
    walk_in: tuple[str, str | None] | None = None
    if on_behalf_of is None:
        ticket.requester_id = author_id
    else:
        if not principal.has(Scope.TICKETS_WORK):
            raise NotAllowed("Only staff open tickets for someone else.", field="requesterEmail")
        email = validation.email(on_behalf_of.email, "requesterEmail")
        name = (
            validation.text(on_behalf_of.name, "requesterName", max_length=200)
            if on_behalf_of.name
            else None
        )
        index = crypto.blind_index(email)
        account = await User.get_or_none(email_index=index).only("id")
        if account is not None:
            ticket.requester_id = account.id
        else:
            walk_in = (email, name)
            ticket.requester_email = email
            ticket.requester_name = name
            ticket.requester_email_index = index
    ticket.team_id = await queues.team_for_new_ticket(principal, channel, routing)
    message = TicketMessage(ticket_id=ticket.id, author_id=author_id, body=body, internal=False)
    async with in_transaction():
        if walk_in is not None:
            ticket.walk_in_id = (await walk_ins.walk_in_for(*walk_in)).id
        await ticket.save()
        await message.save()
        await audit.record(
            principal,
            action=AuditAction.TICKET_CREATE,
            entity="Ticket",
            entity_id=ticket.id,
            subject_id=requester_of(ticket),
            field_names=[
                "Ticket.subject",
                "TicketMessage.body",
                *(["Ticket.requesterEmail"] if on_behalf_of else []),
            ],
        )
    return ticket


async def add_message(
    principal: Principal,
    *,
    ticket_id: UUID,
    body: str,
    internal: bool,
    store: Redis | None = None,
) -> TicketMessage:
    """A public reply or, for staff, an internal note that never reaches the customer
    (live subscribers are told through `store` once it has committed)."""
    author_id = require_user(principal)
    body = validation.text(body, "body", max_length=MAX_BODY, multiline=True)
    if internal and not principal.has(Scope.NOTES_INTERNAL):
        raise NotAllowed("Only staff can write internal notes.", field="internal")
    async with in_transaction():
        ticket = (
            await scoping.readable_tickets(principal).select_for_update().get_or_none(id=ticket_id)
        )
        if ticket is None:
            raise NotFound("No such ticket.", field="ticketId")
        if ticket.status == TicketStatus.CLOSED:
            raise InvalidInput("This ticket is closed; open a new one.", field="ticketId")
        message = TicketMessage(ticket=ticket, author_id=author_id, body=body, internal=internal)
        await message.save()
        is_requester = ticket.requester_id == author_id
        if is_requester and ticket.status in (TicketStatus.PENDING, TicketStatus.SOLVED):
            ticket.status = TicketStatus.OPEN
        if is_requester:
            ticket.awaiting_requester = False
        await ticket.save(update_fields=["status", "awaiting_requester", "updated_at"])
        if not internal:
            await tell_requester(ticket, author_id, "ticket.replied", message=str(message.id))
        await audit.record(
            principal,
            action=AuditAction.TICKET_NOTE if internal else AuditAction.TICKET_REPLY,
            entity="Ticket",
            entity_id=ticket.id,
            subject_id=requester_of(ticket),
            field_names=["TicketMessage.body"],
        )
    await live.publish_ticket_event(
        store, live.TicketEvent(live.MESSAGE, ticket.id, ticket.requester_id, message.id)
    )
    return message


async def assign_ticket(
    principal: Principal,
    *,
    ticket_id: UUID,
    assignee_id: UUID | None,
    store: Redis | None = None,
) -> Ticket:
    """Give a ticket to a staff member (or back to the queue); needs the assign scope."""
    if not principal.has(Scope.TICKETS_ASSIGN):
        raise NotAllowed("Assigning tickets needs the assign scope.")
    assignee = None
    if assignee_id is not None:
        assignee = await User.get_or_none(id=assignee_id, status=UserStatus.ACTIVE).only(
            "id", "roles", "team_id"
        )
        if assignee is None or not is_staff_account(assignee.roles):
            raise InvalidInput("Assign tickets to an active staff member.", field="assigneeId")
    async with in_transaction():
        ticket = (
            await scoping.readable_tickets(principal).select_for_update().get_or_none(id=ticket_id)
        )
        if ticket is None:
            raise NotFound("No such ticket.", field="ticketId")
        if not principal.has(Scope.TICKETS_ALL):
            _lead_assigns_within_team(principal, ticket, assignee)
        ticket.assignee_id = assignee.id if assignee else None
        fields = ["assignee_id", "updated_at"]
        if ticket.awaiting_requester and await _grants_need_to_know(principal, ticket, assignee):
            ticket.awaiting_requester = False
            fields.append("awaiting_requester")
        if assignee is not None and assignee.team_id is not None:
            ticket.team_id = assignee.team_id
            fields.append("team_id")
        await ticket.save(update_fields=fields)
        await audit.record(
            principal,
            action=AuditAction.TICKET_ASSIGN,
            entity="Ticket",
            entity_id=ticket.id,
            subject_id=requester_of(ticket),
            field_names=["Ticket.assignee"],
        )
    await live.publish_ticket_event(
        store, live.TicketEvent(live.ASSIGNMENT, ticket.id, ticket.requester_id)
    )
    return ticket


def _lead_assigns_within_team(principal: Principal, ticket: Ticket, assignee: User | None) -> None:
    """A lead assigns their own team's tickets, to members of that team."""
    if not principal.leads(ticket.team_id):
        raise NotAllowed("A lead assigns only their own team's tickets.", field="ticketId")
    if assignee is not None and assignee.team_id != ticket.team_id:
        raise NotAllowed("A lead assigns only to members of the ticket's team.", field="assigneeId")


async def _grants_need_to_know(principal: Principal, ticket: Ticket, assignee: User | None) -> bool:
    """Assigning grants need-to-know unless the assigner opened the ticket or takes it."""
    if assignee is None or assignee.id == principal.user_id:
        return False
    opening = await TicketMessage.filter(ticket_id=ticket.id).order_by("created_at", "id").first()
    opener = opening.author_id if opening else None
    return opener is not None and opener != principal.user_id


_CUSTOMER_TARGETS = frozenset({TicketStatus.CLOSED})


async def change_ticket_status(
    principal: Principal,
    *,
    ticket_id: UUID,
    status: TicketStatus,
    store: Redis | None = None,
) -> Ticket:
    """Move a ticket through open, pending, solved and closed; closed is final."""
    user_id = require_user(principal)
    async with in_transaction():
        ticket = (
            await scoping.readable_tickets(principal).select_for_update().get_or_none(id=ticket_id)
        )
        if ticket is None:
            raise NotFound("No such ticket.", field="ticketId")
        works_it = principal.is_staff
        owns_it = ticket.requester_id == user_id
        if not works_it and not (owns_it and status in _CUSTOMER_TARGETS):
            raise NotAllowed("You may only close your own ticket.", field="status")
        if ticket.status == TicketStatus.CLOSED:
            raise InvalidInput("A closed ticket cannot change status.", field="status")
        if ticket.status == status:
            raise InvalidInput(f"The ticket is already {status.value}.", field="status")
        ticket.status = status
        ticket.closed_at = datetime.now(UTC) if status == TicketStatus.CLOSED else None
        await ticket.save(update_fields=["status", "closed_at", "updated_at"])
        await tell_requester(ticket, user_id, "ticket.status_changed", status=status.value)
        await audit.record(
            principal,
            action=AuditAction.TICKET_STATUS,
            entity="Ticket",
            entity_id=ticket.id,
            subject_id=requester_of(ticket),
            field_names=["Ticket.status"],
        )
    await live.publish_ticket_event(
        store, live.TicketEvent(live.STATUS, ticket.id, ticket.requester_id)
    )
    return ticket


async def load_ticket_requesters(principal: Principal, ticket_ids: list[UUID]) -> list[UUID | None]:
    """Batch: whom each readable ticket is about (its requester's account or walk-in)."""
    rows = (
        await scoping.readable_tickets(principal)
        .filter(id__in=ticket_ids)
        .values_list("id", "requester_id", "walk_in_id")
    )
    about = {
        _uuid(ident): _uuid(account or walk_in)
        for ident, account, walk_in in rows
        if account or walk_in
    }
    return [about.get(ident) for ident in ticket_ids]


async def load_message_pages(
    principal: Principal, keys: list[tuple[UUID, int | None, str | None]]
) -> list[Page[TicketMessage]]:
    """Batch: a page of readable messages per (ticket, first, after), two queries per page shape.

    The page is cut in SQL, per ticket, by row number: only the page's rows (and one position
    more, to know whether there is a next page) leave the database, and only the page's are
    loaded and decrypted, however long the thread.
    """
    by_shape: dict[tuple[int | None, str | None], set[UUID]] = defaultdict(set)
    for ticket_id, first, after in keys:
        by_shape[(first, after)].add(ticket_id)
    pages: dict[tuple[UUID, int | None, str | None], Page[TicketMessage]] = {}
    for (first, after), ticket_ids in by_shape.items():
        size = page_size(first)
        positions = await _page_positions(
            scoping.readable_messages(principal, on=list(ticket_ids)).filter(
                after_clause(after, "TicketMessage", newest_first=False)
            ),
            size + 1,
        )
        wanted = [ident for ident, (_, position) in positions.items() if position <= size]
        more = {ticket for (ticket, position) in positions.values() if position > size}
        grouped: dict[UUID, list[TicketMessage]] = defaultdict(list)
        if wanted:
            rows = await scoping.readable_messages(principal, on=list(ticket_ids)).filter(
                id__in=wanted
            )
            for message in sorted(rows, key=lambda row: (row.created_at, row.id)):
                grouped[message.ticket_id].append(message)
        for ticket_id in ticket_ids:
            pages[(ticket_id, first, after)] = Page(grouped.get(ticket_id, []), ticket_id in more)
    return [pages[key] for key in keys]


async def load_message_rows(
    principal: Principal, keys: list[tuple[UUID, int | None, str | None]]
) -> list[Page[TicketMessage]]:
    """`load_message_pages` without ORM instances, for compiled plans: each page shape in one
    statement (the same scoping, the same per-thread cut by row number), read as rows
    (models/rows.py), bodies opened only where read."""
    by_shape: dict[tuple[int | None, str | None], set[UUID]] = defaultdict(set)
    for ticket_id, first, after in keys:
        by_shape[(first, after)].add(ticket_id)
    pages: dict[tuple[UUID, int | None, str | None], Page[TicketMessage]] = {}
    db = TicketMessage._choose_db()
    columns = columns_of(TicketMessage)
    for (first, after), ticket_ids in by_shape.items():
        size = page_size(first)
        messages = scoping.readable_messages(principal, on=list(ticket_ids)).filter(
            after_clause(after, "TicketMessage", newest_first=False)
        )
        _, records = await db.execute_query(*_numbered(messages, columns, size + 1))
        ordered = sorted(records, key=lambda record: int(record["position"]))
        rows = await rows_of(TicketMessage, db, [r for r in ordered if int(r["position"]) <= size])
        grouped: dict[UUID, list[TicketMessage]] = defaultdict(list)
        for row in rows:
            grouped[row.ticket_id].append(row)
        more = {str(r["ticket_id"]) for r in ordered if int(r["position"]) > size}
        for ticket_id in ticket_ids:
            pages[(ticket_id, first, after)] = Page(
                grouped.get(ticket_id, []), str(ticket_id) in more
            )
    return [pages[key] for key in keys]


def _numbered(
    messages: QuerySet[TicketMessage], columns: Sequence[str], limit: int
) -> tuple[str, list[Any]]:
    """The SQL of the first `limit` messages of each thread: `columns` and their position."""
    table = TicketMessage._meta.basetable
    numbered = messages.annotate(
        position=RowNumber().over(table.ticket_id).orderby(table.created_at, table.id)
    ).values(*columns, "position")
    db = TicketMessage._meta.db
    page = (
        db.query_class.from_(Subquery(numbered).as_("numbered"))
        .select(*(Field(column) for column in (*columns, "position")))
        .where(Field("position") <= limit)
    )
    sql, values = page.get_parameterized_sql()
    return sql, list(values)


async def _page_positions(
    messages: QuerySet[TicketMessage], limit: int
) -> dict[UUID, tuple[UUID, int]]:
    """Message id to (ticket id, position in its thread) for the first `limit` of each thread."""
    db = TicketMessage._meta.db
    _, rows = await db.execute_query(*_numbered(messages, ("id", "ticket_id"), limit))
    return {_uuid(row["id"]): (_uuid(row["ticket_id"]), int(row["position"])) for row in rows}


def _uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
