"""A query is priced before anything runs: refused above the maximum, charged against a budget
per caller per minute in the shared store (issue 15, item 1)."""

from __future__ import annotations

import ast
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    Undefined,
    get_introspection_query,
    get_named_type,
    get_operation_ast,
    is_non_null_type,
    parse,
    validate,
)
from redis.asyncio import Redis
from starlette.applications import Starlette

import settings as config
from bench import QUERY as BENCH_PAGE
from models import AuditEvent
from privacy import audit
from resolvers.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from schema import schema
from schema.cost import (
    PAGE_ARGUMENT,
    PAGE_MAXIMUMS,
    UNPAGED_LIST_SIZE,
    is_connection,
    operation_cost,
)
from schema.extensions import _cost_of
from tests.helpers import ORIGIN, Api, another_instance, sign_in

ROOT = Path(__file__).resolve().parent.parent
SCHEMA: GraphQLSchema = schema._schema
CUSTOMER = "customer@example.com"
ADMIN = "admin@example.com"
# Arguments a paged field needs besides `first`: any well-formed id will do, nothing runs.
SOME_ID = '"VGVhbTowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA"'
BENCH_PAGE_COST = 1951
EMBEDDED_LEG_REDIS = os.environ.get("OCIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")


def cost(document: str, variables: dict[str, Any] | None = None, name: str | None = None) -> int:
    """As the server prices it; without variables, as if each were absent (its default)."""
    parsed = parse(document)
    assert validate(SCHEMA, parsed) == [], document
    if variables is None:
        operation = get_operation_ast(parsed, name)
        assert operation is not None
        fragments = {
            each.name.value: each
            for each in parsed.definitions
            if isinstance(each, FragmentDefinitionNode)
        }
        return operation_cost(SCHEMA, operation, fragments, {})
    found = _cost_of(SCHEMA, parsed, name, variables)
    assert found is not None
    return found


# --- the price of a document -----------------------------------------------------------------


def test_each_field_costs_one_and_a_page_multiplies_what_is_below_it() -> None:
    assert cost("{ me { id name } }") == 3
    assert cost("{ tickets(first: 7) { edges { node { id subject } } } }") == 1 + 7 * (1 + 3)
    assert cost("{ tickets { edges { node { id } } } }") == 1 + DEFAULT_PAGE_SIZE * 3
    assert cost("{ myNotices { kind } }") == 1 + 20
    assert cost(f"{{ auditTrail(subjectId: {SOME_ID}) {{ action }} }}") == 1 + 50
    assert cost("{ teams { id members { id } } }") == 1 + UNPAGED_LIST_SIZE * (
        1 + 1 + UNPAGED_LIST_SIZE
    )
    assert BENCH_PAGE_COST == cost(BENCH_PAGE)


def test_a_page_larger_than_the_resolver_serves_is_priced_at_its_maximum() -> None:
    assert cost("{ tickets(first: 100000) { edges { cursor } } }") == 1 + MAX_PAGE_SIZE * 2
    assert cost("{ tickets(first: -5) { edges { cursor } } }") == 1 + 1 * 2
    assert cost("{ myNotices(first: 1000) { kind } }") == 1 + PAGE_MAXIMUMS["Query.myNotices"]


NESTED = (
    "{ tickets(first: 100) { edges { node {"
    " messages(first: 100) { edges { node { body } } } } } } }"
)
NESTED_COST = 1 + 100 * (1 + 1 + (1 + 100 * (1 + 1 + 1)))


def test_variables_are_coerced_and_their_defaults_apply() -> None:
    by_variable = """query ($outer: Int, $inner: Int = 100) {
      tickets(first: $outer) { edges { node {
        messages(first: $inner) { edges { node { body } } } } } }
    }"""
    assert cost(by_variable, {"outer": 100}) == NESTED_COST == cost(NESTED)
    assert cost(by_variable, {"outer": 100, "inner": 100}) == NESTED_COST
    assert cost(by_variable, {"outer": 3, "inner": 2}) == 1 + 3 * (1 + 1 + (1 + 2 * 3))
    # An absent or null page size is the default page, as the resolver reads it.
    assert cost(by_variable, {"inner": None}) == 1 + DEFAULT_PAGE_SIZE * (
        1 + 1 + (1 + DEFAULT_PAGE_SIZE * 3)
    )


def test_fragments_and_inline_fragments_are_followed() -> None:
    through_fragments = """
    query { ...Page }
    fragment Page on Query { tickets(first: 100) { edges { node { ...Thread } } } }
    fragment Thread on Ticket { ... on Ticket { messages(first: 100) { ...Bodies } } }
    fragment Bodies on TicketMessageConnection { edges { node { body } } }
    """
    assert cost(through_fragments) == NESTED_COST
    # Spread twice in one selection, a fragment runs once (execution merges it).
    twice = "query { ...A ...A } fragment A on Query { tickets(first: 10) { edges { cursor } } }"
    assert cost(twice) == 1 + 10 * 2
    by_node = (
        '{ node(id: "x") { ... on Ticket { messages(first: 100) { edges { node { body } } } } } }'
    )
    assert cost(by_node) == 1 + 1 + 100 * 3


def test_a_fragment_cycle_is_priced_without_looping() -> None:
    # Validation refuses cycles first; pricing must still end if it ever meets one.
    cyclic = parse(
        "query { ...A } fragment A on Query { me { id } ...B } fragment B on Query { ...A }"
    )
    assert _cost_of(SCHEMA, cyclic, None, {}) == 2


def test_fragments_doubling_at_every_level_are_priced_in_linear_time() -> None:
    levels = 60
    fragments = " ".join(
        f"fragment F{n} on Query {{ ...F{n + 1} ... on Query {{ ...F{n + 1} }} }}"
        for n in range(levels)
    )
    document = parse(f"query {{ ...F0 }} {fragments} fragment F{levels} on Query {{ me {{ id }} }}")
    started = time.monotonic()
    priced = _cost_of(SCHEMA, document, None, {})
    assert time.monotonic() - started < 1.0
    assert priced == 2**levels * 2


def test_introspection_is_priced_by_its_size_and_graphiql_s_query_passes() -> None:
    assert cost(get_introspection_query()) < config.DEFAULT_MAX_QUERY_COST // 10


def _paged_fields() -> list[tuple[GraphQLObjectType, str, GraphQLField]]:
    found: list[tuple[GraphQLObjectType, str, GraphQLField]] = []
    for type_ in SCHEMA.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
            found.extend(
                (type_, name, field)
                for name, field in type_.fields.items()
                if PAGE_ARGUMENT in field.args
            )
    return found


def test_every_paged_field_has_a_known_maximum() -> None:
    """A paged field is a connection (resolvers/pagination.py) or its maximum is declared."""
    paged = {f"{type_.name}.{name}": field for type_, name, field in _paged_fields()}
    lists = {key for key, field in paged.items() if not is_connection(get_named_type(field.type))}
    assert lists == set(PAGE_MAXIMUMS)
    for type_ in SCHEMA.type_map.values():
        if is_connection(type_):
            assert isinstance(type_, GraphQLObjectType)
            assert set(type_.fields) == {"edges", "pageInfo"}, type_.name


# --- generated from the schema: a page of pages is refused ----------------------------------


def _args(field: GraphQLField) -> str:
    given = [f"{PAGE_ARGUMENT}: 100"]
    given += [
        f"{name}: {SOME_ID}"
        for name, argument in field.args.items()
        if is_non_null_type(argument.type) and argument.default_value is Undefined
    ]
    return "(" + ", ".join(given) + ")"


def _items(field: GraphQLField) -> tuple[GraphQLObjectType, str, str]:
    """The type of one item of a paged field, and how to open and close a selection of it."""
    named = get_named_type(field.type)
    if is_connection(named):
        assert isinstance(named, GraphQLObjectType)
        edge = get_named_type(named.fields["edges"].type)
        assert isinstance(edge, GraphQLObjectType)
        node = get_named_type(edge.fields["node"].type)
        assert isinstance(node, GraphQLObjectType)
        return node, "{ edges { node { ", " } } }"
    assert isinstance(named, GraphQLObjectType)
    return named, "{ ", " }"


def _inner_pages(
    type_: GraphQLObjectType, depth: int = 3
) -> Iterator[tuple[str, str, GraphQLObjectType, str]]:
    """(selection up to, selection after, owner type, field name) of paged fields below."""
    if depth == 0:
        return
    for name, field in type_.fields.items():
        named = get_named_type(field.type)
        if PAGE_ARGUMENT in field.args:
            item, opening, closing = _items(field)
            yield f"{name}{_args(field)} {opening}id", f"{closing}", type_, name
        elif isinstance(named, GraphQLObjectType) and not is_connection(named):
            for before, after, owner, inner in _inner_pages(named, depth - 1):
                yield f"{name} {{ {before}", f"{after} }}", owner, inner


def nested_documents() -> list[tuple[str, str]]:
    """For every paged field at the root, each paged field reachable below it, both 100."""
    query = SCHEMA.query_type
    assert query is not None
    documents = []
    for name, field in query.fields.items():
        if PAGE_ARGUMENT not in field.args:
            continue
        item, opening, closing = _items(field)
        for before, after, owner, inner in _inner_pages(item):
            documents.append(
                (
                    f"{name} > {owner.name}.{inner}",
                    f"{{ {name}{_args(field)} {opening}{before}{after}{closing} }}",
                )
            )
    return documents


def test_the_generated_documents_reach_every_nested_paged_field() -> None:
    query = SCHEMA.query_type
    assert query is not None
    nested = {f"{type_.name}.{name}" for type_, name, _ in _paged_fields() if type_ is not query}
    reached = {label.split(" > ")[1] for label, _ in nested_documents()}
    assert nested == reached
    roots = {label.split(" > ")[0] for label, _ in nested_documents()}
    assert {"tickets", "myOpenTickets", "teamQueue"} <= roots
    print(f"nested 100 x 100 documents: {len(nested_documents())}")  # noqa: T201


async def reads() -> int:
    return await AuditEvent.filter(action=audit.READ_ACTION).count()


@pytest.mark.parametrize(("label", "document"), nested_documents(), ids=lambda v: str(v)[:40])
async def test_a_page_of_pages_of_100_is_refused_before_anything_runs(
    as_user: Any, label: str, document: str
) -> None:
    priced = cost(document)
    assert priced > config.DEFAULT_MAX_QUERY_COST
    for email in (CUSTOMER, ADMIN):
        api = await as_user(email)
        before = await reads()
        body = await api.gql(document)
        assert body == {
            "data": None,
            "errors": [
                {
                    "message": f"This query costs {priced}, above the maximum of"
                    f" {config.DEFAULT_MAX_QUERY_COST} per request; ask for smaller pages or"
                    " fewer nested lists.",
                    "extensions": {
                        "code": "QUERY_TOO_COSTLY",
                        "cost": priced,
                        "maxCost": config.DEFAULT_MAX_QUERY_COST,
                    },
                }
            ],
        }, label
        assert await reads() == before


async def test_no_resolver_runs_on_refusal(as_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import resolvers.tickets

    called: list[str] = []
    original = resolvers.tickets.list_tickets

    async def spy(*args: Any, **kwargs: Any) -> Any:
        called.append("list_tickets")
        return await original(*args, **kwargs)

    monkeypatch.setattr(resolvers.tickets, "list_tickets", spy)
    admin = await as_user(ADMIN)
    before = await reads()
    refused = await admin.gql(NESTED.replace("body", "body author { name email }"))
    assert refused["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert called == []
    assert await reads() == before
    served = await admin.gql(BENCH_PAGE)
    assert "errors" not in served, served
    assert called == ["list_tickets"]
    assert await reads() > before  # the same request, priced within bounds, does read


# --- every legitimate document passes ---------------------------------------------------------


HOSTILE = {"test_query_cost.py", "test_production_limits.py"}


def legitimate_documents() -> list[tuple[str, str, str | None]]:
    """Every constant GraphQL document in the tests and the bench that the schema validates,
    but for the tests that send costly documents on purpose."""
    found = []
    for path in sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "bench").glob("*.py")]):
        if path.name in HOSTILE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            text = node.value.strip()
            if not text.startswith(("{", "query", "mutation")):
                continue
            try:
                parsed = parse(text)
            except GraphQLError:
                continue
            if validate(SCHEMA, parsed):
                continue
            for definition in parsed.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    name = definition.name.value if definition.name else None
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", text, name))
    return found


def test_the_bench_page_and_every_document_of_the_tests_pass() -> None:
    priced = sorted(
        ((cost(text, name=name), where) for where, text, name in legitimate_documents()),
        reverse=True,
    )
    assert len(priced) > 150
    costliest, where = priced[0]
    print(  # noqa: T201 - the figures belong in the test output
        f"documents priced: {len(priced)}; bench page {cost(BENCH_PAGE)};"
        f" costliest {costliest} ({where}); GraphiQL introspection"
        f" {cost(get_introspection_query())}; 100 x 100 {NESTED_COST};"
        f" maximum {config.DEFAULT_MAX_QUERY_COST}"
    )
    assert costliest <= config.DEFAULT_MAX_QUERY_COST
    assert NESTED_COST > config.DEFAULT_MAX_QUERY_COST


async def test_the_bench_page_is_served(as_user: Any) -> None:
    agent = await as_user("agent@example.com")
    body = await agent.gql(BENCH_PAGE)
    assert "errors" not in body, body
    assert body["data"]["tickets"]["edges"]


async def test_staff_run_graphiql_s_introspection_query(as_user: Any) -> None:
    body = await (await as_user(ADMIN)).gql(get_introspection_query())
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


# --- the budget per caller per minute, in the shared store ------------------------------------


@asynccontextmanager
async def instances_on_one_redis(
    app: Starlette, settings: config.Settings
) -> AsyncIterator[tuple[Starlette, Starlette]]:
    """Two app instances, each with its own connection to one real Redis (on the embedded leg,
    the test Redis database)."""
    url = settings.redis_url or EMBEDDED_LEG_REDIS
    tight = replace(settings, redis_url=url, max_query_cost=2000, cost_budget_per_minute=4000)
    cleaner: Redis = Redis.from_url(url)
    try:
        async for key in cleaner.scan_iter(match="ocis:*"):
            await cleaner.delete(key)
        async with (
            another_instance(app, tight) as first,
            another_instance(app, tight) as second,
        ):
            assert first.state.store is not second.state.store
            yield first, second
    finally:
        if not settings.redis_url:
            async for key in cleaner.scan_iter(match="ocis:*"):
                await cleaner.delete(key)
        await cleaner.aclose()


@asynccontextmanager
async def caller(app: Starlette, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=ORIGIN, headers={"origin": ORIGIN}
    ) as http:
        yield http


def assert_over_budget(response: httpx.Response, priced: int) -> None:
    assert response.status_code == 429
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": f"Too many costly queries this minute (this one costs {priced}, the"
                f" budget is 4000 a minute); try again in {retry_after} s.",
                "extensions": {
                    "code": "RATE_LIMITED",
                    "cost": priced,
                    "retryAfterSeconds": retry_after,
                },
            }
        ],
    }


async def test_the_budget_is_shared_by_two_instances_on_one_redis(
    app: Starlette, app_settings: config.Settings, demo: None
) -> None:
    async with (
        instances_on_one_redis(app, app_settings) as (first, second),
        caller(first, "198.51.100.20") as one,
        caller(second, "198.51.100.21") as other,
    ):
        agent = await sign_in(one, "agent@example.com")
        on_first, on_second = Api(one, agent), Api(other, agent)
        before = await reads()
        assert "errors" not in await on_first.gql(BENCH_PAGE)
        assert "errors" not in await on_second.gql(BENCH_PAGE)
        spent = await reads()
        assert_over_budget(await on_first.post(BENCH_PAGE), BENCH_PAGE_COST)
        assert_over_budget(await on_second.post(BENCH_PAGE), BENCH_PAGE_COST)
        assert await reads() == spent > before  # refused: nothing read, nothing audited
        # A refused query spends nothing: what is left of the minute still buys a small one.
        assert (await on_second.gql("{ me { id } }"))["data"]["me"]["id"]
        # Another caller has a budget of its own: another account, and anonymous per IP.
        lead = Api(other, await sign_in(other, "lead@example.com"))
        assert "errors" not in await lead.gql(BENCH_PAGE)
        anonymous = "{ privacyPolicy { version } }"
        for _ in range(2):
            assert "errors" not in await Api(one).gql(anonymous)


async def test_anonymous_callers_are_budgeted_per_ip_across_instances(
    app: Starlette, app_settings: config.Settings, demo: None
) -> None:
    anonymous = (
        "{ tickets(first: 100) { edges { node {"
        " id subject status priority channel createdAt updatedAt closedAt requester { name email }"
        " } } } }"
    )
    priced = cost(anonymous)
    assert 1000 < priced <= 2000
    async with (
        instances_on_one_redis(app, app_settings) as (first, second),
        caller(first, "198.51.100.30") as one,
        caller(second, "198.51.100.30") as same_ip,
        caller(second, "198.51.100.31") as other_ip,
    ):
        for http in (one, same_ip, one):
            assert (await Api(http).post(anonymous)).status_code == 200
        assert_over_budget(await Api(same_ip).post(anonymous), priced)
        assert (await Api(other_ip).post(anonymous)).status_code == 200
