"""Ticket use cases through GraphQL: opening, replying, notes, assignment, status, lists (P08)."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from models import Team, Ticket, TicketMessage, TicketStatus, User, crypto
from schema.relay import from_global_id, to_global_id
from tests.helpers import Api

AsUser = Callable[[str | None], Awaitable[Api]]

CUSTOMER = "customer@example.com"
CUSTOMER2 = "customer2@example.com"
AGENT = "agent@example.com"
AGENT2 = "agent2@example.com"
LEAD = "lead@example.com"
ADMIN = "admin@example.com"

DEMO_NOTE = "Internal: customer verified by phone."

TICKET_RESULT = """
    __typename
    ... on TicketSuccess {
      ticket { id subject status closedAt assignee { name } }
    }
    ... on UserError { code message }
    ... on InvalidInputError { field }
    ... on NotFoundError { field }
"""

CREATE_TICKET = (
    """
mutation ($subject: String!, $body: String!) {
  createTicket(input: {subject: $subject, body: $body}) {"""
    + TICKET_RESULT
    + "} }"
)

ASSIGN_TICKET = (
    """
mutation ($ticketId: ID!, $assigneeId: ID) {
  assignTicket(input: {ticketId: $ticketId, assigneeId: $assigneeId}) {"""
    + TICKET_RESULT
    + "} }"
)

CHANGE_STATUS = (
    """
mutation ($ticketId: ID!, $status: TicketStatus!) {
  changeTicketStatus(input: {ticketId: $ticketId, status: $status}) {"""
    + TICKET_RESULT
    + "} }"
)

ADD_MESSAGE = """
mutation ($ticketId: ID!, $body: String!, $internal: Boolean!) {
  addMessage(input: {ticketId: $ticketId, body: $body, internal: $internal}) {
    __typename
    ... on AddMessageSuccess { message { id body internal author { name } } }
    ... on UserError { code }
    ... on InvalidInputError { field }
    ... on NotFoundError { field }
  }
}
"""

TICKET_MESSAGES = """
query ($id: ID!) {
  node(id: $id) {
    ... on Ticket {
      id subject status
      messages(first: 50) { edges { node { id body internal author { name } } } }
    }
  }
}
"""

LIST_TICKETS = """
query ($first: Int, $after: String, $filter: TicketFilterInput) {
  tickets(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id subject status createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def user_id(email: str) -> str:
    user = await User.get(email_index=crypto.blind_index(email))
    return str(to_global_id("User", user.id))


async def ticket_by_subject(subject: str) -> Ticket:
    matches = [ticket for ticket in await Ticket.all() if ticket.subject == subject]
    assert len(matches) == 1, subject
    return matches[0]


async def ticket_gid(subject: str) -> str:
    return str(to_global_id("Ticket", (await ticket_by_subject(subject)).id))


def payload(result: dict[str, Any], mutation: str) -> dict[str, Any]:
    assert "errors" not in result, result
    answer: dict[str, Any] = result["data"][mutation]
    return answer


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def subjects(api: Api, filter_: dict[str, Any] | None = None) -> list[str]:
    body = await api.gql(LIST_TICKETS, {"first": 100, "filter": filter_})
    assert "errors" not in body, body
    return [edge["node"]["subject"] for edge in body["data"]["tickets"]["edges"]]


async def open_ticket(requester: str, subject: str, body: str = "Please help.") -> str:
    """Set-up through the ORM, as createTicket would store it (its own test is separate)."""
    team = await Team.get(name="Support")
    author = await User.get(email_index=crypto.blind_index(requester))
    ticket = await Ticket.create(subject=subject, requester=author, team=team)
    await TicketMessage.create(ticket=ticket, author=author, body=body)
    return str(to_global_id("Ticket", ticket.id))


async def message_rows(ticket_gid_: str) -> list[tuple[str, bool]]:
    _, ident = from_global_id(ticket_gid_)
    rows = await TicketMessage.filter(ticket_id=ident).order_by("created_at", "id")
    return [(row.body, row.internal) for row in rows]


# Opening a ticket


@pytest.mark.promise("P08")
async def test_customer_opens_a_ticket_that_only_they_can_see(as_user: AsUser) -> None:
    customer = await as_user(CUSTOMER)
    result = await customer.gql(
        """
        mutation {
          createTicket(input: {subject: "Printer on fire", body: "It started this morning."}) {
            __typename
            ... on TicketSuccess {
              ticket {
                subject status priority channel requester { name email } assignee { name }
                messages { edges { node { body internal author { name } } } }
              }
            }
          }
        }
        """
    )
    assert result == {
        "data": {
            "createTicket": {
                "__typename": "TicketSuccess",
                "ticket": {
                    "subject": "Printer on fire",
                    "status": "OPEN",
                    "priority": "NORMAL",
                    "channel": "WEB",
                    "requester": {"name": "Carla Customer", "email": CUSTOMER},
                    "assignee": None,
                    "messages": {
                        "edges": [
                            {
                                "node": {
                                    "body": "It started this morning.",
                                    "internal": False,
                                    "author": {"name": "Carla Customer"},
                                }
                            }
                        ]
                    },
                },
            }
        }
    }
    ticket_id = await ticket_gid("Printer on fire")

    listed = await customer.gql(LIST_TICKETS, {"first": 10})
    edges = listed["data"]["tickets"]["edges"]
    assert edges[0]["node"]["id"] == ticket_id
    assert sorted(edge["node"]["subject"] for edge in edges) == [
        "Cannot reset my password",
        "How do I export my data?",
        "Invoice shows the wrong address",
        "Printer on fire",
    ]

    other = await as_user(CUSTOMER2)
    assert sorted(await subjects(other)) == ["App crashes on start", "Feature request: dark mode"]
    response = await other.post(TICKET_MESSAGES, {"id": ticket_id})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"node": None}
    assert [(error["path"], error["extensions"]["code"]) for error in body["errors"]] == [
        (["node"], "NOT_FOUND")
    ]
    assert "Printer on fire" not in response.text
    assert "It started this morning." not in response.text


@pytest.mark.parametrize(
    ("subject", "body", "field"),
    [("   ", "Body", "subject"), ("Subject", "", "body"), ("x" * 201, "Body", "subject")],
)
async def test_create_ticket_refuses_bad_input_and_stores_nothing(
    as_user: AsUser, subject: str, body: str, field: str
) -> None:
    customer = await as_user(CUSTOMER)
    before = await Ticket.all().count()
    result = await customer.gql(CREATE_TICKET, {"subject": subject, "body": body})
    answer = payload(result, "createTicket")
    assert answer["__typename"] == "InvalidInputError"
    assert answer["code"] == "INVALID_INPUT"
    assert answer["field"] == field
    assert await Ticket.all().count() == before


async def test_anonymous_cannot_open_a_ticket(as_user: AsUser) -> None:
    anonymous = await as_user(None)
    result = await anonymous.gql(CREATE_TICKET, {"subject": "Hi", "body": "Hello"})
    assert payload(result, "createTicket")["__typename"] == "AuthenticationRequiredError"
    assert await Ticket.all().count() == 5


# Replies and internal notes

NOTE = "Internal: refund approved under code ZX-4471."


@pytest.mark.promise("P08")
async def test_internal_note_never_reaches_the_customer(as_user: AsUser) -> None:
    ticket_id = await ticket_gid("Cannot reset my password")
    customer = await as_user(CUSTOMER)
    agent = await as_user(AGENT)

    reply = await customer.gql(
        ADD_MESSAGE, {"ticketId": ticket_id, "body": "Any news?", "internal": False}
    )
    assert payload(reply, "addMessage")["__typename"] == "AddMessageSuccess"
    assert payload(reply, "addMessage")["message"]["body"] == "Any news?"
    assert payload(reply, "addMessage")["message"]["internal"] is False
    assert payload(reply, "addMessage")["message"]["author"] == {"name": "Carla Customer"}

    note = await agent.gql(ADD_MESSAGE, {"ticketId": ticket_id, "body": NOTE, "internal": True})
    assert payload(note, "addMessage")["__typename"] == "AddMessageSuccess"
    assert payload(note, "addMessage")["message"]["internal"] is True
    assert payload(note, "addMessage")["message"]["author"] == {"name": "Alex Agent"}
    note_id = payload(note, "addMessage")["message"]["id"]

    seen_by_agent = await agent.gql(TICKET_MESSAGES, {"id": ticket_id})
    assert "errors" not in seen_by_agent
    assert [
        (edge["node"]["body"], edge["node"]["internal"])
        for edge in seen_by_agent["data"]["node"]["messages"]["edges"]
    ] == [
        ("Hello, cannot reset my password.", False),
        ("Thanks, we are looking into it.", False),
        (DEMO_NOTE, True),
        ("Any news?", False),
        (NOTE, True),
    ]

    thread = await customer.post(TICKET_MESSAGES, {"id": ticket_id})
    assert "errors" not in thread.json()
    assert [
        (edge["node"]["body"], edge["node"]["internal"])
        for edge in thread.json()["data"]["node"]["messages"]["edges"]
    ] == [
        ("Hello, cannot reset my password.", False),
        ("Thanks, we are looking into it.", False),
        ("Any news?", False),
    ]
    assert NOTE not in thread.text
    assert DEMO_NOTE not in thread.text
    assert note_id not in thread.text

    direct = await customer.post(
        "query ($id: ID!) { node(id: $id) { ... on TicketMessage { body internal } } }",
        {"id": note_id},
    )
    assert direct.json()["data"] == {"node": None}
    assert [(e["path"], e["extensions"]["code"]) for e in direct.json()["errors"]] == [
        (["node"], "NOT_FOUND")
    ]
    assert NOTE not in direct.text

    listed = await customer.post(
        """
        { tickets(first: 50) { edges { node {
            subject messages(first: 50) { edges { node { body internal } } }
        } } } }
        """
    )
    assert listed.status_code == 200
    assert "errors" not in listed.json()
    assert NOTE not in listed.text
    assert DEMO_NOTE not in listed.text
    assert '"internal":true' not in listed.text.replace(" ", "")


@pytest.mark.promise("P08")
async def test_customer_cannot_write_an_internal_note(as_user: AsUser) -> None:
    ticket_id = await ticket_gid("Cannot reset my password")
    before = await message_rows(ticket_id)
    customer = await as_user(CUSTOMER)
    result = await customer.gql(
        ADD_MESSAGE, {"ticketId": ticket_id, "body": "Sneaky note", "internal": True}
    )
    assert payload(result, "addMessage")["__typename"] == "ForbiddenError"
    assert payload(result, "addMessage")["code"] == "FORBIDDEN"
    assert await message_rows(ticket_id) == before
    agent = await as_user(AGENT)
    assert "Sneaky note" not in (await agent.post(TICKET_MESSAGES, {"id": ticket_id})).text


async def test_customer_cannot_reply_on_another_customers_ticket(as_user: AsUser) -> None:
    ticket_id = await ticket_gid("App crashes on start")
    before = await message_rows(ticket_id)
    customer = await as_user(CUSTOMER)
    result = await customer.gql(
        ADD_MESSAGE, {"ticketId": ticket_id, "body": "Hello there", "internal": False}
    )
    answer = payload(result, "addMessage")
    assert answer["__typename"] == "NotFoundError"
    assert answer["field"] == "ticketId"
    assert await message_rows(ticket_id) == before


@pytest.mark.parametrize(
    ("ticket_id", "body", "field"),
    [("not-an-id", "Hi", "ticketId"), (None, "   ", "body"), (None, "a" * 20_001, "body")],
)
async def test_add_message_refuses_bad_input(
    as_user: AsUser, ticket_id: str | None, body: str, field: str
) -> None:
    real_id = await ticket_gid("Cannot reset my password")
    before = await message_rows(real_id)
    customer = await as_user(CUSTOMER)
    result = await customer.gql(
        ADD_MESSAGE, {"ticketId": ticket_id or real_id, "body": body, "internal": False}
    )
    answer = payload(result, "addMessage")
    assert answer["__typename"] == "InvalidInputError"
    assert answer["field"] == field
    assert await message_rows(real_id) == before


# Assignment


@pytest.mark.promise("P08")
async def test_team_lead_assigns_a_ticket_to_another_agent(as_user: AsUser) -> None:
    subject = "Feature request: dark mode"
    ticket_id = await ticket_gid(subject)
    agent2 = await as_user(AGENT2)
    assert subject not in await subjects(agent2)

    lead = await as_user(LEAD)
    result = await lead.gql(
        ASSIGN_TICKET, {"ticketId": ticket_id, "assigneeId": await user_id(AGENT2)}
    )
    answer = payload(result, "assignTicket")
    assert answer["__typename"] == "TicketSuccess"
    assert answer["ticket"]["assignee"] == {"name": "Sam Agent"}
    assert answer["ticket"]["status"] == "SOLVED"

    stored = await ticket_by_subject(subject)
    assert stored.assignee_id == (await User.get(email_index=crypto.blind_index(AGENT2))).id
    assert subject in await subjects(agent2)
    assert await subjects(agent2, {"assigneeId": await user_id(AGENT2)}) == [subject]


async def test_agent_without_assign_scope_cannot_assign(as_user: AsUser) -> None:
    ticket_id = await ticket_gid("How do I export my data?")
    agent = await as_user(AGENT)
    result = await agent.gql(
        ASSIGN_TICKET, {"ticketId": ticket_id, "assigneeId": await user_id(AGENT)}
    )
    assert payload(result, "assignTicket")["__typename"] == "ForbiddenError"
    assert payload(result, "assignTicket")["code"] == "FORBIDDEN"
    assert (await ticket_by_subject("How do I export my data?")).assignee_id is None


async def test_tickets_cannot_be_assigned_to_a_customer(as_user: AsUser) -> None:
    ticket_id = await ticket_gid("How do I export my data?")
    lead = await as_user(LEAD)
    result = await lead.gql(
        ASSIGN_TICKET, {"ticketId": ticket_id, "assigneeId": await user_id(CUSTOMER2)}
    )
    answer = payload(result, "assignTicket")
    assert answer["__typename"] == "InvalidInputError"
    assert answer["field"] == "assigneeId"
    assert (await ticket_by_subject("How do I export my data?")).assignee_id is None


@pytest.mark.parametrize(
    ("ticket_id", "assignee_id", "field"),
    [
        ("garbage", None, "ticketId"),
        (None, "garbage", "assigneeId"),
        (None, b64("User:not-a-uuid"), "assigneeId"),
        (None, "TICKET", "assigneeId"),
    ],
)
async def test_assign_refuses_malformed_ids(
    as_user: AsUser, ticket_id: str | None, assignee_id: str | None, field: str
) -> None:
    real_ticket = await ticket_gid("How do I export my data?")
    if assignee_id == "TICKET":
        assignee_id = real_ticket
    lead = await as_user(LEAD)
    result = await lead.gql(
        ASSIGN_TICKET,
        {"ticketId": ticket_id or real_ticket, "assigneeId": assignee_id or await user_id(AGENT)},
    )
    answer = payload(result, "assignTicket")
    assert answer["__typename"] == "InvalidInputError"
    assert answer["code"] == "INVALID_INPUT"
    assert answer["field"] == field
    assert (await ticket_by_subject("How do I export my data?")).assignee_id is None


# Status changes


async def _assigned_ticket(as_user: AsUser, subject: str) -> str:
    """A fresh ticket of customer@ assigned to agent@ by the lead."""
    ticket_id = await open_ticket(CUSTOMER, subject)
    lead = await as_user(LEAD)
    result = await lead.gql(
        ASSIGN_TICKET, {"ticketId": ticket_id, "assigneeId": await user_id(AGENT)}
    )
    assert payload(result, "assignTicket")["__typename"] == "TicketSuccess"
    return ticket_id


@pytest.mark.promise("P08")
async def test_agent_moves_a_ticket_through_every_status(as_user: AsUser) -> None:
    ticket_id = await _assigned_ticket(as_user, "Lifecycle")
    agent = await as_user(AGENT)
    for status in ("PENDING", "SOLVED", "CLOSED"):
        result = await agent.gql(CHANGE_STATUS, {"ticketId": ticket_id, "status": status})
        answer = payload(result, "changeTicketStatus")
        assert answer["__typename"] == "TicketSuccess", answer
        assert answer["ticket"]["status"] == status
        assert (answer["ticket"]["closedAt"] is None) == (status != "CLOSED")
    stored = await ticket_by_subject("Lifecycle")
    assert stored.status == TicketStatus.CLOSED
    assert stored.closed_at is not None

    for status in ("OPEN", "PENDING", "SOLVED", "CLOSED"):
        result = await agent.gql(CHANGE_STATUS, {"ticketId": ticket_id, "status": status})
        answer = payload(result, "changeTicketStatus")
        assert answer["__typename"] == "InvalidInputError"
        assert answer["field"] == "status"
    assert (await ticket_by_subject("Lifecycle")).status == TicketStatus.CLOSED

    customer = await as_user(CUSTOMER)
    late = await customer.gql(ADD_MESSAGE, {"ticketId": ticket_id, "body": "Hi", "internal": False})
    assert payload(late, "addMessage")["__typename"] == "InvalidInputError"
    assert payload(late, "addMessage")["field"] == "ticketId"


async def test_changing_to_the_same_status_is_invalid(as_user: AsUser) -> None:
    ticket_id = await _assigned_ticket(as_user, "Same status")
    agent = await as_user(AGENT)
    result = await agent.gql(CHANGE_STATUS, {"ticketId": ticket_id, "status": "OPEN"})
    answer = payload(result, "changeTicketStatus")
    assert answer["__typename"] == "InvalidInputError"
    assert answer["field"] == "status"
    assert (await ticket_by_subject("Same status")).status == TicketStatus.OPEN


@pytest.mark.promise("P08")
async def test_customer_may_only_close_their_own_ticket(as_user: AsUser) -> None:
    ticket_id = await open_ticket(CUSTOMER, "Close me")
    customer = await as_user(CUSTOMER)
    for status in ("PENDING", "SOLVED"):
        refused = await customer.gql(CHANGE_STATUS, {"ticketId": ticket_id, "status": status})
        assert payload(refused, "changeTicketStatus")["__typename"] == "ForbiddenError"
        assert (await ticket_by_subject("Close me")).status == TicketStatus.OPEN

    others = await ticket_gid("App crashes on start")
    foreign = await customer.gql(CHANGE_STATUS, {"ticketId": others, "status": "CLOSED"})
    assert payload(foreign, "changeTicketStatus")["__typename"] == "NotFoundError"
    assert (await ticket_by_subject("App crashes on start")).status == TicketStatus.OPEN

    closed = await customer.gql(CHANGE_STATUS, {"ticketId": ticket_id, "status": "CLOSED"})
    assert payload(closed, "changeTicketStatus")["__typename"] == "TicketSuccess"
    assert payload(closed, "changeTicketStatus")["ticket"]["status"] == "CLOSED"
    assert (await ticket_by_subject("Close me")).status == TicketStatus.CLOSED


@pytest.mark.promise("P08")
async def test_customer_reply_reopens_a_pending_ticket(as_user: AsUser) -> None:
    ticket_id = await _assigned_ticket(as_user, "Waiting on you")
    agent = await as_user(AGENT)
    pending = await agent.gql(CHANGE_STATUS, {"ticketId": ticket_id, "status": "PENDING"})
    assert payload(pending, "changeTicketStatus")["ticket"]["status"] == "PENDING"

    note = await agent.gql(ADD_MESSAGE, {"ticketId": ticket_id, "body": "Noted", "internal": True})
    assert payload(note, "addMessage")["__typename"] == "AddMessageSuccess"
    assert (await ticket_by_subject("Waiting on you")).status == TicketStatus.PENDING

    customer = await as_user(CUSTOMER)
    reply = await customer.gql(
        ADD_MESSAGE, {"ticketId": ticket_id, "body": "Here it is", "internal": False}
    )
    assert payload(reply, "addMessage")["__typename"] == "AddMessageSuccess"
    seen = await customer.gql(TICKET_MESSAGES, {"id": ticket_id})
    assert seen["data"]["node"]["status"] == "OPEN"
    assert (await ticket_by_subject("Waiting on you")).status == TicketStatus.OPEN


# Filters and pagination


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        (
            {"status": "OPEN"},
            ["App crashes on start", "Cannot reset my password", "How do I export my data?"],
        ),
        ({"status": "SOLVED"}, ["Feature request: dark mode"]),
        ({"status": "CLOSED"}, []),
        (
            {"assigneeId": AGENT},
            [
                "App crashes on start",
                "Cannot reset my password",
                "Invoice shows the wrong address",
            ],
        ),
        ({"assigneeId": AGENT2}, []),
        ({"requesterId": CUSTOMER2}, ["App crashes on start", "Feature request: dark mode"]),
        ({"unassigned": True}, ["Feature request: dark mode", "How do I export my data?"]),
        ({"unassigned": True, "status": "OPEN"}, ["How do I export my data?"]),
        ({"requesterId": CUSTOMER, "status": "PENDING"}, ["Invoice shows the wrong address"]),
    ],
)
async def test_ticket_filters(
    as_user: AsUser, filter_: dict[str, Any], expected: list[str]
) -> None:
    for key in ("assigneeId", "requesterId"):
        if key in filter_:
            filter_[key] = await user_id(filter_[key])
    admin = await as_user(ADMIN)
    assert sorted(await subjects(admin, filter_)) == expected


async def test_filters_stay_inside_the_callers_scope(as_user: AsUser) -> None:
    agent2 = await as_user(AGENT2)
    assert await subjects(agent2, {"requesterId": await user_id(CUSTOMER2)}) == [
        "App crashes on start"
    ]
    customer = await as_user(CUSTOMER)
    assert await subjects(customer, {"requesterId": await user_id(CUSTOMER2)}) == []
    assert sorted(await subjects(customer, {"assigneeId": await user_id(AGENT)})) == [
        "Cannot reset my password",
        "Invoice shows the wrong address",
    ]


@pytest.mark.parametrize("bad", ["garbage", "TICKET_ID"])
async def test_filter_with_a_malformed_user_id_is_invalid_input(as_user: AsUser, bad: str) -> None:
    if bad == "TICKET_ID":
        bad = await ticket_gid("App crashes on start")
    admin = await as_user(ADMIN)
    body = await admin.gql(LIST_TICKETS, {"first": 10, "filter": {"assigneeId": bad}})
    assert body["data"] is None
    assert error_codes(body) == ["INVALID_INPUT"]


@pytest.mark.promise("P08")
async def test_pages_are_disjoint_and_cover_every_row_newest_first(as_user: AsUser) -> None:
    created = [f"Paged ticket {n}" for n in range(1, 6)]
    for subject in created:
        await open_ticket(CUSTOMER2, subject)
    customer2 = await as_user(CUSTOMER2)
    expected = [*reversed(created), "Feature request: dark mode", "App crashes on start"]

    seen: list[dict[str, Any]] = []
    after: str | None = None
    pages: list[int] = []
    more_flags: list[bool] = []
    while True:
        body = await customer2.gql(LIST_TICKETS, {"first": 3, "after": after})
        assert "errors" not in body, body
        connection = body["data"]["tickets"]
        pages.append(len(connection["edges"]))
        more_flags.append(connection["pageInfo"]["hasNextPage"])
        seen.extend(edge["node"] for edge in connection["edges"])
        assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert pages == [3, 3, 1]
    assert more_flags == [True, True, False]
    assert [node["subject"] for node in seen] == expected
    assert len({node["id"] for node in seen}) == 7
    stamps = [node["createdAt"] for node in seen]
    assert stamps == sorted(stamps, reverse=True)

    everything = await customer2.gql(LIST_TICKETS, {"first": 100})
    assert [edge["node"]["id"] for edge in everything["data"]["tickets"]["edges"]] == [
        node["id"] for node in seen
    ]
    assert everything["data"]["tickets"]["pageInfo"]["hasNextPage"] is False


async def test_default_page_size_is_twenty(as_user: AsUser) -> None:
    for n in range(20):
        await open_ticket(CUSTOMER, f"Bulk {n}")
    customer = await as_user(CUSTOMER)
    body = await customer.gql("{ tickets { edges { cursor } pageInfo { hasNextPage } } }")
    assert len(body["data"]["tickets"]["edges"]) == 20
    assert body["data"]["tickets"]["pageInfo"]["hasNextPage"] is True


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_page_size_out_of_bounds_is_invalid_input(as_user: AsUser, first: int) -> None:
    customer = await as_user(CUSTOMER)
    body = await customer.gql(LIST_TICKETS, {"first": first})
    assert body["data"] is None
    assert error_codes(body) == ["INVALID_INPUT"]
    assert body["errors"][0]["path"] == ["tickets"]


async def test_largest_page_size_is_accepted(as_user: AsUser) -> None:
    customer = await as_user(CUSTOMER)
    body = await customer.gql(LIST_TICKETS, {"first": 100})
    assert "errors" not in body
    assert len(body["data"]["tickets"]["edges"]) == 3


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "!!!", b64("[1,2]"), b64('["yesterday","x"]'), b64('{"a":1}'), b64("[]")],
)
async def test_garbage_cursor_is_invalid_input(as_user: AsUser, cursor: str) -> None:
    customer = await as_user(CUSTOMER)
    body = await customer.gql(LIST_TICKETS, {"first": 2, "after": cursor})
    assert body["data"] is None
    assert error_codes(body) == ["INVALID_INPUT"]


@pytest.mark.parametrize(("first", "after"), [(0, None), (101, None), (2, "garbage")])
async def test_message_page_arguments_are_invalid_input(
    as_user: AsUser, first: int, after: str | None
) -> None:
    customer = await as_user(CUSTOMER)
    ticket_id = await ticket_gid("Cannot reset my password")
    body = await customer.gql(
        """
        query ($id: ID!, $first: Int, $after: String) {
          node(id: $id) { ... on Ticket { subject messages(first: $first, after: $after) {
            edges { node { body } } } } }
        }
        """,
        {"id": ticket_id, "first": first, "after": after},
    )
    assert body["data"] == {"node": {"subject": "Cannot reset my password", "messages": None}}
    assert error_codes(body) == ["INVALID_INPUT"]
    assert body["errors"][0]["path"] == ["node", "messages"]
