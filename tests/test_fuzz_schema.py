"""Fuzzing (issue 15 item 6): hypothesis-graphql generates queries and mutations from the
committed schema and sends them as each role.

Whatever it sends, OCIS answers without a 5xx, every error carries a code from the README's
table (never `INTERNAL_SERVER_ERROR`, which is what an unmasked exception becomes), a field
refused with `FORBIDDEN` holds `null`, and an anonymous caller or a customer never receives a
value they may not read: other people's addresses, other customers' names, tickets and messages,
and internal notes (all taken from the seeded database).

Identifiers are drawn partly from the real ones of the demo data, so that generated operations
reach resolvers and not only argument validation. The number of cases per role and operation
type is `OCIS_FUZZ_EXAMPLES` (default 50); CI runs derandomised, so a failure repeats.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import mutations, queries

import schema
from models import Role, Ticket, TicketMessage, User
from resolvers.demo import DEMO_ACCOUNTS
from schema.relay import to_global_id
from settings import Settings
from tests.helpers import sign_in
from tests.test_error_codes import _documented

EXAMPLES = int(os.environ.get("OCIS_FUZZ_EXAMPLES", "50"))
SDL = schema.SDL_PATH.read_text(encoding="utf-8")
ROLES = [None, *(account.email for account in DEMO_ACCOUNTS)]
CUSTOMER = "customer@example.com"

# Real global ids of the demo data, filled in once it is seeded; the strategies read it lazily.
ID_POOL: list[str] = []


def _id_node(index: int, text: str) -> graphql.StringValueNode:
    if ID_POOL and index < 3 * len(ID_POOL):
        return graphql.StringValueNode(value=ID_POOL[index % len(ID_POOL)])
    return graphql.StringValueNode(value=text)


def _string(values: st.SearchStrategy[str]) -> st.SearchStrategy[graphql.ValueNode]:
    return values.map(lambda value: graphql.StringValueNode(value=value))


SCALARS: dict[str, st.SearchStrategy[graphql.ValueNode]] = {
    "ID": st.builds(_id_node, st.integers(0, 40), st.text(max_size=40)),
    "Date": _string(st.one_of(st.dates().map(lambda day: day.isoformat()), st.text(max_size=12))),
    "DateTime": _string(
        st.one_of(
            st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat()),
            st.text(max_size=30),
        )
    ),
}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


@pytest.fixture
def app_settings(app_settings: Settings) -> Settings:
    """The per-minute cost budget would refuse most of a fuzz run; everything else as served."""
    return dataclasses.replace(app_settings, cost_budget_per_minute=10**9)


async def _forbidden_values(viewer: str | None) -> set[str]:
    """Demo values the viewer may never receive, taken from the database, not typed here."""
    people = {user.email: user for user in await User.all()}
    values: set[str] = set()
    for email, user in people.items():
        if email != viewer:
            values.add(email)
            # A customer may read the name of staff on their tickets, never another customer's.
            if viewer is None or Role.CUSTOMER.value in user.roles:
                values.add(user.name)

    def others(ticket: Ticket) -> bool:
        return viewer is None or ticket.requester is None or ticket.requester.email != viewer

    for ticket in await Ticket.all().prefetch_related("requester"):
        if others(ticket):
            values.add(ticket.subject)
    for message in await TicketMessage.all().prefetch_related("ticket__requester"):
        if message.internal or others(message.ticket):
            values.add(message.body)
    # Generic words a customer's own data shares with the values above would make noise.
    return {value for value in values if len(value) >= 8}


async def _id_pool() -> list[str]:
    ids = [str(to_global_id("User", user.id)) for user in await User.all()]
    ids += [str(to_global_id("Ticket", ticket.id)) for ticket in await Ticket.all()]
    ids += [str(to_global_id("TicketMessage", message.id)) for message in await TicketMessage.all()]
    return ids


def _walk(data: Any, path: list[str | int]) -> Any:
    for step in path:
        if data is None:
            return None
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class Caller:
    """One role's session on the app, signed in again when a generated mutation ended it."""

    def __init__(self, http: httpx.AsyncClient, email: str | None) -> None:
        self.http = http
        self.email = email
        self.cookie: str | None = None

    async def send(self, document: str) -> httpx.Response:
        if self.email is not None and self.cookie is None:
            self.cookie = await sign_in(self.http, self.email)
        headers = {"cookie": f"ocis_session={self.cookie}"} if self.cookie else {}
        self.http.cookies.clear()
        response = await self.http.post("/graphql", json={"query": document}, headers=headers)
        if response.status_code == 401:
            self.cookie = None
        return response


def check(response: httpx.Response, document: str, forbidden: set[str], codes: set[str]) -> None:
    """The answer's invariants, whatever the document."""
    assert response.status_code < 500, (response.status_code, document, response.text)
    body = response.json()
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code is None and not error.get("path"):
            continue  # the document's shape (parse or validation): the request did not run
        assert code in codes, (code, error, document)
        assert code != "INTERNAL_SERVER_ERROR", (error, document)
        if code == "FORBIDDEN" and error.get("path"):
            denied = _walk(body.get("data"), error["path"])
            assert denied is None, (error["path"], denied, document)
    leaked = {value for value in _strings(body.get("data")) if value in forbidden}
    text = json.dumps(body)
    leaked |= {value for value in forbidden if json.dumps(value)[1:-1] in text}
    assert not leaked, (leaked, document)


PARSED = graphql.build_schema(SDL)
ROOT_FIELDS = {
    "query": sorted(PARSED.query_type.fields) if PARSED.query_type else [],
    "mutation": sorted(PARSED.mutation_type.fields) if PARSED.mutation_type else [],
}
_STRATEGIES: dict[tuple[str, str], st.SearchStrategy[str]] = {}


def documents(operation: str, field: str) -> st.SearchStrategy[str]:
    """Documents of one root field each: every field gets cases, and one case stays small."""
    key = (operation, field)
    if key not in _STRATEGIES:
        generate = queries if operation == "query" else mutations
        _STRATEGIES[key] = generate(PARSED, fields=[field], custom_scalars=SCALARS)
    return _STRATEGIES[key]


@dataclasses.dataclass
class Run:
    """What one parametrised test learns from the database before its first case."""

    caller: Caller
    forbidden: set[str]
    codes: set[str]
    cases: int = 0


RUNS: dict[int, Run] = {}


async def _run_for(http: httpx.AsyncClient, role: str | None) -> Run:
    if id(http) not in RUNS:
        ID_POOL[:] = await _id_pool()
        RUNS.clear()
        RUNS[id(http)] = Run(
            Caller(http, role),
            # Staff may read the demo data; their answers are still checked for 5xx, codes and
            # FORBIDDEN.
            await _forbidden_values(role) if role in (None, CUSTOMER) else set(),
            _documented(),
        )
    return RUNS[id(http)]


@pytest.mark.promise("P19")
@pytest.mark.parametrize("operation", ["query", "mutation"])
@pytest.mark.parametrize("role", ROLES, ids=lambda email: (email or "anonymous").split("@")[0])
@FUZZ
@given(data=st.data())
async def test_generated_operations_answer_without_5xx_unmasked_errors_or_denied_data(
    client: httpx.AsyncClient, demo: None, role: str | None, operation: str, data: st.DataObject
) -> None:
    run = await _run_for(client, role)
    field = data.draw(st.sampled_from(ROOT_FIELDS[operation]), label="field")
    document = data.draw(documents(operation, field), label="document")
    run.cases += 1
    check(await run.caller.send(document), document, run.forbidden, run.codes)
