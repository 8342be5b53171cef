"""Compiled plans (issue 16 items 2 and 4): a registered document sent by its hash runs on its
plan, and answers exactly as Strawberry answers its text: the same body, the same errors
(codes, paths, locations) and the same read audit, as every demo caller.

The documents are read off the schema, not hand-picked: one per field of every type a plan
reaches, at each place a plan reaches it, beside the documents OCIS's own clients register
(the benchmark page, the load run's page, the console's examples a plan covers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLObjectType
from tortoise import Tortoise

import schema as schema_package
from auth import rate_limit
from bench import QUERY as BENCH_PAGE
from bench.load_run import PAGE as LOAD_PAGE
from models import AuditEvent, DocumentSource, TicketMessage, crypto
from models.base import Entity
from privacy import audit
from privacy import keys as key_management
from resolvers.demo import DEMO_ACCOUNTS
from resolvers.documents import document_hash
from schema import OcisSchema
from schema.context import LevelLoader
from schema.plan import BATCHES, ROOT_FIELDS, compile_document, plan_for, plannable
from tests.helpers import sign_in, user_by_email

CALLERS: tuple[str | None, ...] = (None, *(account.email for account in DEMO_ACCOUNTS))
# The fields a plan does not resolve: a document that selects one runs on Strawberry. A field
# added to a type a plan reaches must be resolved by the plan (a batch resolver for a
# relation) or named here, with the reason; otherwise test_every_field_is_planned fails.
NOT_PLANNED = {
    ("User", "paymentMethods"): "loaded per person; rare on a page",
    ("User", "identities"): "loaded per person; rare on a page",
    ("User", "pendingPolicyAcceptance"): "a query per person",
    ("User", "signIns"): "loaded per person; rare on a page",
}
# Where a plan reaches each type, as a document with FIELD for the selection under test.
PLACES = {
    "User": [
        "query Q { me { FIELD } }",
        "query Q { tickets(first: 50) { edges { node { id requester { FIELD } } } } }",
        "query Q { tickets(first: 50) { edges { node { id assignee { FIELD } } } } }",
        "query Q { tickets(first: 20) { edges { node { messages(first: 10)"
        " { edges { node { id author { FIELD } } } } } } } }",
    ],
    "Ticket": [
        "query Q { tickets(first: 50) { edges { node { FIELD } } } }",
        "query Q { myOpenTickets(first: 20) { edges { node { FIELD } } } }",
    ],
    "TicketMessage": [
        "query Q { tickets(first: 20) { edges { node { id messages(first: 10)"
        " { edges { node { FIELD } } } } } } }",
    ],
    "TicketEdge": ["query Q { tickets(first: 5) { edges { FIELD } } }"],
    "TicketConnection": ["query Q { tickets(first: 5) { FIELD } }"],
    "TicketMessageConnection": [
        "query Q { tickets(first: 5) { edges { node { messages(first: 2) { FIELD } } } } }"
    ],
    "TicketMessageEdge": [
        "query Q { tickets(first: 5) { edges { node { messages(first: 2)"
        " { edges { FIELD } } } } } }"
    ],
    "PageInfo": ["query Q { tickets(first: 5) { pageInfo { FIELD } } }"],
}
CONSOLE = Path(__file__).resolve().parent.parent / "console" / "src" / "examples.json"


def _selection(type_: GraphQLObjectType, name: str) -> str:
    """The field, with a selection under it when it is an object or a connection."""
    named = type_.fields[name].type
    while hasattr(named, "of_type"):
        named = named.of_type
    if not isinstance(named, GraphQLObjectType):
        return name
    if named.name.endswith("Connection"):
        return f"{name}(first: 3) {{ edges {{ cursor node {{ id }} }} pageInfo {{ hasNextPage }} }}"
    if "id" in named.fields:
        return f"{name} {{ id }}"
    return f"{name} {{ {_selection(named, next(iter(named.fields)))} }}"


def field_documents() -> Iterator[tuple[str, str, str]]:
    """(type, field, document) for each field of each type a plan reaches, at each place."""
    graphql_schema = schema_package.schema._schema
    for type_name, places in PLACES.items():
        type_ = graphql_schema.get_type(type_name)
        assert isinstance(type_, GraphQLObjectType)
        for name in type_.fields:
            if (type_name, name) in NOT_PLANNED:
                continue
            for place in places:
                yield type_name, name, place.replace("FIELD", _selection(type_, name))


# Variables with defaults, and a fragment spread twice: coercion and merging on both paths.
SHAPES = [
    "query Q($n: Int = 7, $m: Int = 2) { tickets(first: $n) { edges { node { id"
    " messages(first: $m) { edges { cursor node { id body internal } } pageInfo"
    " { hasNextPage endCursor } } } } } }",
    "query Q { tickets(first: 20) { edges { node { assignee { ...F ...F } requester { ...F }"
    " ... on Ticket { subject } } } } } fragment F on User { id email name }",
    "query Q { t: tickets(first: 3) { edges { node { id } } } me { id __typename } __typename }",
]


def client_documents() -> list[str]:
    """What OCIS's own clients register, where a plan covers it."""
    examples = json.loads(CONSOLE.read_text())
    texts = [BENCH_PAGE, LOAD_PAGE, examples["fallback"]["query"]]
    texts += [example["query"] for example in examples["examples"]]
    return [text for text in texts if compile_document(text, None) is not None]


DOCUMENTS = sorted(
    {document for _, _, document in field_documents()} | set(client_documents()) | set(SHAPES)
)


def test_every_field_is_planned() -> None:
    """Each field of a type a plan reaches is resolved by the plan or named in NOT_PLANNED."""
    graphql_schema = schema_package.schema._schema
    missing = []
    for type_name in PLACES:
        type_ = graphql_schema.get_type(type_name)
        assert isinstance(type_, GraphQLObjectType)
        for name in type_.fields:
            if not plannable(type_name, name) and (type_name, name) not in NOT_PLANNED:
                missing.append(f"{type_name}.{name}")
    assert missing == [], f"fields a plan cannot resolve (add a batch resolver): {missing}"
    for type_name, name in NOT_PLANNED:
        assert not plannable(type_name, name), f"{type_name}.{name} is planned: drop it"
        document = PLACES[type_name][0].replace(
            "FIELD", name if name != "signIns" else "signIns { id }"
        )
        assert compile_document(document, None) is None
    for root in ROOT_FIELDS:
        assert plannable("Query", root)
    assert all(plannable(*relation) for relation in BATCHES)


def test_every_generated_document_compiles() -> None:
    for type_name, name, document in field_documents():
        assert compile_document(document, None) is not None, f"{type_name}.{name}: {document}"
    # The console's examples that a plan covers include the agent's own queue.
    assert any("myOpenTickets" in text for text in client_documents())


@pytest.mark.parametrize(
    "document",
    [
        "{ tickets(first: 5) { edges { node { id @include(if: true) } } } }",
        "{ __schema { queryType { name } } }",
        '{ node(id: "x") { id } }',
        "{ me { signIns { id } } }",
        "mutation { signOut { __typename } }",
        "{ privacyContact }",
        "query A { me { id } } query B { me { name } }",  # which one: the caller must say
    ],
)
def test_what_a_plan_does_not_cover_runs_on_strawberry(document: str) -> None:
    assert compile_document(document, None) is None


def test_a_plan_is_compiled_once_per_document_and_operation() -> None:
    plan_for.cache_clear()
    first = plan_for(BENCH_PAGE, None)
    assert first is not None
    assert plan_for(BENCH_PAGE, None) is first
    assert plan_for.cache_info().hits == 1


@pytest.fixture
def strawberry_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every operation Strawberry executed over HTTP (a plan's answer adds none)."""
    ran: list[str] = []
    execute = OcisSchema.execute

    async def counting(self: OcisSchema, query: str | None, *args: Any, **kwargs: Any) -> Any:
        ran.append(query or "")
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(OcisSchema, "execute", counting)
    return ran


async def _audited(since: int) -> tuple[int, list[tuple[Any, ...]]]:
    rows = await AuditEvent.filter(action=audit.READ_ACTION, seq__gt=since).order_by("seq")
    last = rows[-1].seq if rows else since
    return last, sorted(
        (str(row.subject_id), str(row.actor_id), tuple(row.field_names), tuple(row.actor_roles))
        for row in rows
    )


def _comparable(response: httpx.Response) -> tuple[int, Any, list[tuple[Any, ...]]]:
    body = response.json()
    errors = sorted(
        (
            json.dumps(error.get("path")),
            (error.get("extensions") or {}).get("code"),
            error["message"],
            json.dumps(error.get("locations")),
        )
        for error in body.get("errors") or []
    )
    return response.status_code, body.get("data"), errors


async def test_a_registered_document_answers_as_its_text_does_for_every_caller(
    app: Any, client: httpx.AsyncClient, demo: None, strawberry_runs: list[str]
) -> None:
    app.state.settings = replace(app.state.settings, cost_budget_per_minute=10**12)
    for text in DOCUMENTS:
        await app.state.documents.register(text, DocumentSource.MANIFEST)
    cookies = {email: await sign_in(client, email) for email in CALLERS if email is not None}
    since, _ = await _audited(0)
    answered_by_plan: dict[str, set[str | None]] = {text: set() for text in DOCUMENTS}
    handed_back: list[str] = []
    for text in DOCUMENTS:
        for email in CALLERS:
            headers = {"cookie": f"ocis_session={cookies[email]}"} if email else {}
            client.cookies.clear()
            as_text = await client.post("/graphql", json={"query": text}, headers=headers)
            since, text_reads = await _audited(since)
            runs = len(strawberry_runs)
            client.cookies.clear()
            by_hash = await client.post(
                "/graphql",
                json={
                    "extensions": {
                        "persistedQuery": {"version": 1, "sha256Hash": document_hash(text)}
                    }
                },
                headers=headers,
            )
            since, hash_reads = await _audited(since)
            where = f"{text} as {email}"
            if len(strawberry_runs) == runs:
                answered_by_plan[text].add(email)
            else:
                handed_back.append(where)
            assert _comparable(by_hash) == _comparable(as_text), where
            assert hash_reads == text_reads, where
    # The plan answered every one itself, refusals and root resolvers' coded errors included:
    # none of these documents meets an error only Strawberry answers.
    assert handed_back == []


def _by_hash(text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": document_hash(text)}}
    return {"extensions": persisted, "variables": variables or {}}


@pytest.fixture
async def agent(app: Any, client: httpx.AsyncClient, demo: None) -> dict[str, str]:
    return {"cookie": f"ocis_session={await sign_in(client, 'agent@example.com')}"}


async def _both(
    app: Any, client: httpx.AsyncClient, headers: dict[str, str], text: str, **variables: Any
) -> tuple[httpx.Response, httpx.Response]:
    await app.state.documents.register(text, DocumentSource.MANIFEST)
    client.cookies.clear()
    as_text = await client.post(
        "/graphql", json={"query": text, "variables": variables}, headers=headers
    )
    client.cookies.clear()
    by_hash = await client.post("/graphql", json=_by_hash(text, variables), headers=headers)
    return as_text, by_hash


async def test_a_request_handed_back_to_strawberry_is_charged_once(
    app: Any,
    client: httpx.AsyncClient,
    agent: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    strawberry_runs: list[str],
) -> None:
    charged: list[int] = []
    charge = rate_limit.charge_query_cost

    async def counting(*args: Any, **kwargs: Any) -> Any:
        charged.append(kwargs["cost"])
        return await charge(*args, **kwargs)

    monkeypatch.setattr(schema_package.extensions, "charge_query_cost", counting)
    # A page size out of range is a domain error the plan meets only once it runs.
    text = (
        "query Q($n: Int) { tickets(first: 5) { edges { node"
        " { messages(first: $n) { edges { node { id } } } } } } }"
    )
    assert compile_document(text, None) is not None
    as_text, by_hash = await _both(app, client, agent, text, n=500)
    assert _comparable(by_hash) == _comparable(as_text)
    assert {error["extensions"]["code"] for error in by_hash.json()["errors"]} == {"INVALID_INPUT"}
    assert len(charged) == 2  # once for the text, once for the hash
    assert len(strawberry_runs) == 2  # the hash's request ran on Strawberry after the plan


async def test_card_data_in_a_registered_documents_variables_is_refused_alike(
    app: Any, client: httpx.AsyncClient, agent: dict[str, str]
) -> None:
    declared = "query Q($after: String) { tickets(first: 5, after: $after) { edges { cursor } } }"
    # Sent though the operation does not declare it, or for the document's other operation:
    # Strawberry's guard reads every variable sent, as sent and as each operation reads it.
    undeclared = "query Q { me { id } }"
    other = "query A { me { id } } query B($card: String) { tickets(after: $card) { __typename } }"
    for text, variables, operation in (
        (declared, {"after": "4111 1111 1111 1111"}, None),
        (undeclared, {"card": "4111 1111 1111 1111"}, None),
        (other, {"card": "4111-1111-1111-1111"}, "A"),
    ):
        await app.state.documents.register(text, DocumentSource.MANIFEST)
        answers = []
        for body in ({"query": text}, _by_hash(text)):
            client.cookies.clear()
            body = {**body, "variables": variables, "operationName": operation}
            answers.append(await client.post("/graphql", json=body, headers=agent))
        as_text, by_hash = answers
        assert _comparable(by_hash) == _comparable(as_text), text
        assert by_hash.json()["errors"][0]["extensions"]["code"] == "CARD_DATA_REFUSED", text
        assert by_hash.json().get("data") is None


async def test_a_trail_that_cannot_be_written_withholds_the_plans_data_alike(
    app: Any, client: httpx.AsyncClient, agent: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(schema_package.extensions, "record_reads", broken)
    as_text, by_hash = await _both(app, client, agent, BENCH_PAGE)
    status, data, errors = _comparable(by_hash)
    assert (status, data) == (200, None)
    assert [(code, message) for _, code, message, _ in errors] == [
        ("INTERNAL_SERVER_ERROR", "Unexpected error.")
    ]
    assert by_hash.json()["errors"][0]["extensions"]["requestId"] == by_hash.headers["x-request-id"]
    assert "customer@example.com" not in by_hash.text
    assert _comparable(as_text)[:2] == (200, None)


async def test_the_plan_sends_no_more_statements_than_strawberry(
    app: Any, client: httpx.AsyncClient, agent: dict[str, str], count_statements: Any
) -> None:
    await _both(app, client, agent, BENCH_PAGE)  # both warm: the registry read is behind
    counted = []
    for body in ({"query": BENCH_PAGE}, _by_hash(BENCH_PAGE)):
        count_statements.statements.clear()
        client.cookies.clear()
        response = await client.post("/graphql", json=body, headers=agent)
        assert response.json().get("errors") is None
        counted.append(len(count_statements.statements))
    text_statements, plan_statements = counted
    # The caller's roles, the page, its requesters and their relations, its messages, the
    # read audit: one statement each, however many tickets the page holds.
    assert plan_statements <= text_statements <= 8


async def test_a_destroyed_key_reads_as_null_on_the_plans_rows_as_on_orm_rows(
    app: Any, client: httpx.AsyncClient, agent: dict[str, str], strawberry_runs: list[str]
) -> None:
    carla = await user_by_email("customer@example.com")
    assert await key_management.destroy_subject_keys(carla.id) >= 1
    text = (
        "{ tickets(first: 50) { edges { node { messages(first: 10)"
        " { edges { node { body author { id } } } } } } } }"
    )
    as_text, by_hash = await _both(app, client, agent, text)
    assert len(strawberry_runs) == 1  # the text's: the plan answered the hash
    assert _comparable(by_hash) == _comparable(as_text)
    bodies = [
        message["node"]["body"]
        for edge in by_hash.json()["data"]["tickets"]["edges"]
        for message in edge["node"]["messages"]["edges"]
    ]
    assert None in bodies
    assert any(body is not None for body in bodies)  # everyone else's still read


async def test_the_plan_opens_only_the_bodies_a_document_selects(
    app: Any,
    client: httpx.AsyncClient,
    agent: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    strawberry_runs: list[str],
) -> None:
    opened: list[str] = []
    open_parsed = crypto.DataCipher.open_parsed

    def counting(self: crypto.DataCipher, raw: bytes, aad: str) -> str:
        opened.append(aad)
        return open_parsed(self, raw, aad)

    monkeypatch.setattr(crypto.DataCipher, "open_parsed", counting)
    ids_only = (
        "{ tickets(first: 50) { edges { node { messages(first: 10)"
        " { edges { node { id } } } } } } }"
    )
    await _both(app, client, agent, ids_only)  # registered, and run once as text
    opened.clear()
    runs = len(strawberry_runs)
    client.cookies.clear()
    response = await client.post("/graphql", json=_by_hash(ids_only), headers=agent)
    assert response.json().get("errors") is None
    assert len(strawberry_runs) == runs  # answered by the plan
    assert not [aad for aad in opened if aad.startswith("ticket_messages/")]
    with_bodies = ids_only.replace("node { id }", "node { id body }")
    await app.state.documents.register(with_bodies, DocumentSource.MANIFEST)
    client.cookies.clear()
    await client.post("/graphql", json=_by_hash(with_bodies), headers=agent)
    assert [aad for aad in opened if aad.startswith("ticket_messages/")]


async def test_the_plan_reads_its_page_without_orm_instances(
    app: Any,
    client: httpx.AsyncClient,
    agent: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 3: the tickets, their messages and the people on them arrive as rows
    (models/rows.py); Strawberry, on the same page as text, builds ORM instances."""
    built: list[str] = []
    init = Entity._init_from_db.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Entity], /, **kwargs: Any) -> Entity:
        built.append(cls.__name__)
        return init(cls, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(Entity, "_init_from_db", classmethod(counting))
    await _both(app, client, agent, BENCH_PAGE)
    built.clear()
    client.cookies.clear()
    response = await client.post("/graphql", json=_by_hash(BENCH_PAGE), headers=agent)
    assert response.json()["data"]["tickets"]["edges"]
    assert {"Ticket", "TicketMessage"}.isdisjoint(built), built
    assert built.count("User") <= 1  # the caller, as the session resolves them
    built.clear()
    client.cookies.clear()
    await client.post("/graphql", json={"query": BENCH_PAGE}, headers=agent)
    assert {"Ticket", "TicketMessage", "User"} <= set(built)


async def test_a_trusted_documents_text_and_a_hash_by_get_run_on_the_plan(
    app: Any, client: httpx.AsyncClient, demo: None, strawberry_runs: list[str]
) -> None:
    """With trusted documents only, a customer's exact text of a trusted document is that
    document (the plan runs it); a hash sent by GET runs on the plan too."""
    me = "query Me { me { id name email roles } }"
    customer = {"cookie": f"ocis_session={await sign_in(client, 'customer@example.com')}"}
    await app.state.documents.register(me, DocumentSource.MANIFEST)
    client.cookies.clear()
    as_text = await client.post("/graphql", json={"query": me}, headers=customer)
    assert len(strawberry_runs) == 1
    app.state.settings = replace(app.state.settings, trusted_documents_only=True)
    client.cookies.clear()
    trusted_text = await client.post("/graphql", json={"query": me}, headers=customer)
    assert _comparable(trusted_text) == _comparable(as_text)
    assert trusted_text.json()["data"]["me"]["email"] == "customer@example.com"
    mobile = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 50001)),
        base_url=str(client.base_url),
    )
    async with mobile:
        params = {"extensions": json.dumps(_by_hash(me)["extensions"])}
        by_get = await mobile.get("/graphql", params=params)  # anonymous: no cookie by GET
    assert by_get.status_code == 200
    assert by_get.json() == {"data": {"me": None}}
    assert len(strawberry_runs) == 1  # neither ran on Strawberry


async def test_a_malformed_ciphertext_fails_the_plans_read_as_it_fails_the_orms(
    app: Any, client: httpx.AsyncClient, agent: dict[str, str], strawberry_runs: list[str]
) -> None:
    """Parsed as rows arrive: a body cut short fails the read even where it is not selected."""
    message = await TicketMessage.filter(internal=False).first()
    assert message is not None
    connection = Tortoise.get_connection("default")
    postgres = connection.capabilities.dialect == "postgres"
    marks = ("$1", "$2") if postgres else ("?", "?")
    ident = message.id if postgres else str(message.id)
    _, rows = await connection.execute_query(
        f"SELECT body FROM ticket_messages WHERE id = {marks[0]}",  # noqa: S608 - marks only
        [ident],
    )
    key_id = crypto.parse(str(rows[0]["body"]))[0]
    await connection.execute_query(
        f"UPDATE ticket_messages SET body = {marks[0]} WHERE id = {marks[1]}",  # noqa: S608
        [f"v2:{key_id}:AAAA", ident],
    )
    text = (
        "{ tickets(first: 50) { edges { node { messages(first: 10)"
        " { edges { node { id } } } } } } }"
    )
    as_text, by_hash = await _both(app, client, agent, text)
    assert _comparable(by_hash) == _comparable(as_text)
    assert "INTERNAL_SERVER_ERROR" in {code for _, code, _, _ in _comparable(by_hash)[2]}
    assert len(strawberry_runs) == 2  # the plan's read failed: Strawberry answered the hash too


async def test_a_plans_loader_loads_each_key_once_in_one_call_per_level() -> None:
    """The plan's LevelLoader: keys not loaded yet in one call, answers in the keys' order
    (repeats included), primed keys never loaded, and a batch of the wrong length refused."""
    calls: list[list[str]] = []

    async def load(keys: list[str]) -> list[str]:
        calls.append(keys)
        return [key.upper() for key in keys]

    loader: LevelLoader[str, str] = LevelLoader(load)
    loader.prime("p", "primed")
    assert await loader.load_many(["a", "b", "a", "p"]) == ["A", "B", "A", "primed"]
    assert await loader.load_many(["b", "c"]) == ["B", "C"]
    assert await loader.load("a") == "A"
    assert calls == [["a", "b"], ["c"]]
    loader.prime("a", "again")
    assert await loader.load("a") == "A"  # not forced: the loaded value stays
    loader.prime("a", "forced", force=True)
    assert await loader.load("a") == "forced"

    async def short(keys: list[str]) -> list[str]:
        return keys[:-1]

    with pytest.raises(ValueError, match="different number"):
        await LevelLoader(short).load_many(["x", "y"])
