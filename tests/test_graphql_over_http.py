"""The GraphQL-over-HTTP specification: media types by Accept, status codes, GET, 405 and 415.

The whole of it is judged by graphql-http's own server audit, run with node against a real
server process; the tests below pin OCIS's choices where the specification leaves one.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

import settings as config
from schema.media_types import GRAPHQL_RESPONSE, JSON, negotiate
from tests.helpers import ROOT, sign_in, table_counts, user_by_email
from tests.test_two_processes import embedded_leg_redis, server_process
from tests.test_two_processes import shared_redis as shared_redis  # the fixture

AUDIT_DIR = ROOT / "tests" / "graphql_http_audit"
AUDIT_SECONDS = 120
REGISTER = (
    'mutation { register(input: {name: "Get Caller", email: "get@example.com",'
    ' password: "a long enough password", dateOfBirth: "1990-01-01"}) { __typename } }'
)


def _audit(url: str) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node is not None, "`node` (Node.js 20+) must be on PATH for the graphql-http audit"
    installed = AUDIT_DIR / "node_modules" / "graphql-http" / "package.json"
    assert installed.is_file(), f"run `npm ci --prefix {AUDIT_DIR.relative_to(ROOT)}`"
    finished = subprocess.run(  # noqa: S603 - our own script, a loopback URL
        [node, str(AUDIT_DIR / "audit.mjs"), url],
        capture_output=True,
        text=True,
        timeout=AUDIT_SECONDS,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    results: list[dict[str, Any]] = json.loads(finished.stdout)
    return results


@pytest.mark.usefixtures("demo", "shared_redis")
def test_graphql_http_server_audit_passes_every_must_and_should(
    app_settings: config.Settings, tmp_path: Path
) -> None:
    redis_url = embedded_leg_redis(app_settings)
    with server_process(app_settings, redis_url, tmp_path / "serve.log") as base:
        results = _audit(f"{base}/graphql")
    required = [result for result in results if result["name"].startswith(("MUST", "SHOULD"))]
    failing = [result for result in required if result["status"] != "ok"]
    print(f"graphql-http audit: {len(required)} MUST/SHOULD checks, {len(failing)} failing")  # noqa: T201
    for result in failing:
        print(f"  {result['name']}: {result.get('reason')}")  # noqa: T201
    assert len(required) >= 36  # graphql-http 1.23.1: 36 of its checks are MUST or SHOULD
    assert failing == []
    # GET is on in development, so the MAYs about it pass too.
    assert [result for result in results if result["status"] != "ok"] == []


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/json", JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
        (f"{GRAPHQL_RESPONSE}, */*;q=0.1", GRAPHQL_RESPONSE),
        ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),
        (f"{JSON};q=0, {GRAPHQL_RESPONSE};q=0", None),
        (f"*/*, {JSON};q=0", GRAPHQL_RESPONSE),
        ("text/html", None),
        ("application/xml;q=0.9, text/plain", None),
        (f"{GRAPHQL_RESPONSE};q=nonsense", None),
    ],
)
def test_accept_chooses_the_media_type(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


async def _post(client: httpx.AsyncClient, body: Any, accept: str | None) -> httpx.Response:
    headers = {"accept": accept} if accept else {}
    return await client.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ me { email ", None),  # does not parse
        ("{ nothingHere }", None),  # does not validate
        ("query Q($id: ID!) { node(id: $id) { id } }", {"id": {"not": "an id"}}),  # coercion
    ],
)
async def test_request_errors_are_400_without_data_in_graphql_response_json(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None
) -> None:
    modern = await _post(client, {"query": query, "variables": variables}, GRAPHQL_RESPONSE)
    assert modern.status_code == 400
    assert modern.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert "Accept" in modern.headers["vary"]
    body = modern.json()
    assert "data" not in body
    assert len(body["errors"]) >= 1
    legacy = await _post(client, {"query": query, "variables": variables}, JSON)
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == JSON
    assert legacy.json()["data"] is None
    assert legacy.json()["errors"] == body["errors"]


async def test_a_refused_field_is_still_200_with_data(
    client: httpx.AsyncClient, demo: None
) -> None:
    cookie = await sign_in(client, "customer@example.com")
    answer = await client.post(
        "/graphql",
        json={"query": "{ me { email } users(first: 1) { edges { node { id } } } }"},
        headers={"accept": GRAPHQL_RESPONSE, "cookie": f"ocis_session={cookie}"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = answer.json()
    assert body["data"] == {"me": {"email": "customer@example.com"}, "users": None}
    assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]


async def test_the_body_is_compact_utf8_json_in_selection_order(
    client: httpx.AsyncClient, demo: None
) -> None:
    """orjson's bytes (schema/view.py): no spaces, the selection's key order, characters beyond
    ASCII as UTF-8 rather than escapes; the bench's raw endpoint writes exactly these."""
    customer = await user_by_email("customer@example.com")
    customer.name = "Ren\u00e9e \u5ba2\u6237"
    await customer.save(update_fields=["name"])
    cookie = await sign_in(client, "customer@example.com")
    answer = await client.post(
        "/graphql",
        json={"query": "{ me { name email } }"},
        headers={"cookie": f"ocis_session={cookie}"},
    )
    assert answer.status_code == 200
    expected = '{"data":{"me":{"name":"Ren\u00e9e \u5ba2\u6237","email":"customer@example.com"}}}'
    assert answer.content == expected.encode()


async def test_nothing_acceptable_is_406(client: httpx.AsyncClient) -> None:
    answer = await _post(client, {"query": "{ __typename }"}, "text/html")
    assert answer.status_code == 406
    assert answer.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None]
)
async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    request = client.build_request(
        "POST", "/graphql", content=b'{"query": "{ __typename }"}', headers=headers
    )
    assert request.headers.get("content-type") == content_type
    answer = await client.send(request)
    assert answer.status_code == 415
    assert answer.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_queries_by_get_and_never_mutations(client: httpx.AsyncClient, demo: None) -> None:
    answer = await client.get(
        "/graphql", params={"query": "{ privacyContact }"}, headers={"accept": GRAPHQL_RESPONSE}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"data": {"privacyContact": "contact@ocis.app"}}
    before = await table_counts()
    refused = await client.get("/graphql", params={"query": REGISTER})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"
    assert refused.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert await table_counts() == before


async def test_get_is_405_when_turned_off(
    app: Any, client: httpx.AsyncClient, app_settings: config.Settings
) -> None:
    app.state.settings = replace(app_settings, graphql_get=False)
    answer = await client.get("/graphql", params={"query": "{ privacyContact }"})
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert "data" not in answer.json()
    posted = await client.post("/graphql", json={"query": "{ privacyContact }"})
    assert posted.json() == {"data": {"privacyContact": "contact@ocis.app"}}


async def test_get_never_carries_the_session_cookie(client: httpx.AsyncClient, demo: None) -> None:
    cookie = await sign_in(client, "customer@example.com")
    answer = await client.get(
        "/graphql",
        params={"query": "{ me { email } }"},
        headers={"cookie": f"ocis_session={cookie}"},
    )
    assert answer.status_code == 403
    assert "customer@example.com" not in answer.text


PRODUCTION = {
    "OCIS_ENV": "production",
    "OCIS_MASTER_KEY": base64.b64encode(b"m" * 32).decode(),
    "DATABASE_URL": "postgres://ocis@db.example.com:5432/ocis",
    "REDIS_URL": "redis://cache.example.com:6379/0",
    "SMTP_URL": "smtps://mail.example.com:465",
    "OCIS_TRUSTED_PROXIES": "10.0.0.0/8",
    "PUBLIC_URL": "https://support.example.com",
}


def test_get_is_off_by_default_in_production_only() -> None:
    assert config.from_environ({}).queries_via_get is True
    assert config.from_environ({"OCIS_GRAPHQL_GET": "false"}).queries_via_get is False
    assert config.from_environ(PRODUCTION).queries_via_get is False
    assert config.from_environ({**PRODUCTION, "OCIS_GRAPHQL_GET": "true"}).queries_via_get is True
    # Settings built in code for production (not from the environment) refuse GET too.
    assert replace(config.from_environ(PRODUCTION), graphql_get=None).queries_via_get is False
    with pytest.raises(config.ConfigurationError, match="OCIS_GRAPHQL_GET"):
        config.from_environ({"OCIS_GRAPHQL_GET": "sometimes"})
