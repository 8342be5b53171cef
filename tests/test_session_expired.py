"""Credentials that no longer hold get 401 SESSION_EXPIRED; no credentials at all stay anonymous.

A session cookie that was revoked, expired, never issued or is malformed, and a bearer token
that does not verify, are refused with a GraphQL-shaped error, and the cookie is cleared, so a
client tells "sign in again" apart from "you are a visitor".
"""

from __future__ import annotations

import hashlib
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest

from auth.sessions import SESSION_PREFIX
from tests.helpers import ORIGIN, app_code_exchange, sign_in, table_counts, user_by_email

ME = "{ me { email } }"
CUSTOMER = "customer@example.com"
GRANT = "mutation { grantConsent(input: {purpose: MARKETING_EMAIL}) { __typename } }"


async def _with_cookie(
    client: httpx.AsyncClient, cookie: str, query: str = ME, origin: str = ORIGIN
) -> httpx.Response:
    client.cookies.clear()
    return await client.post(
        "/graphql",
        json={"query": query},
        headers={"cookie": f"ocis_session={cookie}", "origin": origin},
    )


def _assert_expired(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert "data" not in body
    assert [error["extensions"]["code"] for error in body["errors"]] == ["SESSION_EXPIRED"]
    assert response.headers["cache-control"] == "no-store"


def _assert_cookie_cleared(response: httpx.Response) -> None:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    cleared = jar["ocis_session"]
    assert cleared.value in ("", '""')
    assert cleared["max-age"] == "0"
    assert cleared["path"] == "/"
    assert cleared["httponly"]


async def test_no_credentials_stay_anonymous(client: httpx.AsyncClient) -> None:
    client.cookies.clear()
    response = await client.post("/graphql", json={"query": ME})
    assert response.status_code == 200
    assert response.json() == {"data": {"me": None}}
    assert "set-cookie" not in response.headers


async def test_a_signed_out_cookie_is_401_and_cleared(
    client: httpx.AsyncClient, demo: None
) -> None:
    cookie = await sign_in(client, CUSTOMER)
    assert (await _with_cookie(client, cookie)).json() == {"data": {"me": {"email": CUSTOMER}}}
    signed_out = await client.post(
        "/auth/logout", json={}, headers={"cookie": f"ocis_session={cookie}"}
    )
    assert signed_out.status_code == 204
    refused = await _with_cookie(client, cookie)
    _assert_expired(refused)
    _assert_cookie_cleared(refused)
    assert CUSTOMER not in refused.text


async def test_an_expired_cookie_is_401(client: httpx.AsyncClient, app: Any, demo: None) -> None:
    cookie = await sign_in(client, CUSTOMER)
    # What the store's time-to-live does when the session's lifetime is over.
    key = SESSION_PREFIX + hashlib.sha256(cookie.encode()).hexdigest()
    assert await app.state.store.delete(key) == 1
    refused = await _with_cookie(client, cookie)
    _assert_expired(refused)
    _assert_cookie_cleared(refused)


@pytest.mark.parametrize(
    "cookie",
    ["", "not-a-session", "%00%ff", "x" * 129, "attacker-chosen-session-id-0123456789abcdef"],
)
async def test_a_malformed_or_unknown_cookie_is_401(client: httpx.AsyncClient, cookie: str) -> None:
    refused = await _with_cookie(client, cookie)
    _assert_expired(refused)
    _assert_cookie_cleared(refused)


async def test_an_expired_cookie_changes_nothing(client: httpx.AsyncClient, demo: None) -> None:
    cookie = await sign_in(client, CUSTOMER)
    await client.post("/auth/logout", json={}, headers={"cookie": f"ocis_session={cookie}"})
    before = await table_counts()
    _assert_expired(await _with_cookie(client, cookie, GRANT))
    assert await table_counts() == before


async def test_a_cross_site_request_with_a_dead_cookie_is_refused_without_clearing_it(
    client: httpx.AsyncClient,
) -> None:
    refused = await _with_cookie(client, "not-a-session", origin="https://evil.example.net")
    assert refused.status_code == 403
    assert "set-cookie" not in refused.headers


async def test_sign_out_everywhere_answers_then_every_session_is_expired(
    client: httpx.AsyncClient, demo: None
) -> None:
    laptop = await sign_in(client, CUSTOMER)
    phone = await sign_in(client, CUSTOMER)
    ended = await _with_cookie(client, laptop, "mutation { signOutEverywhere { __typename } }")
    assert ended.status_code == 200
    assert ended.json() == {
        "data": {"signOutEverywhere": {"__typename": "SignOutEverywhereSuccess"}}
    }
    _assert_expired(await _with_cookie(client, laptop))
    _assert_expired(await _with_cookie(client, phone))


async def _access_token(app: Any, client: httpx.AsyncClient) -> dict[str, str]:
    form = await app_code_exchange(app.state.store, (await user_by_email(CUSTOMER)).id)
    issued = await client.post("/auth/token", data=form)
    assert issued.status_code == 200, issued.text
    tokens: dict[str, str] = issued.json()
    return tokens


async def _with_bearer(client: httpx.AsyncClient, token: str) -> httpx.Response:
    client.cookies.clear()
    return await client.post(
        "/graphql", json={"query": ME}, headers={"authorization": f"Bearer {token}"}
    )


async def test_a_revoked_or_malformed_bearer_token_is_401(
    app: Any, client: httpx.AsyncClient, demo: None
) -> None:
    tokens = await _access_token(app, client)
    served = await _with_bearer(client, tokens["access_token"])
    assert served.json() == {"data": {"me": {"email": CUSTOMER}}}
    signed_out = await client.post(
        "/auth/logout", json={}, headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert signed_out.status_code == 204
    for token in (tokens["access_token"], "not-a-jwt", tokens["access_token"][:-4] + "AAAA"):
        refused = await _with_bearer(client, token)
        _assert_expired(refused)
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert "set-cookie" not in refused.headers
