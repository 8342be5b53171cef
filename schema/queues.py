"""Queues: a team's queue, one's open tickets, counts by status, and moving tickets."""

from typing import Annotated

import strawberry

from resolvers import queues
from resolvers.queues import TeamCounts
from schema.context import Info
from schema.enums import TicketStatus
from schema.errors import MutationError, coded_errors
from schema.relay import Connection, connection, from_global_id, to_global_id
from schema.tickets import TicketSuccess, ticket_nodes, ticket_success
from schema.tickets import TicketType as Ticket


@strawberry.type(description="How many of a team's tickets are in each status.")
class TeamTicketCounts:
    team_id: strawberry.ID
    open: int
    pending: int
    solved: int
    closed: int


def _counts(counted: TeamCounts) -> TeamTicketCounts:
    by_status = counted.by_status
    return TeamTicketCounts(
        team_id=to_global_id("Team", counted.team_id),
        open=by_status[TicketStatus.OPEN],
        pending=by_status[TicketStatus.PENDING],
        solved=by_status[TicketStatus.SOLVED],
        closed=by_status[TicketStatus.CLOSED],
    )


@strawberry.input
class MoveTicketInput:
    ticket_id: strawberry.ID
    team_id: strawberry.ID = strawberry.field(
        description="The team to move it to; an assignee outside it gives the ticket back."
    )


MoveTicketResult = Annotated[TicketSuccess | MutationError, strawberry.union("MoveTicketResult")]


@strawberry.type
class QueuesQuery:
    @strawberry.field(
        description=(
            "A team's open and pending tickets: unassigned first, then urgent to low, then"
            " oldest first (at most 100 a page). For its members, its lead and administrators."
        )
    )
    @coded_errors
    async def team_queue(
        self, info: Info, team_id: strawberry.ID, first: int | None = None, after: str | None = None
    ) -> Connection[Ticket] | None:
        _, team = from_global_id(team_id, "Team", "teamId")
        page = await queues.team_queue(
            info.context.principal, team_id=team, first=first, after=after
        )
        return connection(page, await ticket_nodes(info, page.items))

    @strawberry.field(
        description="Tickets assigned to you that are not closed: urgent to low, oldest first."
    )
    @coded_errors
    async def my_open_tickets(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Ticket] | None:
        page = await queues.my_open_tickets(info.context.principal, first=first, after=after)
        return connection(page, await ticket_nodes(info, page.items))

    @strawberry.field(
        description=(
            "Tickets by status for a team you work in or lead; without teamId your team, or"
            " every team for administrators."
        )
    )
    @coded_errors
    async def ticket_counts(
        self, info: Info, team_id: strawberry.ID | None = None
    ) -> list[TeamTicketCounts] | None:
        team = from_global_id(team_id, "Team", "teamId")[1] if team_id is not None else None
        counted = await queues.ticket_counts(info.context.principal, team)
        return [_counts(each) for each in counted]


@strawberry.type
class QueuesMutation:
    @strawberry.mutation(
        description="Move a ticket to another team: its team's lead, or an administrator."
    )
    async def move_ticket(self, info: Info, input: MoveTicketInput) -> MoveTicketResult:
        _, ticket_id = from_global_id(input.ticket_id, "Ticket", "ticketId")
        _, team_id = from_global_id(input.team_id, "Team", "teamId")
        ticket = await queues.move_ticket(
            info.context.principal, ticket_id=ticket_id, team_id=team_id, store=info.context.store
        )
        return await ticket_success(info, ticket)
