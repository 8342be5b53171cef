"""HTTP and GraphQL guards (SECURITY.md 17-21): CSRF, body size, query limits, masking."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import resolvers.consents
from models import ConsentEntry, User
from schema.extensions import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from tests.helpers import ORIGIN, Api, StatementCounter, sign_in, table_counts
from web.middleware import MAX_BODY_BYTES

EVIL_ORIGIN = "https://evil.example.net"
ME = "{ me { email } }"
REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { __typename }
}
"""
GRANT = "mutation { grantConsent(input: {purpose: MARKETING_EMAIL}) { __typename } }"


def _registration(email: str = "newcomer@example.com") -> dict[str, Any]:
    return {
        "input": {
            "name": "New Comer",
            "email": email,
            "password": "a long enough password",
            "dateOfBirth": "1990-01-01",
        }
    }


@pytest.fixture
async def customer(client: httpx.AsyncClient, demo: None) -> str:
    """A signed-in customer's raw session cookie."""
    return await sign_in(client, "customer@example.com")


async def _post(
    client: httpx.AsyncClient,
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    **kwargs: Any,
) -> httpx.Response:
    """POST /graphql with the session cookie; `drop` removes default headers (Origin)."""
    client.cookies.clear()
    all_headers = dict(headers or {})
    if cookie is not None:
        all_headers["cookie"] = f"ocis_session={cookie}"
    request = client.build_request("POST", "/graphql", headers=all_headers, **kwargs)
    for name in drop:
        del request.headers[name]
    return await client.send(request)


def _query(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"query": query, "variables": variables or {}}


# --- CSRF: cookies authenticate only JSON POSTs from our own origin (item 20) ---------------


async def test_same_origin_json_post_with_cookie_is_served(
    client: httpx.AsyncClient, customer: str
) -> None:
    response = await _post(client, cookie=customer, json=_query(ME))
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"email": "customer@example.com"}}}


@pytest.mark.parametrize(
    "origin", [EVIL_ORIGIN, "http://127.0.0.1:8001", "https://127.0.0.1:8000", "null"]
)
async def test_cookie_post_from_another_origin_is_refused(
    client: httpx.AsyncClient, customer: str, origin: str
) -> None:
    response = await _post(client, cookie=customer, headers={"origin": origin}, json=_query(ME))
    assert response.status_code == 403
    assert "customer@example.com" not in response.text
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_cookie_post_with_a_simple_content_type_is_refused(
    client: httpx.AsyncClient, customer: str, content_type: str
) -> None:
    response = await _post(
        client,
        cookie=customer,
        headers={"content-type": content_type},
        content=json.dumps(_query(GRANT)).encode(),
    )
    assert response.status_code == 403
    assert await ConsentEntry.all().count() == 0


async def test_cookie_post_without_origin_or_referer_is_refused(
    client: httpx.AsyncClient, customer: str
) -> None:
    response = await _post(client, cookie=customer, drop=("origin",), json=_query(GRANT))
    assert response.status_code == 403
    assert await ConsentEntry.all().count() == 0


async def test_cookie_post_with_only_a_same_origin_referer_is_served(
    client: httpx.AsyncClient, customer: str
) -> None:
    response = await _post(
        client,
        cookie=customer,
        drop=("origin",),
        headers={"referer": f"{ORIGIN}/tickets?page=2"},
        json=_query(ME),
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"email": "customer@example.com"}}}


async def test_cookie_post_with_only_a_foreign_referer_is_refused(
    client: httpx.AsyncClient, customer: str
) -> None:
    response = await _post(
        client,
        cookie=customer,
        drop=("origin",),
        headers={"referer": f"{EVIL_ORIGIN}/{ORIGIN}/"},
        json=_query(ME),
    )
    assert response.status_code == 403


async def test_get_with_cookie_runs_nothing(client: httpx.AsyncClient, customer: str) -> None:
    client.cookies.clear()
    for query in (ME, GRANT):
        response = await client.get(
            "/graphql", params={"query": query}, headers={"cookie": f"ocis_session={customer}"}
        )
        assert 400 <= response.status_code < 500
        assert "customer@example.com" not in response.text
    assert await ConsentEntry.all().count() == 0


async def test_anonymous_get_runs_queries_and_never_a_mutation(
    client: httpx.AsyncClient, demo: None, count_statements: StatementCounter
) -> None:
    users_before = await User.all().count()
    count_statements.statements.clear()
    query_response = await client.get("/graphql", params={"query": "{ __typename }"})
    mutation_response = await client.get(
        "/graphql",
        params={"query": REGISTER, "variables": json.dumps(_registration())},
    )
    # OCIS_GRAPHQL_GET is on in development (tests/test_graphql_over_http.py turns it off).
    assert query_response.json() == {"data": {"__typename": "Query"}}
    assert mutation_response.status_code == 405
    assert "CheckYourMail" not in mutation_response.text
    assert count_statements.statements == []
    assert await User.all().count() == users_before


async def test_anonymous_post_from_another_origin_gets_nobodys_data(
    client: httpx.AsyncClient, customer: str
) -> None:
    # The customer is signed in elsewhere, but this request carries no cookie.
    response = await _post(
        client,
        headers={"origin": EVIL_ORIGIN},
        json=_query("{ me { email name } tickets(first: 10) { edges { node { subject } } } }"),
    )
    body = response.json()
    assert body["data"] is None or body["data"]["me"] is None
    assert "customer@example.com" not in response.text
    assert "Carla" not in response.text
    assert "Cannot reset my password" not in response.text
    assert "access-control-allow-origin" not in response.headers


# --- body size (item 18) ---------------------------------------------------------------------


def _padded_body(size: int) -> bytes:
    """A valid JSON GraphQL request of exactly `size` bytes (padded with whitespace)."""
    core = b'{"query": "{ __typename }"'
    padding = size - len(core) - 1
    assert padding >= 0
    return core + b" " * padding + b"}"


async def test_body_of_exactly_one_megabyte_is_accepted(client: httpx.AsyncClient) -> None:
    body = _padded_body(MAX_BODY_BYTES)
    assert len(body) == 1024 * 1024
    response = await _post(client, headers={"content-type": "application/json"}, content=body)
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_declared_body_over_one_megabyte_is_refused(
    client: httpx.AsyncClient, count_statements: StatementCounter
) -> None:
    body = _padded_body(MAX_BODY_BYTES + 1)
    response = await _post(client, headers={"content-type": "application/json"}, content=body)
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large (limit 1 MB)."}
    assert count_statements.statements == []


async def test_streamed_body_over_one_megabyte_is_refused(
    client: httpx.AsyncClient, demo: None, count_statements: StatementCounter
) -> None:
    chunk = 64 * 1024
    payload = json.dumps(_query(REGISTER, _registration())).encode()
    body = payload[:-1] + b" " * (MAX_BODY_BYTES + chunk - len(payload)) + b"}"

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    users_before = await User.all().count()
    count_statements.statements.clear()
    response = await _post(client, headers={"content-type": "application/json"}, content=stream())
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large (limit 1 MB)."}
    assert count_statements.statements == []
    assert await User.all().count() == users_before


# --- query limits before any resolver (item 17) ----------------------------------------------


async def _refused_before_execution(
    client: httpx.AsyncClient,
    counter: StatementCounter,
    document: str,
    variables: dict[str, Any] | None = None,
    operation_name: str | None = None,
) -> list[str]:
    """Send an anonymous document that would write if run; return the error messages."""
    counts = await table_counts()
    counter.statements.clear()
    payload: dict[str, Any] = _query(document, variables)
    if operation_name:
        payload["operationName"] = operation_name
    response = await _post(client, json=payload)
    assert counter.statements == [], "nothing may reach the database"
    assert await table_counts() == counts
    body = response.json()
    assert response.status_code == 200
    assert body.get("data") is None
    assert body["errors"]
    return [error["message"] for error in body["errors"]]


def _nested(depth: int) -> str:
    selection = "id"
    for level in range(depth):
        selection = f"f{level} {{ {selection} }}"
    return selection


async def test_query_deeper_than_the_limit_is_refused(
    client: httpx.AsyncClient, demo: None, count_statements: StatementCounter
) -> None:
    # The schema has no valid path deeper than the limit, so the deep part lives in a
    # second operation of the same document: the limit applies to the whole document.
    document = REGISTER + f"query Deep {{ me {{ {_nested(MAX_DEPTH + 2)} }} }}"
    messages = await _refused_before_execution(
        client, count_statements, document, _registration(), operation_name="Register"
    )
    assert f"'Deep' exceeds maximum operation depth of {MAX_DEPTH}" in messages


async def test_too_many_aliases_are_refused(
    client: httpx.AsyncClient, demo: None, count_statements: StatementCounter
) -> None:
    fields = " ".join(
        f"r{n}: register(input: $input) {{ __typename }}" for n in range(MAX_ALIASES + 1)
    )
    document = f"mutation Many($input: RegisterInput!) {{ {fields} }}"
    messages = await _refused_before_execution(client, count_statements, document, _registration())
    assert messages == [f"{MAX_ALIASES + 1} aliases found. Allowed: {MAX_ALIASES}"]


async def test_aliases_hidden_in_fragments_are_counted(
    client: httpx.AsyncClient, demo: None, count_statements: StatementCounter
) -> None:
    half = MAX_ALIASES // 2 + 1
    fields = " ".join(f"r{n}: register(input: $input) {{ __typename }}" for n in range(half))
    document = (
        "mutation Many($input: RegisterInput!) { ...Outer ...Inner }"
        " fragment Outer on Mutation { ...Inner }"
        f" fragment Inner on Mutation {{ {fields} }}"
    )
    messages = await _refused_before_execution(client, count_statements, document, _registration())
    assert messages == [f"{2 * half} aliases found. Allowed: {MAX_ALIASES}"]


async def test_aliases_up_to_the_limit_are_served(client: httpx.AsyncClient) -> None:
    fields = " ".join(f"a{n}: __typename" for n in range(MAX_ALIASES))
    response = await _post(client, json=_query(f"{{ {fields} }}"))
    assert response.status_code == 200
    assert response.json() == {"data": {f"a{n}": "Query" for n in range(MAX_ALIASES)}}


async def test_too_many_tokens_are_refused(
    client: httpx.AsyncClient, demo: None, count_statements: StatementCounter
) -> None:
    fields = " ".join(["__typename"] * MAX_TOKENS)
    document = f"mutation Many($input: RegisterInput!) {{ register(input: $input) {{ {fields} }} }}"
    messages = await _refused_before_execution(client, count_statements, document, _registration())
    assert len(messages) == 1
    assert f"more than {MAX_TOKENS} tokens" in messages[0]


async def test_fragment_cycle_is_refused_without_a_crash(
    client: httpx.AsyncClient, demo: None, count_statements: StatementCounter
) -> None:
    document = (
        "mutation Cycle($input: RegisterInput!) { ...A }"
        " fragment A on Mutation { register(input: $input) { __typename } ...B }"
        " fragment B on Mutation { ...A }"
    )
    messages = await _refused_before_execution(client, count_statements, document, _registration())
    assert "Cannot spread fragment 'A' within itself via 'B'." in messages


async def test_undefined_fragment_is_refused_without_a_crash(
    client: httpx.AsyncClient, demo: None, count_statements: StatementCounter
) -> None:
    document = "mutation Missing($input: RegisterInput!) { ...Nowhere }"
    messages = await _refused_before_execution(client, count_statements, document, _registration())
    assert "Unknown fragment 'Nowhere'." in messages


async def test_batched_array_body_is_refused(
    client: httpx.AsyncClient, demo: None, count_statements: StatementCounter
) -> None:
    counts = await table_counts()
    count_statements.statements.clear()
    batch = [
        _query(REGISTER, _registration("first@example.com")),
        _query(REGISTER, _registration("second@example.com")),
    ]
    response = await _post(client, json=batch)
    assert response.status_code == 400
    assert "CheckYourMail" not in response.text
    assert count_statements.statements == []
    assert await table_counts() == counts


# --- no schema hints (item 19) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("{ mee { email } }", id="root-field"),
        pytest.param("{ me { emial } }", id="field"),
        pytest.param("{ tickets(frist: 5) { edges { cursor } } }", id="argument"),
        pytest.param("{ tickets(filter: {staus: OPEN}) { edges { cursor } } }", id="input-field"),
        pytest.param("{ tickets(filter: {status: OPNE}) { edges { cursor } } }", id="enum-value"),
        pytest.param("query { ...F } fragment F on Qurey { me { id } }", id="type-condition"),
        pytest.param(
            "query Q($f: TicketFilterInpt) { tickets(filter: $f) { edges { cursor } } }",
            id="variable-type",
        ),
    ],
)
async def test_misspellings_get_no_suggestions(client: httpx.AsyncClient, document: str) -> None:
    response = await _post(client, json=_query(document))
    body = response.json()
    assert body["errors"]
    for error in body["errors"]:
        assert "Did you mean" not in error["message"]
    assert "Did you mean" not in response.text


# --- masked unexpected errors (item 21) ------------------------------------------------------


async def test_unexpected_error_is_masked_and_logged_without_personal_data(
    client: httpx.AsyncClient,
    customer: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaked = "leak.canary@example.com"

    async def broken(principal: object) -> list[object]:
        raise RuntimeError(f"consent lookup failed for {leaked}")

    monkeypatch.setattr(resolvers.consents, "my_consents", broken)
    caplog.set_level(logging.DEBUG)
    response = await Api(client, customer).post("{ myConsents { purpose granted } }")

    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    assert response.json() == {
        "data": {"myConsents": None},
        "errors": [
            {
                "message": "Unexpected error.",
                "locations": [{"line": 1, "column": 3}],
                "path": ["myConsents"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            }
        ],
    }
    assert leaked not in response.text
    assert "RuntimeError" not in response.text
    formatter = logging.Formatter("%(name)s %(message)s")
    logged = [formatter.format(record) for record in caplog.records]
    assert not [line for line in logged if leaked in line]
    assert any(request_id in line for line in logged), "logs keep the request id"
