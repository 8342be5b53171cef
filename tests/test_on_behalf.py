"""Opening a ticket on someone's behalf reveals nothing beyond what was typed (P19, issue #9)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from schema.relay import to_global_id
from tests.helpers import Api, user_by_email

AsUser = Callable[[str | None], Awaitable[Api]]

AGENT = "agent@example.com"
LEAD = "lead@example.com"
ADMIN = "admin@example.com"
CUSTOMER = "customer@example.com"
WALK_IN = "walkin@example.com"

TICKET = """
  id subject status requesterName requesterEmail
  requester { id name email phone locale timeZone }
  assignee { id }
  messages { edges { node { id body author { id name } } } }
"""

CREATE = (
    """
mutation ($email: String!) {
  createTicket(input: {subject: "Wrote in", body: "Please help.", requesterEmail: $email,
                       requesterName: "Typed Name"}) {
    __typename
    ... on TicketSuccess { ticket {"""
    + TICKET
    + "} } } }"
)

NODE = "query ($id: ID!) { node(id: $id) { ... on Ticket {" + TICKET + "} } }"

REPLY = """
mutation ($id: ID!) {
  addMessage(input: {ticketId: $id, body: "It is me."}) { __typename }
}
"""

ASSIGN = """
mutation ($id: ID!, $to: ID!) {
  assignTicket(input: {ticketId: $id, assigneeId: $to}) { __typename }
}
"""


def without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_ids(item) for key, item in value.items() if key != "id"}
    if isinstance(value, list):
        return [without_ids(item) for item in value]
    return value


def denied(body: dict[str, Any]) -> list[tuple[str, ...]]:
    return sorted(
        tuple(str(part) for part in error["path"])
        for error in body.get("errors", [])
        if error["extensions"]["code"] == "FORBIDDEN"
    )


async def open_for(agent: Api, email: str) -> tuple[str, dict[str, Any]]:
    body = await agent.gql(CREATE, {"email": email})
    ticket = body["data"]["createTicket"]["ticket"]
    return str(ticket["id"]), body


def assert_reveals_nothing(body: dict[str, Any], ticket: dict[str, Any], people: list[str]) -> None:
    assert ticket["requester"] is None
    assert ticket["requesterEmail"] is None
    assert ticket["requesterName"] is None
    text = json.dumps(body)
    for person in people:
        assert person not in text


@pytest.mark.promise("P19")
async def test_opening_on_someones_behalf_answers_the_same_and_reveals_nothing(
    as_user: AsUser,
) -> None:
    agent = await as_user(AGENT)
    created = {email: await open_for(agent, email) for email in (CUSTOMER, ADMIN, WALK_IN)}
    names = ["Carla Customer", "Ada Admin", CUSTOMER, ADMIN, WALK_IN, "Typed Name"]

    payloads = [without_ids(body) for _, body in created.values()]
    assert payloads[0] == payloads[1] == payloads[2]
    _, body = created[CUSTOMER]
    assert_reveals_nothing(body, body["data"]["createTicket"]["ticket"], names)
    prefix = ("createTicket", "ticket")
    assert denied(body) == sorted(
        (*prefix, field) for field in ("requester", "requesterEmail", "requesterName")
    )

    nodes = []
    for ticket_id, _ in created.values():
        read = await agent.gql(NODE, {"id": ticket_id})
        assert_reveals_nothing(read, read["data"]["node"], names)
        nodes.append(without_ids(read))
    assert nodes[0] == nodes[1] == nodes[2]


@pytest.mark.promise("P19")
async def test_the_requester_writing_on_the_ticket_grants_need_to_know(as_user: AsUser) -> None:
    agent = await as_user(AGENT)
    ticket_id, _ = await open_for(agent, CUSTOMER)
    before = await agent.gql(NODE, {"id": ticket_id})
    assert before["data"]["node"]["requester"] is None

    customer = await as_user(CUSTOMER)
    own = await customer.gql(NODE, {"id": ticket_id})
    assert own["data"]["node"]["requester"]["email"] == CUSTOMER
    assert (await customer.gql(REPLY, {"id": ticket_id}))["data"]["addMessage"] == {
        "__typename": "AddMessageSuccess"
    }

    read = await agent.gql(NODE, {"id": ticket_id})
    requester = read["data"]["node"]["requester"]
    assert (requester["name"], requester["email"]) == ("Carla Customer", CUSTOMER)


@pytest.mark.promise("P19")
async def test_a_lead_assigning_it_grants_need_to_know_but_the_opener_cannot(
    as_user: AsUser,
) -> None:
    lead = await as_user(LEAD)
    agent_id = str(to_global_id("User", (await user_by_email(AGENT)).id))
    lead_id = str(to_global_id("User", (await user_by_email(LEAD)).id))

    # The lead opens it and assigns it to themselves, then to the agent: neither grants the lead.
    own_id, _ = await open_for(lead, WALK_IN)
    for to in (lead_id, agent_id):
        assert (await lead.gql(ASSIGN, {"id": own_id, "to": to}))["data"]["assignTicket"] == {
            "__typename": "TicketSuccess"
        }
    agent = await as_user(AGENT)
    still = await agent.gql(NODE, {"id": own_id})
    assert still["data"]["node"]["requesterEmail"] is None
    assert WALK_IN not in json.dumps(still)

    # The agent opens it, the lead assigns it to the agent: a step the agent does not control.
    ticket_id, _ = await open_for(agent, WALK_IN)
    await lead.gql(ASSIGN, {"id": ticket_id, "to": agent_id})
    read = await agent.gql(NODE, {"id": ticket_id})
    assert read["data"]["node"]["requesterEmail"] == WALK_IN
    assert read["data"]["node"]["requesterName"] == "Typed Name"
    assert not denied(read)
