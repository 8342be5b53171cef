"""Every read is recorded against the person it is about (P20, issue #9 item 5).

A requester known only by email is a walk-in with an id of their own, and the reads of their
ticket name it; a message is about its author and its ticket's requester, so a staff read of
its body is recorded against both (never against the reader).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest
from tortoise.transactions import in_transaction

from models import AuditEvent, Team, Ticket, TicketMessage, WalkInRequester
from privacy import audit
from privacy.walk_ins import find_walk_in, walk_in_for
from schema.relay import to_global_id
from tests.helpers import Api, StatementCounter, user_by_email

AsUser = Callable[[str | None], Awaitable[Api]]

AGENT = "agent@example.com"
ADMIN = "admin@example.com"
LEAD = "lead@example.com"
CUSTOMER = "customer@example.com"

CREATE = """
mutation ($email: String!, $name: String) {
  createTicket(input: {subject: "Wrote in", body: "Please help.", requesterEmail: $email,
                       requesterName: $name}) {
    __typename ... on TicketSuccess { ticket { id } }
  }
}
"""
TICKET = (
    "query ($id: ID!) { node(id: $id) { ... on Ticket { subject requesterName requesterEmail } } }"
)
NOTE = """
mutation ($id: ID!, $body: String!) {
  addMessage(input: {ticketId: $id, body: $body, internal: true}) {
    __typename ... on AddMessageSuccess { message { id } }
  }
}
"""
MESSAGE = "query ($id: ID!) { node(id: $id) { ... on TicketMessage { body internal } } }"
THREAD = """
query ($id: ID!) {
  node(id: $id) { ... on Ticket { messages { edges { node { body internal } } } } }
}
"""


async def reads() -> dict[UUID | None, list[str]]:
    """Subject to the field names read, over every read record so far."""
    found: dict[UUID | None, list[str]] = {}
    for event in await AuditEvent.filter(action=audit.READ_ACTION).order_by("seq"):
        found.setdefault(event.subject_id, []).extend(event.field_names)
    return {subject: sorted(set(names)) for subject, names in found.items()}


async def open_for(agent: Api, email: str, name: str | None = "Wanda Walk-in") -> str:
    body = await agent.gql(CREATE, {"email": email, "name": name})
    assert body["data"]["createTicket"]["__typename"] == "TicketSuccess", body
    return str(body["data"]["createTicket"]["ticket"]["id"])


@pytest.mark.promise("P20")
async def test_reads_of_a_walk_in_ticket_are_recorded_against_the_walk_in(
    as_user: AsUser,
) -> None:
    agent = await as_user(AGENT)
    ticket_id = await open_for(agent, "wanda@example.com")
    walk_in = await find_walk_in("wanda@example.com")
    assert walk_in is not None
    before = await AuditEvent.filter(action=audit.READ_ACTION).count()

    admin = await as_user(ADMIN)
    body = await admin.gql(TICKET, {"id": ticket_id})

    assert body.get("errors") is None, body
    assert body["data"]["node"] == {
        "subject": "Wrote in",
        "requesterName": "Wanda Walk-in",
        "requesterEmail": "wanda@example.com",
    }
    events = await AuditEvent.filter(action=audit.READ_ACTION).order_by("seq").offset(before)
    assert [(event.subject_id, event.field_names) for event in events] == [
        (walk_in.id, ["Ticket.requesterEmail", "Ticket.requesterName", "Ticket.subject"])
    ]
    assert events[0].actor_id == (await user_by_email(ADMIN)).id
    # The creation itself names the walk-in too, and no record holds the address.
    created = await AuditEvent.get(action="ticket.create")
    assert created.subject_id == walk_in.id
    stored = repr([event.__dict__ for event in await AuditEvent.all()])
    assert "wanda@example.com" not in stored
    assert "Wanda" not in stored


@pytest.mark.promise("P20")
async def test_the_same_address_twice_is_one_walk_in_found_by_any_spelling(
    as_user: AsUser,
) -> None:
    agent = await as_user(AGENT)
    first = await open_for(agent, "Walk.In@example.com", "Walter")
    second = await open_for(agent, "  walk.in@EXAMPLE.com ", None)

    assert await WalkInRequester.all().count() == 1
    walk_in = await find_walk_in("WALK.IN@example.com")
    assert walk_in is not None
    assert (walk_in.email, walk_in.name) == ("Walk.In@example.com", "Walter")
    tickets = await Ticket.filter(walk_in_id=walk_in.id).order_by("created_at")
    assert [to_global_id("Ticket", ticket.id) for ticket in tickets] == [first, second]
    # Each ticket keeps what was typed on it (the domain in the validator's lower case).
    assert [(t.requester_email, t.requester_name) for t in tickets] == [
        ("Walk.In@example.com", "Walter"),
        ("walk.in@example.com", None),
    ]
    assert await find_walk_in("someone-else@example.com") is None

    admin = await as_user(ADMIN)
    for ticket_id in (first, second):
        assert (await admin.gql(TICKET, {"id": ticket_id})).get("errors") is None
    # What a later access or erasure request needs: every record about the address, by its id.
    about = await AuditEvent.filter(subject_id=walk_in.id).order_by("seq")
    assert [event.action for event in about] == [
        "ticket.create",
        "ticket.create",
        "personal_data.read",
        "personal_data.read",
    ]


@pytest.mark.promise("P20")
async def test_first_tickets_of_one_address_at_once_make_one_walk_in(
    app: Any, is_postgres: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    callers = 3
    looked_up = asyncio.Barrier(callers)
    create_or_get = WalkInRequester._create_or_get

    async def after_everyone_looked(*args: Any, **kwargs: Any) -> Any:
        # Every caller found nothing before any inserts: all but one lose the unique index.
        await looked_up.wait()
        return await create_or_get(*args, **kwargs)

    monkeypatch.setattr(WalkInRequester, "_create_or_get", after_everyone_looked)

    async def first_ticket(number: int) -> UUID:
        if not is_postgres:
            # SQLite runs one transaction at a time: there the race is between look-ups only.
            return (await walk_in_for("race@example.com", f"Caller {number}")).id
        # As createTicket calls it, inside its transaction: the loser's savepoint rolls back.
        async with in_transaction():
            return (await walk_in_for("race@example.com", f"Caller {number}")).id

    made = await asyncio.wait_for(
        asyncio.gather(*(first_ticket(number) for number in range(callers))), 60
    )

    assert len(set(made)) == 1
    assert await WalkInRequester.all().count() == 1
    walk_in = await find_walk_in("race@example.com")
    assert walk_in is not None
    assert walk_in.id == made[0]


@pytest.mark.promise("P20")
async def test_a_lead_reading_an_internal_note_is_recorded_against_author_and_requester(
    as_user: AsUser,
) -> None:
    agent = await as_user(AGENT)
    customer = await user_by_email(CUSTOMER)
    author = await user_by_email(AGENT)
    # Opened by the agent for the customer: nothing in the thread is written by the customer.
    ticket_id = await open_for(agent, CUSTOMER)
    noted = await agent.gql(NOTE, {"id": ticket_id, "body": "Customer verified by phone"})
    note_id = noted["data"]["addMessage"]["message"]["id"]
    before = await AuditEvent.filter(action=audit.READ_ACTION).count()

    lead = await as_user(LEAD)
    one = await lead.gql(MESSAGE, {"id": note_id})
    thread = await lead.gql(THREAD, {"id": ticket_id})

    assert one["data"]["node"] == {"body": "Customer verified by phone", "internal": True}
    bodies = [edge["node"]["body"] for edge in thread["data"]["node"]["messages"]["edges"]]
    assert bodies == ["Please help.", "Customer verified by phone"]
    events = await AuditEvent.filter(action=audit.READ_ACTION).order_by("seq").offset(before)
    lead_id = (await user_by_email(LEAD)).id
    assert all(event.actor_id == lead_id for event in events)
    per_request = [
        sorted((str(e.subject_id), e.field_names) for e in events if e.request_id == request)
        for request in dict.fromkeys(e.request_id for e in events)
    ]
    expected = sorted(
        [(str(author.id), ["TicketMessage.body"]), (str(customer.id), ["TicketMessage.body"])]
    )
    assert per_request == [expected, expected]


@pytest.mark.promise("P20")
async def test_a_walk_in_is_named_for_the_messages_of_their_ticket(as_user: AsUser) -> None:
    agent = await as_user(AGENT)
    ticket_id = await open_for(agent, "noted@example.com")
    await agent.gql(NOTE, {"id": ticket_id, "body": "Called back, all fine"})
    walk_in = await find_walk_in("noted@example.com")
    assert walk_in is not None
    before = await AuditEvent.filter(action=audit.READ_ACTION).count()

    lead = await as_user(LEAD)
    assert (await lead.gql(THREAD, {"id": ticket_id})).get("errors") is None

    events = await AuditEvent.filter(action=audit.READ_ACTION).order_by("seq").offset(before)
    author = await user_by_email(AGENT)
    assert sorted((str(e.subject_id), e.field_names) for e in events) == sorted(
        [(str(author.id), ["TicketMessage.body"]), (str(walk_in.id), ["TicketMessage.body"])]
    )


@pytest.mark.promise("P20")
async def test_a_customer_reading_their_own_ticket_records_nothing_about_themself(
    as_user: AsUser,
) -> None:
    customer = await as_user(CUSTOMER)
    before = await AuditEvent.filter(action=audit.READ_ACTION).count()
    body = await customer.gql(
        "{ tickets(first: 20) { edges { node { subject"
        " messages { edges { node { body author { name } } } } } } } }"
    )
    assert body.get("errors") is None, body

    events = await AuditEvent.filter(action=audit.READ_ACTION).order_by("seq").offset(before)
    me = await user_by_email(CUSTOMER)
    agent = await user_by_email(AGENT)
    assert [(e.subject_id, e.field_names) for e in events] == [
        (agent.id, ["TicketMessage.body", "User.name"])
    ]
    assert me.id not in {event.subject_id for event in events}


WALK_IN_PAGE = """
query ($first: Int!) {
  tickets(first: $first) {
    edges { node { subject requesterName messages(first: 5) { edges { node { body } } } } }
  }
}
"""


async def seed_walk_in_tickets(count: int) -> list[UUID]:
    """Tickets of as many walk-ins, assigned to the agent, a note of the agent's on each."""
    agent = await user_by_email(AGENT)
    team = await Team.get(name="Support")
    made = []
    async with in_transaction():
        for number in range(count):
            email = f"walk-in-{number:02d}@example.com"
            walk_in = await walk_in_for(email, f"Walk-in {number:02d}")
            ticket = await Ticket.create(
                subject=f"By email {number:02d}",
                walk_in=walk_in,
                requester_email=email,
                requester_name=f"Walk-in {number:02d}",
                requester_email_index=walk_in.email_index,
                assignee=agent,
                team=team,
            )
            await TicketMessage.create(ticket=ticket, author=agent, body=f"Noted {number:02d}")
            made.append(walk_in.id)
    return made


@pytest.mark.promise("P20")
async def test_naming_the_requester_of_every_message_costs_no_statement_per_ticket(
    as_user: AsUser, count_statements: StatementCounter
) -> None:
    walk_ins = await seed_walk_in_tickets(20)
    agent = await as_user(AGENT)
    counts = []
    for first in (5, 15):
        count_statements.statements.clear()
        body = await agent.gql(WALK_IN_PAGE, {"first": first})
        assert body.get("errors") is None, body
        assert any('FROM "tickets"' in sql for sql in count_statements.statements)
        counts.append(len(count_statements.statements))
    assert counts[0] == counts[1], count_statements.statements

    recorded = await reads()
    # The newest fifteen tickets were read: each walk-in is named for its ticket and message.
    assert {walk_in: recorded.get(walk_in) for walk_in in walk_ins[-15:]} == {
        walk_in: ["Ticket.requesterName", "Ticket.subject", "TicketMessage.body"]
        for walk_in in walk_ins[-15:]
    }
    assert not set(walk_ins[:-15]) & set(recorded)
