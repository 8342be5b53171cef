"""CORS: the origins of CORS_ORIGINS get credentialed answers and preflights; no one else does."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

import settings as config
from tests.helpers import sign_in

FRONTEND = "https://app.example.com"
OTHER = "https://evil.example.net"
ME = {"query": "{ me { email } }"}


@pytest.fixture
def app_settings(app_settings: config.Settings) -> config.Settings:
    return replace(app_settings, cors_origins=(FRONTEND,))


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.startswith("access-control-")
    }


def _varies_by_origin(response: httpx.Response) -> bool:
    return "origin" in [part.strip().lower() for part in response.headers["vary"].split(",")]


async def test_an_allowed_origin_gets_a_credentialed_answer(
    client: httpx.AsyncClient, demo: None
) -> None:
    cookie = await sign_in(client, "customer@example.com")
    answer = await client.post(
        "/graphql", json=ME, headers={"origin": FRONTEND, "cookie": f"ocis_session={cookie}"}
    )
    assert answer.json() == {"data": {"me": {"email": "customer@example.com"}}}
    assert _cors_headers(answer) == {
        "access-control-allow-origin": FRONTEND,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "retry-after, x-request-id",
    }
    assert _varies_by_origin(answer)


async def test_another_origin_gets_no_cors_headers(client: httpx.AsyncClient, demo: None) -> None:
    anonymous = await client.post("/graphql", json=ME, headers={"origin": OTHER})
    assert anonymous.status_code == 200
    assert _cors_headers(anonymous) == {}
    assert _varies_by_origin(anonymous)
    cookie = await sign_in(client, "customer@example.com")
    with_cookie = await client.post(
        "/graphql", json=ME, headers={"origin": OTHER, "cookie": f"ocis_session={cookie}"}
    )
    assert with_cookie.status_code == 403
    assert _cors_headers(with_cookie) == {}
    assert "customer@example.com" not in with_cookie.text


async def test_no_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    request = client.build_request("POST", "/graphql", json=ME)
    del request.headers["origin"]
    answer = await client.send(request)
    assert answer.status_code == 200
    assert _cors_headers(answer) == {}


def _preflight(
    client: httpx.AsyncClient,
    origin: str,
    method: str = "POST",
    headers: str = "content-type, authorization",
    path: str = "/graphql",
) -> httpx.Request:
    return client.build_request(
        "OPTIONS",
        path,
        headers={
            "origin": origin,
            "access-control-request-method": method,
            "access-control-request-headers": headers,
        },
    )


@pytest.mark.parametrize("path", ["/graphql", "/auth/password", "/auth/logout"])
async def test_a_preflight_from_an_allowed_origin_is_answered(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.send(_preflight(client, FRONTEND, path=path))
    assert answer.status_code == 200
    headers = _cors_headers(answer)
    assert headers["access-control-allow-origin"] == FRONTEND
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-allow-methods"] == "GET, POST"
    allowed = {name.strip().lower() for name in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "*" not in allowed
    assert _varies_by_origin(answer)


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        (OTHER, "POST", "content-type"),
        ("null", "POST", "content-type"),
        (FRONTEND.replace("https", "http"), "POST", "content-type"),
        ("https://app.example.com.evil.example.net", "POST", "content-type"),
        (FRONTEND, "DELETE", "content-type"),
        (FRONTEND, "POST", "content-type, x-custom"),
    ],
)
async def test_every_other_preflight_is_refused_without_cors_headers(
    client: httpx.AsyncClient, origin: str, method: str, headers: str
) -> None:
    answer = await client.send(_preflight(client, origin, method, headers))
    assert answer.status_code == 403
    assert _cors_headers(answer) == {}


def test_cors_origins_are_origins_and_never_a_wildcard() -> None:
    chosen = config.from_environ(
        {"CORS_ORIGINS": "https://App.example.com/, http://127.0.0.1:5173"}
    )
    assert chosen.cors_origins == ("https://app.example.com", "http://127.0.0.1:5173")
    for wrong in ("*", "app.example.com", "https://app.example.com/path", "ftp://a.example.com"):
        with pytest.raises(config.ConfigurationError, match="CORS_ORIGINS"):
            config.from_environ({"CORS_ORIGINS": wrong})
