"""A released PostgreSQL connection costs no round trip: OCIS leaves no session state to reset.

asyncpg's pool would send ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on
every release; ``models.db.keep_session`` replaces it with nothing. These tests show that is
safe (a served workload leaves no session state on any pooled connection) and that it holds
(a statement is one round trip, and so is the agent's page's every statement, its audit append
included).
"""

from __future__ import annotations

import asyncio.selector_events
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from tests.helpers import Api, StatementCounter
from tests.test_help_desk import ADD
from tests.test_query_counts import AGENT, NESTED_PAGE, ROWS, seed_agent_tickets

AsUser = Callable[[str | None], Awaitable[Api]]

# What a connection could carry from one acquirer to the next, as one row: what asyncpg's reset
# query would undo (a setting changed by SET, not one set back as the tests' truncation does).
SESSION_STATE = """
SELECT
  (SELECT count(*) FROM pg_locks
     WHERE pid = pg_backend_pid() AND locktype = 'advisory') AS advisory_locks,
  (SELECT count(*) FROM pg_listening_channels()) AS channels,
  (SELECT count(*) FROM pg_cursors WHERE name <> '') AS cursors,
  (SELECT coalesce(string_agg(name, ','), '') FROM pg_settings
     WHERE source = 'session' AND setting IS DISTINCT FROM reset_val) AS settings,
  (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared_in_sql,
  (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temporary_tables
"""


@pytest.fixture
def postgres_only(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("the connection pool and its reset query are PostgreSQL's")


class RoundTrips:
    """Writes to the database's sockets: asyncpg sends each query's messages in one write and
    waits for its answer, so each write is one round trip."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    trips = RoundTrips()
    # The event loop's socket transport (asyncio's own: the tests run no uvloop).
    transport: Any = getattr(asyncio.selector_events, "_SelectorSocketTransport")  # noqa: B009
    write = transport.write

    def counting(self: Any, data: Any) -> None:
        if type(self._protocol).__module__.startswith("asyncpg"):
            trips.count += 1
        write(self, data)

    monkeypatch.setattr(transport, "write", counting)
    return trips


@pytest.mark.usefixtures("postgres_only", "app")
async def test_a_statement_outside_transactions_is_one_round_trip(
    round_trips: RoundTrips,
) -> None:
    connection = Tortoise.get_connection("default")
    await connection.execute_query("SELECT 1")  # prepared and cached by asyncpg
    round_trips.count = 0

    await connection.execute_query("SELECT 1")

    assert round_trips.count == 1


@pytest.mark.usefixtures("postgres_only")
async def test_the_agent_page_is_one_round_trip_per_statement(
    as_user: AsUser, count_statements: StatementCounter, round_trips: RoundTrips
) -> None:
    await seed_agent_tickets()
    agent = await as_user(AGENT)
    for _ in range(2):  # statements prepared, data keys cached, the audit head known
        body = await agent.gql(NESTED_PAGE, {"first": ROWS})
        assert "errors" not in body, body
    count_statements.statements.clear()
    round_trips.count = 0

    body = await agent.gql(NESTED_PAGE, {"first": ROWS})

    assert "errors" not in body, body
    statements = count_statements.statements
    # The read audit is one INSERT of its own: no BEGIN and COMMIT around it, no reset after.
    assert sum('INSERT INTO "audit_events"' in sql for sql in statements) == 1, statements
    assert round_trips.count == len(statements), statements


@pytest.mark.usefixtures("postgres_only")
async def test_a_served_workload_leaves_no_session_state(as_user: AsUser) -> None:
    await seed_agent_tickets()
    agent = await as_user(AGENT)
    page = await agent.gql(NESTED_PAGE, {"first": ROWS})
    ticket = page["data"]["tickets"]["edges"][0]["node"]["id"]
    # Changes take the chain's advisory lock, inside their transactions.
    for internal in (False, True):
        added = await agent.gql(
            ADD, {"id": ticket, "body": "Looking into it", "internal": internal}
        )
        assert added["data"]["addMessage"]["__typename"] == "AddMessageSuccess", added
    await agent.gql(NESTED_PAGE, {"first": ROWS})

    client: Any = Tortoise.get_connection("default")
    pool = client._pool
    async with contextlib.AsyncExitStack() as held:
        # Every connection of the pool at once, so that none is checked twice.
        connections = [
            await held.enter_async_context(pool.acquire()) for _ in range(pool.get_size())
        ]
        states = [dict(await connection.fetchrow(SESSION_STATE)) for connection in connections]

    assert len(states) >= 1
    clean = {
        "advisory_locks": 0,
        "channels": 0,
        "cursors": 0,
        "settings": "",
        "prepared_in_sql": 0,
        "temporary_tables": 0,
    }
    assert states == [clean] * len(states)


@pytest.mark.usefixtures("postgres_only", "app")
async def test_a_transaction_whose_begin_fails_gives_its_connection_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More failed BEGINs than the pool holds connections (the server cut them, say), and the
    pool still holds all of its transactions at once (models/db.py _enter_or_give_back)."""
    client: Any = Tortoise.get_connection("default")
    size = client.pool_maxsize
    wrapper = type(client._in_transaction().client)
    begin = wrapper.begin

    async def cut(self: Any) -> None:
        raise asyncpg.exceptions.ConnectionDoesNotExistError("cut during BEGIN")

    monkeypatch.setattr(wrapper, "begin", cut)
    for _ in range(size + 2):
        with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
            async with in_transaction():
                pytest.fail("the body of a transaction whose BEGIN failed ran")
    monkeypatch.setattr(wrapper, "begin", begin)

    together = asyncio.Barrier(size)

    async def hold() -> None:
        async with in_transaction() as transaction:
            await transaction.execute_query("SELECT 1")
            await together.wait()

    await asyncio.wait_for(asyncio.gather(*(hold() for _ in range(size))), 10)
    # And the failed ones left no transaction behind as the task's connection.
    assert not isinstance(Tortoise.get_connection("default"), wrapper)
