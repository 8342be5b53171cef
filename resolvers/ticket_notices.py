"""Telling a ticket's requester what happened to it: a public reply, a status change."""

from __future__ import annotations

from uuid import UUID

from models import Notice, Ticket
from privacy import notices
from resolvers.nodes import global_id


async def tell_requester(ticket: Ticket, actor_id: UUID, kind: str, **params: str) -> Notice | None:
    """A notice to the requester of a change someone else made, in the caller's transaction.

    It goes to their account, or by mail to the address on the ticket when they have none.
    Params name the ticket and the change (ids and a status), never what anyone wrote.
    """
    params = {"ticket": global_id("Ticket", ticket.id), **params}
    if ticket.requester_id is not None:
        if ticket.requester_id == actor_id:
            return None
        return await notices.notify(ticket.requester_id, kind, **params)
    if ticket.requester_email:
        return await notices.notify_address(ticket.requester_email, kind, **params)
    return None
