"""An access token's sign-in family belongs to its subject (issue #9 item 11)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from jose import jwt
from jose.backends.cryptography_backend import CryptographyECKey

import settings as config
from auth import tokens
from models import User, crypto
from tests.helpers import ORIGIN, app_code_exchange

ME = "{ me { email } }"


@pytest.fixture
async def mobile(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client as the app is one: no Origin, no Referer, no cookies."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50001))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        yield http


async def _user_id(email: str) -> UUID:
    user = await User.get(email_index=crypto.blind_index(email))
    return user.id


async def _family_of(app: Any, mobile: httpx.AsyncClient, email: str) -> str:
    form = await app_code_exchange(app.state.store, await _user_id(email))
    response = await mobile.post("/auth/token", data=form)
    assert response.status_code == 200, response.text
    return str(jwt.get_unverified_claims(response.json()["access_token"])["sid"])


def _token_for(settings: config.Settings, sub: UUID, family_id: str) -> str:
    """A token with every claim right, signed with the (test settings') key."""
    key = tokens.signing_key(settings.master_key)
    now = int(time.time())
    claims = {
        "iss": settings.public_url,
        "aud": "ocis-api",
        "sub": str(sub),
        "sid": family_id,
        "client_id": "ocis-mobile",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "f" * 32,
    }
    token: str = jwt.encode(
        claims,
        CryptographyECKey(key.private_key, "ES256"),
        algorithm="ES256",
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    return token


async def _me(mobile: httpx.AsyncClient, token: str) -> httpx.Response:
    return await mobile.post(
        "/graphql", json={"query": ME}, headers={"authorization": f"Bearer {token}"}
    )


async def test_a_token_naming_another_accounts_sign_in_is_refused(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    settings = app.state.settings
    customers_family = await _family_of(app, mobile, "customer@example.com")
    admin = await _user_id("admin@example.com")
    # The same token with the family's own subject is accepted: only the pairing differs.
    own = await _me(
        mobile, _token_for(settings, await _user_id("customer@example.com"), customers_family)
    )
    assert own.json() == {"data": {"me": {"email": "customer@example.com"}}}
    forged = await _me(mobile, _token_for(settings, admin, customers_family))
    assert forged.status_code == 401
    assert forged.json()["errors"][0]["extensions"] == {"code": "SESSION_EXPIRED"}
    assert forged.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_signing_out_with_such_a_token_ends_nobodys_sign_in(
    app: Any, mobile: httpx.AsyncClient, demo: None
) -> None:
    settings = app.state.settings
    customers_family = await _family_of(app, mobile, "customer@example.com")
    admin = await _user_id("admin@example.com")
    forged = _token_for(settings, admin, customers_family)
    response = await mobile.post("/auth/logout", headers={"authorization": f"Bearer {forged}"})
    assert response.status_code == 204
    assert await app.state.store.exists(tokens.FAMILY_PREFIX + customers_family) == 1
    own = _token_for(settings, await _user_id("customer@example.com"), customers_family)
    assert (await _me(mobile, own)).status_code == 200
    assert await tokens.sign_out_app(
        app.state.store, settings, access_token=own, refresh_token=None
    )
    assert await app.state.store.exists(tokens.FAMILY_PREFIX + customers_family) == 0
