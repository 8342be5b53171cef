"""Every body gets a clear answer, and no cache keeps GraphQL or sign-in answers (issue 9.9)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

import settings as config
from tests.helpers import ORIGIN
from web.cookies import cookie_name

NOT_ONE_OPERATION = [
    pytest.param(b'"{ me { email } }"', id="string"),
    pytest.param(b"42", id="number"),
    pytest.param(b"[]", id="empty-array"),
    pytest.param(b'[{"query": "{ me { email } }"}]', id="batch"),
    pytest.param(b"null", id="null"),
]


@pytest.fixture(params=["development", "production"])
def app_settings(request: pytest.FixtureRequest, database_url: str) -> config.Settings:
    """The app in both modes; production as it runs behind TLS."""
    settings = config.Settings(
        env="development",
        database_url=database_url,
        redis_url=config.from_environ().redis_url,
        public_url=ORIGIN,
        master_key=b"k" * 32,
    )
    if request.param == "production":
        return replace(settings, env="production", public_url="https://ocis.example.com")
    return settings


@pytest.fixture
async def browser(app: Any, app_settings: config.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on the app's own origin."""
    origin = app_settings.public_url
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=origin, headers={"origin": origin}
    ) as http:
        yield http


def _assert_graphql_error(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    errors = response.json()["errors"]
    assert len(errors) == 1
    assert set(errors[0]) == {"message", "extensions"}
    assert errors[0]["message"].startswith("Send one GraphQL operation as a JSON object")
    assert errors[0]["extensions"] == {"code": "BAD_REQUEST"}


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


@pytest.mark.parametrize("body", NOT_ONE_OPERATION)
async def test_a_json_body_that_is_not_one_operation_gets_a_graphql_error(
    browser: httpx.AsyncClient, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await browser.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
    _assert_graphql_error(response)
    _no_errors_logged(caplog)


@pytest.mark.parametrize("body", NOT_ONE_OPERATION)
async def test_a_signed_in_callers_malformed_body_gets_a_graphql_error(
    browser: httpx.AsyncClient, demo: None, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    signed_in = await browser.post(
        "/auth/password", json={"email": "customer@example.com", "password": "ocis-demo"}
    )
    assert signed_in.status_code == 200
    with caplog.at_level(logging.INFO):
        response = await browser.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
    _assert_graphql_error(response)
    _no_errors_logged(caplog)


async def test_graphql_answers_are_not_stored(
    browser: httpx.AsyncClient, app_settings: config.Settings
) -> None:
    session_cookie = f"{cookie_name(app_settings)}=x"
    answers = [
        await browser.post("/graphql", json={"query": "{ privacyContact }"}),
        await browser.post("/graphql", json={"query": "{ mee }"}),
        await browser.post(
            "/graphql", json={"query": "{ me { id } }"}, headers={"authorization": "Bearer x"}
        ),
        await browser.post(
            "/graphql",
            content=b'{"query": "{ me { id } }"}',
            headers={"content-type": "text/plain", "cookie": session_cookie},
        ),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 401, 403]
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store", answer.request.content


async def test_sign_in_sign_out_and_token_answers_are_not_stored(
    browser: httpx.AsyncClient, demo: None
) -> None:
    credentials = {"email": "customer@example.com", "password": "ocis-demo"}
    answers = {
        "bad body": await browser.post("/auth/password", json=["customer@example.com"]),
        "wrong password": await browser.post(
            "/auth/password", json={**credentials, "password": "not the password"}
        ),
        "signed in": await browser.post("/auth/password", json=credentials),
        "signed out": await browser.post("/auth/logout", json={}),
        "token": await browser.post("/auth/token", data={"grant_type": "password"}),
        "unknown provider": await browser.get("/auth/login/nowhere"),
        "callback": await browser.get("/auth/callback/nowhere"),
        "complete sign-up": await browser.post(
            "/auth/complete-signup", json={"pending": "x", "dateOfBirth": "1990-01-01"}
        ),
    }
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "bad body": 400,
        "wrong password": 401,
        "signed in": 200,
        "signed out": 204,
        "token": 400,
        "unknown provider": 404,
        "callback": 404,
        "complete sign-up": 400,
    }
    for name, answer in answers.items():
        assert answer.headers["cache-control"] == "no-store", name


async def test_a_rate_limited_token_request_is_not_stored(browser: httpx.AsyncClient) -> None:
    for _ in range(120):
        await browser.post("/auth/token", data={"grant_type": "password"})
    limited = await browser.post("/auth/token", data={"grant_type": "password"})
    assert limited.status_code == 429
    assert limited.headers["cache-control"] == "no-store"
