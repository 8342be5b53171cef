"""Introspection in production is for staff only; the committed SDL is the clients' contract
(issue 9.8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

import settings as config
from models import User, crypto
from tests.helpers import DEMO_PASSWORD, app_code_exchange
from web.cookies import cookie_name

PRODUCTION_ORIGIN = "https://ocis.example.com"
SCHEMA_TYPES = "{ __schema { types { name } } }"
REFUSED = {
    "direct": SCHEMA_TYPES,
    "type": '{ __type(name: "User") { fields { name } } }',
    "aliased": "{ map: __schema { queryType { name } } }",
    "in-fragment": "query { ...Map } fragment Map on Query { __schema { types { name } } }",
    "in-nested-fragment": (
        "query { me { id } ...Outer } fragment Outer on Query { ...Inner }"
        ' fragment Inner on Query { t: __type(name: "Ticket") { name } }'
    ),
    "inline-fragment": "{ ... on Query { __schema { directives { name } } } }",
    "beside-data": "{ me { id } __schema { types { name } } }",
}


@pytest.fixture
def app_settings(app_settings: config.Settings) -> config.Settings:
    """The app as production runs it, behind TLS."""
    return replace(app_settings, env="production", public_url=PRODUCTION_ORIGIN)


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=PRODUCTION_ORIGIN, headers={"origin": PRODUCTION_ORIGIN}
    ) as http:
        yield http


async def _post(
    http: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    http.cookies.clear()
    response = await http.post("/graphql", json={"query": query}, headers=headers or {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _as(
    http: httpx.AsyncClient, settings: config.Settings, email: str | None
) -> dict[str, str]:
    """The headers of a browser signed in as `email` (none: anonymous)."""
    if email is None:
        return {}
    http.cookies.clear()
    response = await http.post("/auth/password", json={"email": email, "password": DEMO_PASSWORD})
    assert response.status_code == 200, response.text
    name = cookie_name(settings)
    session = response.cookies[name]
    return {"cookie": f"{name}={session}"}


def _assert_refused(body: dict[str, Any]) -> None:
    assert body.get("data") is None, body
    assert len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["extensions"] == {"code": "INTROSPECTION_FORBIDDEN"}
    assert error["message"] == (
        "Introspection is not available; the published schema is the contract."
    )


@pytest.mark.parametrize("email", [None, "customer@example.com"], ids=["anonymous", "customer"])
async def test_introspection_in_production_is_refused_to_non_staff(
    browser: httpx.AsyncClient, app_settings: config.Settings, demo: None, email: str | None
) -> None:
    headers = await _as(browser, app_settings, email)
    for name, query in REFUSED.items():
        body = await _post(browser, query, headers)
        _assert_refused(body)
        assert "User" not in str(body), name
        assert "Ticket" not in str(body), name


async def test_introspection_in_production_is_refused_to_a_customers_mobile_token(
    app: Any, demo: None
) -> None:
    customer = await User.get(email_index=crypto.blind_index("customer@example.com"))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50001))
    async with httpx.AsyncClient(transport=transport, base_url=PRODUCTION_ORIGIN) as mobile:
        form = await app_code_exchange(app.state.store, customer.id)
        issued = await mobile.post("/auth/token", data=form)
        assert issued.status_code == 200, issued.text
        bearer = {"authorization": f"Bearer {issued.json()['access_token']}"}
        assert (await _post(mobile, "{ me { email } }", bearer))["data"] == {
            "me": {"email": "customer@example.com"}
        }
        for query in REFUSED.values():
            _assert_refused(await _post(mobile, query, bearer))


async def test_typename_stays_allowed_for_everyone_in_production(
    browser: httpx.AsyncClient, demo: None
) -> None:
    body = await _post(browser, "{ __typename me { __typename } }")
    assert body == {"data": {"__typename": "Query", "me": None}}


@pytest.mark.parametrize("email", ["agent@example.com", "admin@example.com"])
async def test_staff_introspect_the_production_schema(
    browser: httpx.AsyncClient, app_settings: config.Settings, demo: None, email: str
) -> None:
    headers = await _as(browser, app_settings, email)
    body = await _post(browser, SCHEMA_TYPES, headers)
    assert "errors" not in body, body
    names = {each["name"] for each in body["data"]["__schema"]["types"]}
    assert {"Query", "Mutation", "User", "Ticket"} <= names
    nested = await _post(browser, REFUSED["in-nested-fragment"], headers)
    assert nested["data"]["t"] == {"name": "Ticket"}


async def test_non_staff_get_no_suggestions_of_names_in_production(
    browser: httpx.AsyncClient, demo: None
) -> None:
    body = await _post(browser, "{ ticket { id } }")
    assert body.get("data") is None
    assert [error["message"] for error in body["errors"]] == [
        "Cannot query field 'ticket' on type 'Query'."
    ]


async def test_development_keeps_introspection_open(
    app_settings: config.Settings, database_url: str
) -> None:
    from server import create_app

    development = create_app(replace(app_settings, env="development"))
    async with development.router.lifespan_context(development):
        transport = httpx.ASGITransport(app=development, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url=PRODUCTION_ORIGIN, headers={"origin": PRODUCTION_ORIGIN}
        ) as http:
            body = await _post(http, REFUSED["in-fragment"])
    assert "errors" not in body, body
    assert "Query" in {each["name"] for each in body["data"]["__schema"]["types"]}
