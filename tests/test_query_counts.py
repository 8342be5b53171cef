"""No N+1: a nested ticket page costs the same few SQL statements for 10 rows as for 50."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from models import Role, Team, Ticket, TicketMessage, User
from models.crypto import DataCipher
from tests.helpers import Api, StatementCounter, user_by_email

AsUser = Callable[[str | None], Awaitable[Api]]

AGENT = "agent@example.com"
CUSTOMER = "customer@example.com"
MAX_STATEMENTS = 8
ROWS = 50

NESTED_PAGE = """
query ($first: Int!) {
  tickets(first: $first) {
    edges { node {
      id subject status
      requester { name email }
      assignee { name }
      messages(first: 10) { edges { node { body author { name } } } }
    } }
  }
}
"""


async def seed_agent_tickets() -> None:
    """Fifty customers, one ticket each, assigned to agent@, three public messages each."""
    agent = await user_by_email(AGENT)
    team = await Team.get(name="Support")
    async with in_transaction():
        for n in range(ROWS):
            customer = User(name=f"Customer {n:02d}", roles=[Role.CUSTOMER.value])
            customer.set_email(f"customer-{n:02d}@example.com")
            await customer.save()
            ticket = await Ticket.create(
                subject=f"Counted ticket {n:02d}", requester=customer, assignee=agent, team=team
            )
            for author, body in ((customer, "question"), (agent, "answer"), (customer, "thanks")):
                await TicketMessage.create(ticket=ticket, author=author, body=f"{body} {n:02d}")


async def seed_customer_tickets() -> None:
    """Fifty tickets of customer@, assigned to agent@, three replies and one internal note."""
    agent = await user_by_email(AGENT)
    customer = await user_by_email(CUSTOMER)
    team = await Team.get(name="Support")
    async with in_transaction():
        for n in range(ROWS):
            ticket = await Ticket.create(
                subject=f"Counted ticket {n:02d}", requester=customer, assignee=agent, team=team
            )
            for author, body in ((customer, "question"), (agent, "answer"), (customer, "thanks")):
                await TicketMessage.create(ticket=ticket, author=author, body=f"{body} {n:02d}")
            await TicketMessage.create(
                ticket=ticket, author=agent, body=f"note {n:02d}", internal=True
            )


async def measure(
    api: Api, counter: StatementCounter, first: int
) -> tuple[int, list[dict[str, Any]]]:
    counter.statements.clear()
    body = await api.gql(NESTED_PAGE, {"first": first})
    statements = len(counter.statements)
    assert "errors" not in body, body
    # The counter must see the page itself, or equal counts would prove nothing.
    assert any('FROM "tickets"' in sql for sql in counter.statements), counter.statements
    assert any('FROM "ticket_messages"' in sql for sql in counter.statements)
    return statements, [edge["node"] for edge in body["data"]["tickets"]["edges"]]


def expected_thread(n: int) -> list[dict[str, Any]]:
    name = f"Customer {n:02d}"
    return [
        {"node": {"body": f"question {n:02d}", "author": {"name": name}}},
        {"node": {"body": f"answer {n:02d}", "author": {"name": "Alex Agent"}}},
        {"node": {"body": f"thanks {n:02d}", "author": {"name": name}}},
    ]


async def test_agent_ticket_page_has_no_n_plus_one(
    as_user: AsUser, count_statements: StatementCounter
) -> None:
    await seed_agent_tickets()
    agent = await as_user(AGENT)

    small_count, small = await measure(agent, count_statements, 10)
    large_count, large = await measure(agent, count_statements, 50)

    assert len(small) == 10
    assert len(large) == 50
    assert [node["id"] for node in large[:10]] == [node["id"] for node in small]
    for position, node in enumerate(large):
        n = ROWS - 1 - position
        assert node["subject"] == f"Counted ticket {n:02d}"
        assert node["status"] == "OPEN"
        assert node["requester"] == {
            "name": f"Customer {n:02d}",
            "email": f"customer-{n:02d}@example.com",
        }
        assert node["assignee"] == {"name": "Alex Agent"}
        assert node["messages"]["edges"] == expected_thread(n)
    assert small_count == large_count, count_statements.statements
    assert large_count <= MAX_STATEMENTS, count_statements.statements


async def test_customer_ticket_page_has_no_n_plus_one(
    as_user: AsUser, count_statements: StatementCounter
) -> None:
    await seed_customer_tickets()
    customer = await as_user(CUSTOMER)

    small_count, small = await measure(customer, count_statements, 10)
    large_count, large = await measure(customer, count_statements, 50)

    assert len(small) == 10
    assert len(large) == 50
    for position, node in enumerate(large):
        n = ROWS - 1 - position
        assert node["subject"] == f"Counted ticket {n:02d}"
        assert node["requester"] == {"name": "Carla Customer", "email": CUSTOMER}
        assert node["assignee"] == {"name": "Alex Agent"}
        assert [edge["node"]["body"] for edge in node["messages"]["edges"]] == [
            f"question {n:02d}",
            f"answer {n:02d}",
            f"thanks {n:02d}",
        ]
    assert small_count == large_count, count_statements.statements
    assert large_count <= MAX_STATEMENTS, count_statements.statements


# The encrypted columns NESTED_PAGE selects: every other one is loaded with its row, not opened.
SELECTED_COLUMNS = {"tickets/subject", "users/name", "users/email", "ticket_messages/body"}


def _personal_leaves(node: dict[str, Any]) -> int:
    """The values of encrypted columns in one ticket node of NESTED_PAGE's answer."""
    messages = node["messages"]["edges"]
    return 1 + len(node["requester"]) + len(node["assignee"]) + 2 * len(messages)


async def test_a_page_opens_only_the_values_it_selects(
    as_user: AsUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_agent_tickets()
    agent = await as_user(AGENT)
    opened: list[str] = []
    open_parsed = DataCipher.open_parsed

    def counting(cipher: DataCipher, raw: bytes, associated_data: str) -> str:
        opened.append(associated_data)
        return open_parsed(cipher, raw, associated_data)

    monkeypatch.setattr(DataCipher, "open_parsed", counting)
    body = await agent.gql(NESTED_PAGE, {"first": ROWS})

    assert "errors" not in body, body
    nodes = [edge["node"] for edge in body["data"]["tickets"]["edges"]]
    assert len(nodes) == ROWS
    # Loaded rows hold locale, time zone, phone... too: none of those is opened.
    assert {aad.rsplit("/", 1)[0] for aad in opened} == SELECTED_COLUMNS
    # At most once per value shown (a person shown twice is one row, opened once).
    assert len(opened) == len(set(opened))
    assert len(opened) <= sum(_personal_leaves(node) for node in nodes)
