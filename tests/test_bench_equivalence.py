"""The benchmark compares like with like: the raw endpoint answers exactly what GraphQL does.

The raw endpoint (``bench.raw_app``) reads rows through a ``Fetch`` callable; here it is fed
by Tortoise's connection (``execute_query_dict``) so the same SQL runs on SQLite and on
PostgreSQL, and its answer is compared byte for byte with the real GraphQL endpoint's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from tortoise import Tortoise

import settings as config
from auth.passwords import hash_password
from bench import QUERY
from bench.dataset import (
    AGENT_EMAIL,
    AGENT_PASSWORD,
    Dataset,
    Sizes,
    copy_into,
    generate,
)
from bench.raw_app import (
    POSTGRES,
    SQLITE,
    RawConfig,
    Row,
    asyncpg_dsn,
    create_app,
    global_id,
)
from models import Team, Ticket, TicketMessage, TicketStatus, User, WalkInRequester, crypto
from models.keys import DataKey
from tests.helpers import ORIGIN, Api, sign_in, user_by_email


def benchmark_query(first: int, messages_first: int) -> str:
    return QUERY.replace("first: 50", f"first: {first}").replace(
        "first: 10", f"first: {messages_first}"
    )


async def tortoise_fetch(sql: str, values: Sequence[Any]) -> Sequence[Row]:
    connection = Tortoise.get_connection("default")
    rows: Sequence[Row] = await connection.execute_query_dict(sql, list(values))
    return rows


async def raw_answer(
    settings: config.Settings, caller: UUID, first: int, messages_first: int
) -> httpx.Response:
    """The raw endpoint's answer, mounted on the test database through Tortoise."""
    raw = RawConfig(
        database_url=settings.database_url,
        master_key=settings.master_key,
        caller_id=caller,
        first=first,
        messages_first=messages_first,
    )
    dialect = POSTGRES if settings.database_url.startswith("postgres") else SQLITE
    application = create_app(raw, fetch=tortoise_fetch, dialect=dialect)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        return await http.post("/graphql", json={"query": QUERY})


async def seed_desk() -> dict[str, UUID]:
    """On top of the demo data: a busy queue, odd requesters, one long thread, tied times."""
    team = await Team.get(name="Support")
    agent, agent2 = (
        await user_by_email("agent@example.com"),
        await user_by_email("agent2@example.com"),
    )
    customers = [
        await user_by_email("customer@example.com"),
        await user_by_email("customer2@example.com"),
    ]
    statuses = list(TicketStatus)
    for index in range(80):
        ticket = await Ticket.create(
            subject=f"Question {index} about my order",
            requester=customers[index % 2],
            assignee=(agent, agent2, None)[index % 3],
            team=team,
            status=statuses[index % 4],
        )
        await TicketMessage.create(ticket=ticket, author=customers[index % 2], body=f"Hi {index}")
        if index % 5 == 0:
            await TicketMessage.create(
                ticket=ticket, author=agent, body=f"Internal: note {index}", internal=True
            )
    guest = await Ticket.create(
        subject="Sent by email",
        requester_name="Gina Guest",
        requester_email="gina@example.com",
        assignee=agent,
        team=team,
    )
    await TicketMessage.create(ticket=guest, body="Hello from my inbox")
    from_staff = await Ticket.create(subject="Laptop broken", requester=agent2, team=team)
    await TicketMessage.create(ticket=from_staff, author=agent2, body="Screen is black")
    own = await Ticket.create(subject="My own request", requester=agent, team=team)
    await TicketMessage.create(ticket=own, author=agent, body="Reminder to self")
    long = await Ticket.create(
        subject="Long thread", requester=customers[0], assignee=agent, team=team
    )
    for number in range(12):
        author = customers[0] if number % 2 == 0 else agent
        await TicketMessage.create(
            ticket=long, author=author, body=f"Message {number}", internal=number == 3
        )
    tied = datetime.now(UTC) + timedelta(days=1)
    for index in range(4):
        same_time = await Ticket.create(
            subject=f"Tied {index}",
            requester=customers[1],
            assignee=agent,
            team=team,
            created_at=tied,
        )
        await TicketMessage.create(ticket=same_time, author=customers[1], body=f"Tie {index}")
    return {"guest": guest.id, "from_staff": from_staff.id, "own": own.id, "long": long.id}


def _nodes(body: bytes) -> dict[str, dict[str, Any]]:
    answer = json.loads(body)
    return {edge["node"]["id"]: edge["node"] for edge in answer["data"]["tickets"]["edges"]}


async def test_raw_endpoint_returns_the_graphql_bytes_for_the_agent_page(
    app: Any, client: httpx.AsyncClient, demo: None, app_settings: config.Settings
) -> None:
    tickets = await seed_desk()
    agent = await user_by_email("agent@example.com")
    api = Api(client, await sign_in(client, "agent@example.com"))

    graphql = await api.post(QUERY)
    raw = await raw_answer(app_settings, agent.id, 50, 10)

    assert graphql.status_code == raw.status_code == 200
    assert raw.content == graphql.content
    nodes = _nodes(graphql.content)
    assert len(nodes) == 50
    tied = await Ticket.filter(created_at__gt=datetime.now(UTC)).values_list("id", flat=True)
    newest_first = sorted((UUID(str(ident)) for ident in tied), reverse=True)
    assert list(nodes)[:4] == [global_id("Ticket", str(ident)) for ident in newest_first]
    long = nodes[global_id("Ticket", str(tickets["long"]))]
    bodies = [edge["node"]["body"] for edge in long["messages"]["edges"]]
    assert bodies == [f"Message {number}" for number in range(10)]
    assert nodes[global_id("Ticket", str(tickets["guest"]))]["requester"] is None
    assert nodes[global_id("Ticket", str(tickets["from_staff"]))]["requester"] == {
        "name": "Sam Agent",
        "email": "agent2@example.com",
    }
    assert nodes[global_id("Ticket", str(tickets["own"]))]["requester"] == {
        "name": "Alex Agent",
        "email": "agent@example.com",
    }
    assert await TicketMessage.filter(ticket_id=tickets["long"], internal=True).count() == 1


async def test_raw_endpoint_matches_graphql_for_another_agent_and_page_shape(
    app: Any, client: httpx.AsyncClient, demo: None, app_settings: config.Settings
) -> None:
    await seed_desk()
    agent2 = await user_by_email("agent2@example.com")
    api = Api(client, await sign_in(client, "agent2@example.com"))

    graphql = await api.post(benchmark_query(7, 1))
    raw = await raw_answer(app_settings, agent2.id, 7, 1)

    assert raw.content == graphql.content
    nodes = _nodes(graphql.content)
    assert len(nodes) == 7
    assert all(len(node["messages"]["edges"]) == 1 for node in nodes.values())


async def test_raw_endpoint_refuses_an_unknown_caller(
    app: Any, app_settings: config.Settings
) -> None:
    answer = await raw_answer(app_settings, UUID(int=7), 50, 10)

    assert answer.status_code == 401
    assert answer.json() == {"error": "The configured caller does not exist."}


async def write_dataset(dataset: Dataset, database_url: str) -> None:
    """As `make bench` does on PostgreSQL (COPY); on SQLite, plain INSERTs of the same rows."""
    if database_url.startswith("postgres"):
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await copy_into(connection, dataset)
        finally:
            await connection.close()
        return
    connection = Tortoise.get_connection("default")
    for table in dataset.tables:
        columns = ", ".join(f'"{column}"' for column in table.columns)
        marks = ", ".join("?" for _ in table.columns)
        rows = [
            [str(value) if isinstance(value, UUID) else value for value in record]
            for record in table.records
        ]
        await connection.execute_many(
            f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})',  # noqa: S608 - our table names
            rows,
        )


SMALL = Sizes(users=30, agents=3, tickets=240, messages_per_ticket=3)


async def test_bench_data_set_reads_back_through_the_orm_and_both_endpoints_agree(
    app: Any, client: httpx.AsyncClient, app_settings: config.Settings
) -> None:
    dataset = generate(
        crypto.keyring(),
        await hash_password(AGENT_PASSWORD),
        SMALL,
        seed=3,
        now=datetime.now(UTC),
    )
    await write_dataset(dataset, app_settings.database_url)

    users, tickets = await User.all(), await Ticket.all()
    messages = await TicketMessage.all()
    assert (len(users), len(tickets), len(messages)) == (30, 240, 720)
    agent = await user_by_email(AGENT_EMAIL)
    assert agent.id == dataset.agent_id
    assert agent.name == "Bea Bench"
    assert agent.roles == ["agent"]
    assert sum(1 for user in users if user.roles == ["agent"]) == 3
    guests = [ticket for ticket in tickets if ticket.requester_id is None]
    assert len(guests) > 0
    assert all(ticket.requester_name and ticket.requester_email for ticket in guests)
    walk_ins = {walk_in.id: walk_in for walk_in in await WalkInRequester.all()}
    assert [walk_ins[ticket.walk_in_id].email for ticket in guests if ticket.walk_in_id] == [
        ticket.requester_email for ticket in guests
    ]
    assert all(message.body for message in messages)

    api = Api(client, await sign_in(client, AGENT_EMAIL, AGENT_PASSWORD))
    graphql = await api.post(QUERY)
    raw = await raw_answer(app_settings, dataset.agent_id, 50, 10)

    assert raw.content == graphql.content
    nodes = _nodes(graphql.content)
    assert len(nodes) == 50
    assert sum(len(node["messages"]["edges"]) for node in nodes.values()) == 150


async def test_bench_rows_have_exactly_the_orm_columns(app: Any) -> None:
    dataset = generate(
        crypto.keyring(),
        "argon2-hash-placeholder",
        Sizes(users=4, agents=1, tickets=2),
        now=datetime.now(UTC),
    )
    models = {
        "teams": Team,
        "users": User,
        "tickets": Ticket,
        "ticket_messages": TicketMessage,
        "walk_in_requesters": WalkInRequester,
        "data_keys": DataKey,
    }

    for table in dataset.tables:
        model = models[table.name]
        assert model._meta.db_table == table.name
        assert sorted(table.columns) == sorted(model._meta.db_fields)
        assert all(len(record) == len(table.columns) for record in table.records)
