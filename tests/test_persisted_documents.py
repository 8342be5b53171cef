"""Persisted documents: automatic persisted queries as Apollo clients send them, the registry,
trusted documents only, and `register-documents` (issue 14 item 5)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

import settings as config
from models import DocumentSource, PersistedDocument, Ticket
from resolvers.documents import (
    DocumentRegistry,
    InvalidManifest,
    document_hash,
    manifest_entries,
    register_manifest,
)
from schema.documents import check_document
from tests.helpers import ORIGIN, Api, app_code_exchange, run_cli, user_by_email
from tests.test_query_cost import NESTED

AsUser = Callable[[str | None], Awaitable[Api]]

CUSTOMER = "customer@example.com"
ADMIN = "admin@example.com"
ME = "query Me { me { email } }"
CONTACT = "query Contact { privacyContact }"
CREATE_TICKET = (
    "mutation Create($input: CreateTicketInput!) { createTicket(input: $input) { __typename } }"
)
NOT_FOUND = {
    "errors": [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ]
}
CARD = "4111 1111 1111 1111"
MAX_COST = config.DEFAULT_MAX_QUERY_COST


def extension(sha256: object, version: object = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha256}}


async def send(
    http: httpx.AsyncClient,
    *,
    query: str | None = None,
    sha256: object = None,
    variables: dict[str, Any] | None = None,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A POST as Apollo's persisted-query link sends it (the hash in `extensions`)."""
    body: dict[str, Any] = {"variables": variables or {}}
    if query is not None:
        body["query"] = query
    if extensions is not None:
        body["extensions"] = extensions
    elif sha256 is not None:
        body["extensions"] = extension(sha256)
    return await http.post("/graphql", json=body, headers=headers or {})


def cookie(api: Api) -> dict[str, str]:
    return {"cookie": f"ocis_session={api.cookie}"}


async def rows() -> list[tuple[str, str, DocumentSource]]:
    return [
        (row.sha256, row.text, row.source)
        for row in await PersistedDocument.all().order_by("registered_at")
    ]


@pytest.fixture
def trusted_only(app: Any, app_settings: config.Settings) -> Callable[..., None]:
    def switch(**more: Any) -> None:
        app.state.settings = replace(app_settings, trusted_documents_only=True, **more)

    return switch


@pytest.fixture
async def mobile(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client as the app is one: no Origin, no cookies."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50001))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        yield http


async def bearer(app: Any, mobile: httpx.AsyncClient, email: str) -> dict[str, str]:
    user = await user_by_email(email)
    response = await mobile.post(
        "/auth/token", data=await app_code_exchange(app.state.store, user.id)
    )
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['access_token']}"}


# --- automatic persisted queries ---------------------------------------------------------


async def test_a_hash_miss_then_text_and_hash_then_the_hash_alone(
    app: Any, client: httpx.AsyncClient, as_user: AsUser, count_statements: Any
) -> None:
    customer = await as_user(CUSTOMER)
    sha256 = document_hash(ME)

    miss = await send(client, sha256=sha256, headers=cookie(customer))
    assert (miss.status_code, miss.json()) == (200, NOT_FOUND)
    assert await rows() == []

    registered = await send(client, query=ME, sha256=sha256, headers=cookie(customer))
    assert registered.status_code == 200
    assert registered.json() == {"data": {"me": {"email": CUSTOMER}}}
    row = await PersistedDocument.get(sha256=sha256)
    assert (row.text, row.source, row.operation_name) == (ME, DocumentSource.AUTOMATIC, None)
    assert row.registered_at is not None

    count_statements.statements.clear()
    by_hash = await send(client, sha256=sha256, headers=cookie(customer))
    assert by_hash.status_code == 200
    assert by_hash.json() == {"data": {"me": {"email": CUSTOMER}}}
    # Known to this process: the hash costs no read of the registry.
    assert not any("persisted_documents" in sql for sql in count_statements.statements)

    # Another process (an empty cache) finds it in the shared table, with one read.
    app.state.documents = DocumentRegistry()
    count_statements.statements.clear()
    again = await send(client, sha256=sha256.upper(), headers=cookie(customer))
    assert again.json() == {"data": {"me": {"email": CUSTOMER}}}
    assert sum("persisted_documents" in sql for sql in count_statements.statements) == 1
    assert len(await rows()) == 1


async def test_a_registered_document_registers_once(client: httpx.AsyncClient, app: Any) -> None:
    sha256 = document_hash(CONTACT)
    for _ in range(3):
        response = await send(client, query=CONTACT, sha256=sha256)
        assert response.json() == {"data": {"privacyContact": "contact@ocis.app"}}
    assert await rows() == [(sha256, CONTACT, DocumentSource.AUTOMATIC)]


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_a_hash_that_is_not_the_texts_is_refused(
    client: httpx.AsyncClient, accept: str
) -> None:
    response = await send(
        client, query=CONTACT, sha256=document_hash(ME), headers={"accept": accept}
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "provided sha does not match query",
                "extensions": {"code": "PERSISTED_QUERY_HASH_MISMATCH"},
            }
        ]
    }
    assert await rows() == []


async def test_an_invalid_document_runs_into_its_errors_and_is_not_registered(
    client: httpx.AsyncClient,
) -> None:
    text = "{ noSuchField }"
    response = await send(client, query=text, sha256=document_hash(text))
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "Cannot query field 'noSuchField' on type 'Query'.",
                "locations": [{"line": 1, "column": 3}],
            }
        ],
    }
    assert await rows() == []
    assert (await send(client, sha256=document_hash(text))).json() == NOT_FOUND


async def test_a_document_with_string_literals_runs_but_never_registers_itself(
    client: httpx.AsyncClient, as_user: AsUser
) -> None:
    customer = await as_user(CUSTOMER)
    canary = "Mrs Canary Lemonfield"
    text = (
        f'mutation {{ createTicket(input: {{subject: "Hello", body: "{canary}"}})'
        " { __typename } }"
    )
    response = await send(client, query=text, sha256=document_hash(text), headers=cookie(customer))
    assert response.json() == {"data": {"createTicket": {"__typename": "TicketSuccess"}}}
    assert await rows() == []
    assert (await send(client, sha256=document_hash(text), headers=cookie(customer))).json() == (
        NOT_FOUND
    )
    # A manifest's documents are the build's own; their literals may be registered.
    assert check_document(text, MAX_COST) == []
    assert check_document(text, MAX_COST, automatic=True) == [
        "writes a string literal (send values as variables)"
    ]


HUGE = "a" * 100_000


@pytest.mark.parametrize(
    ("extensions", "code"),
    [
        (extension(document_hash(CONTACT), version=2), "PERSISTED_QUERY_VERSION_UNSUPPORTED"),
        (extension(document_hash(CONTACT), version="1"), "PERSISTED_QUERY_VERSION_UNSUPPORTED"),
        (extension(document_hash(CONTACT), version=True), "PERSISTED_QUERY_VERSION_UNSUPPORTED"),
        (
            {"persistedQuery": {"sha256Hash": document_hash(CONTACT)}},
            "PERSISTED_QUERY_VERSION_UNSUPPORTED",
        ),
        (extension(HUGE), "BAD_REQUEST"),
        (extension("z" * 64), "BAD_REQUEST"),
        (extension(document_hash(CONTACT)[:63]), "BAD_REQUEST"),
        (extension(document_hash(CONTACT) + "0"), "BAD_REQUEST"),
        (extension(12345), "BAD_REQUEST"),
        (extension(None), "BAD_REQUEST"),
        ({"persistedQuery": "sha256"}, "BAD_REQUEST"),
        ({"persistedQuery": [1, document_hash(CONTACT)]}, "BAD_REQUEST"),
    ],
)
@pytest.mark.parametrize("with_text", [False, True])
async def test_malformed_persisted_query_extensions_are_refused(
    client: httpx.AsyncClient, extensions: dict[str, Any], code: str, with_text: bool
) -> None:
    response = await send(client, query=CONTACT if with_text else None, extensions=extensions)
    assert response.status_code == 400
    body = response.json()
    assert [error["extensions"]["code"] for error in body["errors"]] == [code]
    assert "data" not in body
    assert "aaaaaaaa" not in response.text
    assert "zzzz" not in response.text
    assert await rows() == []


async def test_extensions_that_are_not_an_object_are_a_bad_request(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/graphql", json={"extensions": "persistedQuery"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


# --- GET ---------------------------------------------------------------------------------


async def test_a_persisted_query_by_get_where_queries_by_get_are_allowed(
    app: Any, client: httpx.AsyncClient, app_settings: config.Settings
) -> None:
    sha256 = document_hash(CONTACT)
    params = {"extensions": json.dumps(extension(sha256))}
    assert (await client.get("/graphql", params=params)).json() == NOT_FOUND
    await send(client, query=CONTACT, sha256=sha256)

    answered = await client.get("/graphql", params=params)
    assert answered.status_code == 200
    assert answered.json() == {"data": {"privacyContact": "contact@ocis.app"}}

    app.state.settings = replace(app_settings, graphql_get=False)
    refused = await client.get("/graphql", params=params)
    assert refused.status_code == 405
    assert refused.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_a_persisted_mutation_is_never_run_by_get(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    # (A cookie never authenticates a GET: CROSS_SITE. The app's bearer token does.)
    headers = await bearer(app, mobile, CUSTOMER)
    await app.state.documents.register(CREATE_TICKET, DocumentSource.MANIFEST)
    before = await Ticket.all().count()
    response = await mobile.get(
        "/graphql",
        params={
            "extensions": json.dumps(extension(document_hash(CREATE_TICKET))),
            "variables": json.dumps({"input": {"subject": "By GET", "body": "Hello"}}),
        },
        headers=headers,
    )
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert await Ticket.all().count() == before


# --- card data ---------------------------------------------------------------------------


@pytest.mark.promise("P03")
async def test_the_card_data_guard_reads_a_persisted_documents_variables(
    app: Any, client: httpx.AsyncClient, as_user: AsUser
) -> None:
    customer = await as_user(CUSTOMER)
    sha256 = document_hash(CREATE_TICKET)
    await app.state.documents.register(CREATE_TICKET, DocumentSource.MANIFEST)
    before = await Ticket.all().count()

    response = await send(
        client,
        sha256=sha256,
        variables={"input": {"subject": "Card", "body": f"my card {CARD}"}},
        headers=cookie(customer),
    )
    assert response.json()["errors"][0]["extensions"] == {"code": "CARD_DATA_REFUSED"}
    assert await Ticket.all().count() == before

    fine = await send(
        client,
        sha256=sha256,
        variables={"input": {"subject": "Hello", "body": "No card here"}},
        headers=cookie(customer),
    )
    assert fine.json() == {"data": {"createTicket": {"__typename": "TicketSuccess"}}}


@pytest.mark.promise("P03")
async def test_a_document_writing_card_data_is_refused_and_never_registered(
    client: httpx.AsyncClient, as_user: AsUser
) -> None:
    customer = await as_user(CUSTOMER)
    text = (
        'mutation { createTicket(input: {subject: "Card", body: "4111 1111 1111 1111"})'
        " { __typename } }"
    )
    response = await send(client, query=text, sha256=document_hash(text), headers=cookie(customer))
    assert response.json()["errors"][0]["extensions"] == {"code": "CARD_DATA_REFUSED"}
    assert await rows() == []
    assert (await send(client, sha256=document_hash(text))).json() == NOT_FOUND


# --- bearer tokens -----------------------------------------------------------------------


async def test_bearer_tokens_work_with_persisted_documents(
    app: Any, mobile: httpx.AsyncClient, demo: None, trusted_only: Callable[..., None]
) -> None:
    headers = await bearer(app, mobile, CUSTOMER)
    sha256 = document_hash(ME)
    assert (await send(mobile, sha256=sha256, headers=headers)).json() == NOT_FOUND
    registered = await send(mobile, query=ME, sha256=sha256, headers=headers)
    assert registered.json() == {"data": {"me": {"email": CUSTOMER}}}
    by_hash = await send(mobile, sha256=sha256, headers=headers)
    assert by_hash.json() == {"data": {"me": {"email": CUSTOMER}}}

    trusted_only()
    # Registered automatically, it is not trusted ...
    assert (await send(mobile, sha256=sha256, headers=headers)).json() == NOT_FOUND
    # ... until a manifest registers it.
    await app.state.documents.register(ME, DocumentSource.MANIFEST)
    trusted = await send(mobile, sha256=sha256, headers=headers)
    assert trusted.json() == {"data": {"me": {"email": CUSTOMER}}}
    assert await rows() == [(sha256, ME, DocumentSource.MANIFEST)]


# --- trusted documents only --------------------------------------------------------------


async def test_trusted_documents_only_runs_registered_documents_alone(
    app: Any, client: httpx.AsyncClient, as_user: AsUser, trusted_only: Callable[..., None]
) -> None:
    customer = await as_user(CUSTOMER)
    await app.state.documents.register(ME, DocumentSource.MANIFEST)
    trusted_only()

    text = await send(client, query=ME, headers=cookie(customer))
    assert text.json() == {"data": {"me": {"email": CUSTOMER}}}
    by_hash = await send(client, sha256=document_hash(ME), headers=cookie(customer))
    assert by_hash.json() == {"data": {"me": {"email": CUSTOMER}}}
    both = await send(client, query=ME, sha256=document_hash(ME), headers=cookie(customer))
    assert both.json() == {"data": {"me": {"email": CUSTOMER}}}

    # The same document in other words is another document.
    for refused in (
        await send(client, query="query Me { me { email } } ", headers=cookie(customer)),
        await send(client, query=CONTACT, sha256=document_hash(CONTACT)),
        await send(client, query=CONTACT),
    ):
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["extensions"] == {"code": "DOCUMENT_NOT_TRUSTED"}
        assert "data" not in refused.json()
    assert (await send(client, sha256=document_hash(CONTACT))).json() == NOT_FOUND
    # Nothing registers itself while only trusted documents run.
    assert await rows() == [(document_hash(ME), ME, DocumentSource.MANIFEST)]


async def test_the_console_still_introspects_in_production_with_trusted_documents_only(
    client: httpx.AsyncClient, as_user: AsUser, trusted_only: Callable[..., None]
) -> None:
    admin = await as_user(ADMIN)
    customer = await as_user(CUSTOMER)
    trusted_only(env="production")
    introspection = "{ __schema { queryType { name } } }"

    staff = await send(client, query=introspection, headers=cookie(admin))
    assert staff.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    named = await send(client, query=ME, headers=cookie(admin))
    assert named.json() == {"data": {"me": {"email": ADMIN}}}

    refused = await send(client, query=introspection, headers=cookie(customer))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"] == {"code": "DOCUMENT_NOT_TRUSTED"}
    anonymous = await send(client, query=introspection)
    assert anonymous.json()["errors"][0]["extensions"] == {"code": "DOCUMENT_NOT_TRUSTED"}
    # Staff text runs, and registers nothing.
    assert await rows() == []


def test_the_setting_is_read_from_the_environment() -> None:
    assert config.from_environ({}).trusted_documents_only is False
    assert config.from_environ({"OCIS_TRUSTED_DOCUMENTS_ONLY": "1"}).trusted_documents_only
    with pytest.raises(config.ConfigurationError, match="OCIS_TRUSTED_DOCUMENTS_ONLY"):
        config.from_environ({"OCIS_TRUSTED_DOCUMENTS_ONLY": "sometimes"})


# --- registration: checks and manifests --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{ me { email }", "does not parse"),
        ("{ noSuchField }", "does not validate"),
        ("query { me { email } } query { privacyContact }", "does not validate"),
        ("{ " + " ".join(f"a{n}: privacyContact" for n in range(31)) + " }", "aliases"),
        (NESTED, "costs"),  # the costly document of the cost tests, 100 tickets x 100 messages
        (
            'mutation { createTicket(input: {subject: "x", body: "cvv 123"}) { __typename } }',
            "card",
        ),
        ("{ " + "privacyContact " * 3100 + "}", "does not parse"),
    ],
)
def test_a_document_is_checked_against_the_schema_limits_and_cost(text: str, problem: str) -> None:
    problems = check_document(text, MAX_COST)
    assert problems, text[:80]
    assert problem in " ".join(problems)


def test_a_valid_document_has_no_problems() -> None:
    assert check_document(ME, MAX_COST) == []
    assert check_document(CREATE_TICKET, MAX_COST) == []


def manifest(*bodies: str, **overrides: Any) -> str:
    return json.dumps(
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": document_hash(body), "name": f"Op{n}", "type": "query", "body": body}
                for n, body in enumerate(bodies)
            ],
        }
        | overrides
    )


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("not json", "not JSON"),
        ("[]", "must be a JSON object"),
        ("{}", "no documents"),
        (manifest(ME, format="relay"), "unknown manifest format"),
        (manifest(ME, version=2), "unsupported manifest version"),
        (manifest(ME, operations={"a": 1}), '"operations" must be a list'),
        (manifest(ME, operations=["text"]), "operation 1: must be an object"),
        (manifest(ME, operations=[{"id": document_hash(ME)}]), "body must be"),
        (manifest(ME, operations=[{"id": "x" * 64, "body": ME}]), "64 hex digits"),
        (manifest(ME, operations=[{"id": document_hash(CONTACT), "body": ME}]), "not the SHA-256"),
        (manifest(ME, operations=[{"id": document_hash(ME), "body": ME, "type": "x"}]), "type"),
        (json.dumps({document_hash(CONTACT): ME}), "entry 1: the id is not the SHA-256"),
        (json.dumps({document_hash(ME): 1}), "entry 1: the document text must be a string"),
    ],
)
def test_malformed_manifests_are_refused(raw: str, complaint: str) -> None:
    with pytest.raises(InvalidManifest, match=complaint):
        manifest_entries(raw)


def test_both_manifest_formats_are_read() -> None:
    apollo = manifest(ME, CONTACT)
    assert [(e.body, e.operation_name) for e in manifest_entries(apollo)] == [
        (ME, "Op0"),
        (CONTACT, "Op1"),
    ]
    plain = json.dumps({document_hash(ME): ME, document_hash(CONTACT).upper(): CONTACT})
    assert [e.body for e in manifest_entries(plain)] == [ME, CONTACT]


async def test_a_manifest_with_one_invalid_document_registers_nothing(app: Any) -> None:
    registry = DocumentRegistry()
    entries = manifest_entries(manifest(ME, "{ noSuchField }"))
    with pytest.raises(InvalidManifest, match=r"operation 2 \(Op1\): does not validate"):
        await register_manifest(registry, entries, lambda text: check_document(text, MAX_COST))
    assert await rows() == []


async def test_register_documents_from_the_command_line(
    app: Any,
    client: httpx.AsyncClient,
    database_url: str,
    tmp_path: Path,
    trusted_only: Callable[..., None],
) -> None:
    env = {"DATABASE_URL": database_url}
    path = tmp_path / "manifest.json"
    path.write_text(manifest(ME, CONTACT))

    first = run_cli("register-documents", str(path), env=env)
    assert first.returncode == 0, first.stderr
    assert "registered 2 documents (0 already registered)" in first.stdout
    again = run_cli("register-documents", str(path), env=env)
    assert again.returncode == 0, again.stderr
    assert "registered 0 documents (2 already registered)" in again.stdout
    stored = await PersistedDocument.all().order_by("operation_name")
    assert [(row.text, row.source, row.operation_name) for row in stored] == [
        (ME, DocumentSource.MANIFEST, "Op0"),
        (CONTACT, DocumentSource.MANIFEST, "Op1"),
    ]

    trusted_only()
    answered = await send(client, sha256=document_hash(CONTACT))
    assert answered.json() == {"data": {"privacyContact": "contact@ocis.app"}}

    bad = tmp_path / "bad.json"
    bad.write_text(manifest("query Fine { privacyContact __typename }", "{ noSuchField }"))
    refused = run_cli("register-documents", str(bad), env=env)
    assert refused.returncode == 2
    assert "operation 2 (Op1): does not validate" in refused.stderr
    assert "nothing was registered" in refused.stderr
    assert len(await rows()) == 2

    missing = run_cli("register-documents", str(tmp_path / "absent.json"), env=env)
    assert missing.returncode == 2
    assert "cannot be read" in missing.stderr
