"""Queues and routing: which team a ticket belongs to, each team's queue, and counts by status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from uuid import UUID

from redis.asyncio import Redis
from tortoise.expressions import Case, F, Q, RawSQL, When
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import scoping
from auth.principal import Principal
from auth.scopes import Scope
from models import Channel, Role, Team, Ticket, TicketPriority, TicketStatus, User
from privacy import audit
from privacy.audit_actions import AuditAction
from resolvers import live
from resolvers.errors import InvalidInput, NotAllowed, NotFound
from resolvers.pagination import Page, open_position, page_size, seal_position
from resolvers.users import require_user
from settings import Routing

logger = logging.getLogger("ocis.queues")

# Most urgent first; a queue shows unassigned tickets before assigned ones, each by priority.
PRIORITY_ORDER = (
    TicketPriority.URGENT,
    TicketPriority.HIGH,
    TicketPriority.NORMAL,
    TicketPriority.LOW,
)
TEAM_ONLY = "Only the team's members, its lead and administrators see this."
QUEUE_KIND = "TicketQueue"
MY_OPEN_KIND = "MyOpenTickets"


async def team_for_new_ticket(
    principal: Principal, channel: Channel, routing: Routing
) -> UUID | None:
    """The team a new ticket joins: its channel's, else the default team, by name.

    A configured name with no team behind it is skipped (logged); when no configured
    name finds a team the ticket joins none, and only administrators see it until moved.
    Without routing for the channel: the opener's team, else the oldest team, as before.
    """
    names = routing.teams_for(channel.value)
    active = Team.filter(archived_at__isnull=True)
    if not names:
        if principal.team_id is not None and await active.filter(id=principal.team_id).exists():
            return principal.team_id
        oldest = await active.order_by("created_at").only("id").first()
        return oldest.id if oldest else None
    # An archived team takes no new tickets: routing skips it like a missing one.
    found = dict(await active.filter(name__in=names).values_list("name", "id"))
    for name in names:
        if name in found:
            if name != names[0]:
                logger.warning("routing: no team named %r; the ticket joins %r", names[0], name)
            return UUID(str(found[name]))
    logger.warning("routing: no team named %s; the ticket joins no team", " or ".join(names))
    return None


async def missing_routed_teams(routing: Routing) -> list[str]:
    """The team names the routing configuration names that no team has (logged at start)."""
    names = {
        *routing.by_channel.values(),
        *([routing.default_team] if routing.default_team else []),
    }
    if not names:
        return []
    found = set(
        await Team.filter(name__in=sorted(names), archived_at__isnull=True).values_list(
            "name", flat=True
        )
    )
    missing = sorted(names - found)
    if missing:
        logger.warning(
            "routing names teams that do not exist yet: %s; tickets routed to them join the"
            " next configured team, else none",
            ", ".join(missing),
        )
    return missing


def queue_rank(ticket: Ticket) -> int:
    """A ticket's place in a queue before its age: unassigned first, then most urgent."""
    assigned = 0 if ticket.assignee_id is None else len(PRIORITY_ORDER)
    return assigned + PRIORITY_ORDER.index(ticket.priority)


def _number(value: int) -> F:
    """An integer written into the SQL: as a parameter PostgreSQL would type it as text."""
    # Tortoise resolves any expression here; its annotation names fewer kinds than it takes.
    return cast(F, RawSQL(str(int(value))))


def _rank() -> Case:
    """queue_rank in SQL."""
    return Case(
        *(
            When(
                Q(assignee_id__isnull=unassigned),
                priority=priority,
                then=_number(offset + position),
            )
            for offset, unassigned in ((0, True), (len(PRIORITY_ORDER), False))
            for position, priority in enumerate(PRIORITY_ORDER)
        ),
        default=_number(2 * len(PRIORITY_ORDER)),
    )


def _queue_cursor(kind: str) -> Callable[[Ticket], str]:
    def cursor_of(ticket: Ticket) -> str:
        return seal_position(
            kind, [queue_rank(ticket), ticket.created_at.isoformat(), str(ticket.id)]
        )

    return cursor_of


def _after_position(cursor: str | None, kind: str) -> Q:
    """Tickets strictly after the cursor in (rank, created_at, id) order."""
    if cursor is None:
        return Q()
    try:
        rank, created, ident = open_position(cursor, kind)
        rank, when, after_id = int(rank), datetime.fromisoformat(created), UUID(ident)
    except (TypeError, ValueError) as error:
        raise InvalidInput("This cursor is not one this API issued.", field="after") from error
    return (
        Q(queue_rank__gt=rank)
        | Q(queue_rank=rank, created_at__gt=when)
        | Q(queue_rank=rank, created_at=when, id__gt=after_id)
    )


async def _queue_page(
    query: QuerySet[Ticket], *, first: int | None, after: str | None, kind: str
) -> Page[Ticket]:
    size = page_size(first)
    clause = _after_position(after, kind)
    rows = (
        await query.annotate(queue_rank=_rank())
        .filter(clause)
        .order_by("queue_rank", "created_at", "id")
        .limit(size + 1)
    )
    return Page(rows[:size], len(rows) > size, cursor_of=_queue_cursor(kind))


async def _require_team_view(principal: Principal, team_id: UUID) -> None:
    """A team's members and lead see its queue; administrators any existing team's."""
    require_user(principal)
    if principal.has(Scope.TICKETS_ALL):
        if not await Team.exists(id=team_id):
            raise NotFound("No such team.", field="teamId")
        return
    if not principal.works_in(team_id):
        raise NotAllowed(TEAM_ONLY, field="teamId")


async def team_queue(
    principal: Principal, *, team_id: UUID, first: int | None, after: str | None
) -> Page[Ticket]:
    """A team's open and pending tickets: unassigned first, then most urgent, then oldest."""
    page_size(first)
    await _require_team_view(principal, team_id)
    query = scoping.readable_tickets(principal).filter(
        team_id=team_id, status__in=scoping.QUEUE_STATUSES
    )
    return await _queue_page(query, first=first, after=after, kind=QUEUE_KIND)


async def my_open_tickets(
    principal: Principal, *, first: int | None, after: str | None
) -> Page[Ticket]:
    """The tickets assigned to the caller that are not closed, most urgent then oldest first."""
    user_id = require_user(principal)
    page_size(first)
    if not principal.has(Scope.TICKETS_WORK):
        raise NotAllowed("Only staff have tickets assigned to them.")
    query = (
        scoping.readable_tickets(principal)
        .filter(assignee_id=user_id)
        .exclude(status=TicketStatus.CLOSED)
    )
    return await _queue_page(query, first=first, after=after, kind=MY_OPEN_KIND)


@dataclass(frozen=True, slots=True)
class TeamCounts:
    team_id: UUID
    by_status: dict[TicketStatus, int]


async def ticket_counts(principal: Principal, team_id: UUID | None) -> list[TeamCounts]:
    """Tickets by status for one team, or for every team one may count, in one statement.

    Counts of a team's every ticket, closed ones too, even for members who read only its
    queue: a number names no one, and the team's workload is what its people need to know.
    """
    require_user(principal)
    teams = scoping.countable_teams(principal)
    if team_id is not None:
        if not principal.has(Scope.TICKETS_ALL) and not principal.works_in(team_id):
            raise NotAllowed(TEAM_ONLY, field="teamId")
        teams = teams.filter(id=team_id)
    elif not principal.has(Scope.TICKETS_ALL) and not principal.has(Scope.TICKETS_WORK):
        raise NotAllowed("Only staff see ticket counts.")
    # Teams left-joined to their tickets: a team without tickets still answers, with zeros.
    rows = (
        await teams.annotate(count=Count("tickets__id"))
        .group_by("id", "name", "tickets__status")
        .order_by("name")
        .values("id", "tickets__status", "count")
    )
    counts: dict[UUID, dict[TicketStatus, int]] = {}
    for row in rows:
        ident = row["id"] if isinstance(row["id"], UUID) else UUID(str(row["id"]))
        by_status = counts.setdefault(ident, dict.fromkeys(TicketStatus, 0))
        if row["tickets__status"] is not None:
            by_status[TicketStatus(row["tickets__status"])] = int(row["count"])
    if team_id is not None and team_id not in counts:
        raise NotFound("No such team.", field="teamId")
    return [TeamCounts(ident, by_status) for ident, by_status in counts.items()]


async def move_ticket(
    principal: Principal, *, ticket_id: UUID, team_id: UUID, store: Redis | None = None
) -> Ticket:
    """Move a ticket to another team: its team's lead may, administrators any ticket.

    An assignee outside the new team gives it back to that team's queue. Live subscribers are
    told (an assignment event) through `store` once it has committed.
    """
    require_user(principal)
    if not principal.has(Scope.TICKETS_ALL) and Role.TEAM_LEAD not in principal.roles:
        raise NotAllowed("Only team leads and administrators move tickets.")
    team = await Team.get_or_none(id=team_id).only("id", "archived_at")
    if team is None:
        raise NotFound("No such team.", field="teamId")
    if team.archived_at is not None:
        raise InvalidInput("This team is archived and takes no tickets.", field="teamId")
    async with in_transaction():
        ticket = (
            await scoping.readable_tickets(principal).select_for_update().get_or_none(id=ticket_id)
        )
        if ticket is None:
            raise NotFound("No such ticket.", field="ticketId")
        if not principal.has(Scope.TICKETS_ALL) and not principal.leads(ticket.team_id):
            raise NotAllowed("A lead moves only their own team's tickets.", field="ticketId")
        if ticket.status == TicketStatus.CLOSED:
            raise InvalidInput("A closed ticket stays where it is.", field="ticketId")
        if ticket.team_id == team.id:
            raise InvalidInput("The ticket is already in that team.", field="teamId")
        ticket.team_id = team.id
        fields = ["team_id", "updated_at"]
        changed = ["Ticket.team"]
        if ticket.assignee_id is not None and not await User.exists(
            id=ticket.assignee_id, team_id=team.id
        ):
            ticket.assignee_id = None
            fields.append("assignee_id")
            changed.append("Ticket.assignee")
        await ticket.save(update_fields=fields)
        await audit.record(
            principal,
            action=AuditAction.TICKET_MOVE,
            entity="Ticket",
            entity_id=ticket.id,
            subject_id=ticket.requester_id,
            field_names=changed,
        )
    await live.publish_ticket_event(
        store, live.TicketEvent(live.ASSIGNMENT, ticket.id, ticket.requester_id)
    )
    return ticket
