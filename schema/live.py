"""Live updates: the ticket events that subscriptions deliver over WebSocket (schema/sockets.py).

An event names what changed; what it carries is read again for each subscriber with their
principal as it is at that moment (resolvers/live.py), and shown through the same Ticket and
TicketMessage types as a query, so every field passes the same need-to-know rule and every
read of another person's data is audited (schema/extensions.py AccessAudit).
"""

from collections.abc import AsyncGenerator, Callable
from uuid import UUID

import strawberry

from auth.policy import Relation
from resolvers import live, tickets
from resolvers.live import TicketEvent, TicketEventKind
from resolvers.users import require_user
from schema.context import Info, LiveConnection
from schema.errors import PublicError, coded_errors
from schema.need_to_know import personal_data
from schema.relay import from_global_id
from schema.tickets import TicketMessageType, TicketType, message_node, ticket_nodes

# What a subscriber that falls behind is closed with: try again later (RFC 6455).
TOO_SLOW = 1013


@personal_data
@strawberry.type(name="TicketEvent", description="Something that happened on a ticket you may see.")
class TicketEventType:
    # The subscriber's relation to the ticket's requester, as the ticket has it.
    relation: strawberry.Private[Relation]
    kind: TicketEventKind
    ticket: TicketType
    message: TicketMessageType | None = strawberry.field(
        description="The reply or internal note, for REPLY and INTERNAL_NOTE."
    )

    @property
    def subject_id(self) -> UUID | None:
        return self.ticket.subject_id


def _over_websocket(info: Info) -> LiveConnection:
    if info.context.live is None:
        raise PublicError("Subscribe over WebSocket at /graphql.", "BAD_REQUEST")
    return info.context.live


async def _events(
    info: Info,
    connection: LiveConnection,
    wants: Callable[[TicketEvent], bool],
    *,
    own_tickets_only: bool,
) -> AsyncGenerator[TicketEventType, None]:
    """Each event this subscription asked for, as the subscriber may read it now."""
    context = info.context

    def overflow() -> None:
        connection.drop(TOO_SLOW, "Too many events waiting; subscribe again.")

    with connection.hub.feed(wants, overflow) as feed:
        while True:
            event = await feed.next()
            # Judged as a query would be now: the account's roles, team and sign-in as they
            # are at this event, not as they were when the subscription started.
            principal = await connection.caller_now()
            if principal is None:
                return
            rows = await live.read_ticket_event(principal, event, own_tickets_only=own_tickets_only)
            if rows is None:
                continue
            context.fresh_loaders()
            (ticket,) = await ticket_nodes(info, [rows.ticket])
            message = await message_node(info, rows.message) if rows.message else None
            yield TicketEventType(
                relation=ticket.relation, kind=rows.kind, ticket=ticket, message=message
            )


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(
        description=(
            "Replies, internal notes (staff only), status and assignment changes on one ticket"
            " you may read, as they happen (WebSocket, graphql-transport-ws)."
        )
    )
    @coded_errors
    async def ticket_events(
        self, info: Info, ticket_id: strawberry.ID
    ) -> AsyncGenerator[TicketEventType, None]:
        connection = _over_websocket(info)
        _, ident = from_global_id(ticket_id, "Ticket", "ticketId")
        # Refused at once when the ticket is out of reach; later events are judged one by one.
        await tickets.get_ticket(info.context.principal, ident)
        return _events(
            info, connection, lambda event: event.ticket_id == ident, own_tickets_only=False
        )

    @strawberry.subscription(
        description=(
            "Events on the tickets you opened: replies, status and assignment changes"
            " (WebSocket, graphql-transport-ws)."
        )
    )
    @coded_errors
    async def my_ticket_events(self, info: Info) -> AsyncGenerator[TicketEventType, None]:
        connection = _over_websocket(info)
        me = require_user(info.context.principal)
        return _events(
            info, connection, lambda event: event.requester_id == me, own_tickets_only=True
        )
