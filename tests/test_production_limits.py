"""The production app starts with every GraphQL limit on: depth, aliases, tokens, cost and the
cost budget, validation, masked errors with a request id, no suggestions, no GET (issue 15,
item 1; SECURITY 17, 19)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.extensions import DisableValidation

import resolvers.consents
import settings as config
from auth import rate_limit
from schema import schema
from schema.extensions import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_TOKENS,
    AliasLimit,
    CardDataGuard,
    DepthLimit,
    IntrospectionGuard,
    MaskUnexpectedErrors,
    QueryCost,
    TokenLimit,
)
from schema.view import OcisGraphQL
from server import create_app
from tests.helpers import DEMO_PASSWORD
from web.cookies import cookie_name

PRODUCTION_ORIGIN = "https://ocis.example.com"
CLIENT_IP = "203.0.113.40"
PRODUCTION_ENVIRONMENT = {
    "OCIS_ENV": "production",
    "OCIS_MASTER_KEY": "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS0=",
    "DATABASE_URL": "postgres://ocis@db.example.com:5432/ocis",
    "REDIS_URL": "redis://cache.example.com:6379/0",
    "SMTP_URL": "smtps://mail.example.com:465",
    "PUBLIC_URL": PRODUCTION_ORIGIN,
    "OCIS_TRUSTED_PROXIES": "10.0.0.0/8",
}
LIMITS = (DepthLimit, AliasLimit, TokenLimit, QueryCost)
NESTED = (
    "{ tickets(first: 100) { edges { node {"
    " messages(first: 100) { edges { node { body } } } } } } }"
)


@pytest.fixture
def app_settings(app_settings: config.Settings) -> config.Settings:
    return replace(app_settings, env="production", public_url=PRODUCTION_ORIGIN)


@pytest.fixture
async def browser(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=PRODUCTION_ORIGIN, headers={"origin": PRODUCTION_ORIGIN}
    ) as http:
        yield http


def graphql_view_of(app: Starlette) -> OcisGraphQL:
    """The Strawberry view behind POST /graphql, through the middleware wrapping it."""
    route = next(each for each in app.routes if isinstance(each, Route) and each.path == "/graphql")
    endpoint: Any = route.app
    for _ in range(10):
        if isinstance(endpoint, OcisGraphQL):
            return endpoint
        endpoint = getattr(endpoint, "app", None) or getattr(endpoint, "endpoint", None)
    raise AssertionError("no GraphQL view behind /graphql")


def test_production_settings_carry_a_cost_limit_and_a_budget() -> None:
    settings = config.from_environ(PRODUCTION_ENVIRONMENT)
    assert settings.is_production
    assert 0 < settings.max_query_cost <= settings.cost_budget_per_minute
    assert settings.max_query_cost == config.DEFAULT_MAX_QUERY_COST == 12_000
    assert settings.cost_budget_per_minute == config.DEFAULT_COST_BUDGET_PER_MINUTE == 120_000
    tuned = config.from_environ(
        {
            **PRODUCTION_ENVIRONMENT,
            "OCIS_MAX_QUERY_COST": "3000",
            "OCIS_COST_BUDGET_PER_MINUTE": "9000",
        }
    )
    assert (tuned.max_query_cost, tuned.cost_budget_per_minute) == (3000, 9000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OCIS_MAX_QUERY_COST", "0"),
        ("OCIS_MAX_QUERY_COST", "-5"),
        ("OCIS_MAX_QUERY_COST", "lots"),
        ("OCIS_MAX_QUERY_COST", "١٢"),
        ("OCIS_COST_BUDGET_PER_MINUTE", "0"),
        ("OCIS_COST_BUDGET_PER_MINUTE", "1.5"),
        ("OCIS_COST_BUDGET_PER_MINUTE", "100"),  # below the maximum per request
    ],
)
def test_a_missing_or_unusable_limit_is_refused_at_start(name: str, value: str) -> None:
    with pytest.raises(config.ConfigurationError, match="OCIS_"):
        config.from_environ({**PRODUCTION_ENVIRONMENT, name: value})


def test_the_production_app_is_built_with_every_limit(app_settings: config.Settings) -> None:
    app = create_app(app_settings)
    view = graphql_view_of(app)
    assert view.schema is schema
    # The view reads OCIS_GRAPHQL_GET per request (schema/view.py); production's default is off.
    assert app.state.settings.queries_via_get is False
    assert view.graphql_ide is None
    extensions = list(schema.extensions)
    for required in (*LIMITS, IntrospectionGuard, CardDataGuard, MaskUnexpectedErrors):
        assert required in extensions, required.__name__
    assert all(isinstance(extension, type) for extension in extensions), "classes, not instances"
    assert not any(issubclass(extension, DisableValidation) for extension in extensions)  # type: ignore[arg-type]
    assert schema.config.disable_field_suggestions is True
    assert (MAX_DEPTH, MAX_ALIASES, MAX_TOKENS) == (10, 30, 3000)


async def _post(http: httpx.AsyncClient, query: str, **headers: str) -> httpx.Response:
    http.cookies.clear()
    return await http.post("/graphql", json={"query": query}, headers=headers)


def _codes_and_messages(response: httpx.Response) -> list[tuple[str | None, str]]:
    body = response.json()
    assert body.get("data") is None, body
    return [(error.get("extensions", {}).get("code"), error["message"]) for error in body["errors"]]


async def test_each_limit_refuses_in_the_running_production_app(
    browser: httpx.AsyncClient, demo: None
) -> None:
    deep = "id"
    for level in range(MAX_DEPTH + 2):
        deep = f"f{level} {{ {deep} }}"
    refused = {
        "depth": f"{{ me {{ {deep} }} }}",
        "aliases": "{ " + " ".join(f"a{n}: __typename" for n in range(MAX_ALIASES + 1)) + " }",
        "tokens": "{ me { " + " ".join(["id"] * MAX_TOKENS) + " } }",
        "validation": "{ ticket { id } }",
        "cost": NESTED,
    }
    answers = {
        name: _codes_and_messages(await _post(browser, query)) for name, query in refused.items()
    }
    assert any("exceeds maximum operation depth" in message for _, message in answers["depth"])
    assert answers["aliases"] == [
        (None, f"{MAX_ALIASES + 1} aliases found. Allowed: {MAX_ALIASES}")
    ]
    assert any(f"more than {MAX_TOKENS} tokens" in message for _, message in answers["tokens"])
    assert answers["validation"] == [(None, "Cannot query field 'ticket' on type 'Query'.")]
    assert [code for code, _ in answers["cost"]] == ["QUERY_TOO_COSTLY"]
    assert "Did you mean" not in json.dumps(answers)


async def test_every_query_is_charged_to_the_caller_in_the_shared_store(
    app: Starlette, browser: httpx.AsyncClient, demo: None
) -> None:
    query = "{ privacyPolicy { version } }"
    for _ in range(3):
        assert (await _post(browser, query)).status_code == 200
    name = rate_limit.counter_key(rate_limit.COST_PER_IP, rate_limit.ip_key(CLIENT_IP))
    assert int(await app.state.store.get(name)) == 3 * 2
    assert 0 < await app.state.store.ttl(name) <= rate_limit.COST_WINDOW_SECONDS
    assert CLIENT_IP not in name


async def test_unexpected_errors_are_masked_with_a_request_id_and_get_runs_nothing(
    browser: httpx.AsyncClient,
    app_settings: config.Settings,
    demo: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(principal: object) -> list[object]:
        raise RuntimeError("the consent store is on fire")

    monkeypatch.setattr(resolvers.consents, "my_consents", broken)
    signed_in = await browser.post(
        "/auth/password", json={"email": "customer@example.com", "password": DEMO_PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    name = cookie_name(app_settings)
    cookie = f"{name}={signed_in.cookies[name]}"
    response = await _post(browser, "{ myConsents { purpose } }", cookie=cookie)
    request_id = response.headers["x-request-id"]
    assert response.json()["errors"] == [
        {
            "message": "Unexpected error.",
            "locations": [{"line": 1, "column": 3}],
            "path": ["myConsents"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        }
    ]
    assert "fire" not in response.text
    browser.cookies.clear()
    by_get = await browser.get(
        "/graphql",
        params={"query": "mutation { signOutEverywhere { __typename } }"},
        headers={"cookie": cookie},
    )
    assert 400 <= by_get.status_code < 500
    assert "SignOutEverywhereSuccess" not in by_get.text
    still = await _post(browser, "{ me { email } }", cookie=cookie)
    assert still.json()["data"] == {"me": {"email": "customer@example.com"}}
