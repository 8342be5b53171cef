"""Two real server processes sharing one database and one Redis: a sign-out in one reaches both.

Each server is `python server.py serve` on its own loopback port. On the embedded leg of the
suite (SQLite, no REDIS_URL) the processes share the SQLite file and a Redis database of their
own on 127.0.0.1:6379, because sessions shared across processes are what Redis is for.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

import settings as config
from models import SignInSession, User, crypto
from schema.relay import to_global_id
from tests.helpers import ORIGIN, ROOT, signed_in_email, subprocess_environment
from tests.smtp_server import free_port

CUSTOMER = "customer@example.com"
ME = "{ me { email } }"
STARTUP_SECONDS = 60


def _start(environment: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    """Start one server and wait (bounded) until it answers; None if its port was taken."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own server with fixed arguments
            [sys.executable, "server.py", "serve"],
            cwd=ROOT,
            env={**environment, "PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + STARTUP_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    _stop(process)
    if "address already in use" in log.read_text().lower():
        return None  # another program took the free port first: try another
    raise AssertionError("the server did not start:\n" + log.read_text())


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@contextmanager
def server_process(
    settings: config.Settings, redis_url: str, log: Path, **extra: str
) -> Iterator[str]:
    """Serve the app in a process of its own until the block ends; yield its base URL."""
    environment = subprocess_environment(
        DATABASE_URL=settings.database_url,
        REDIS_URL=redis_url,
        OCIS_MASTER_KEY=base64.b64encode(settings.master_key).decode(),
        PUBLIC_URL=ORIGIN,
        HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    for _ in range(3):
        started = _start(environment, log)
        if started is not None:
            break
    else:
        raise AssertionError("no free port for the server in three tries")
    process, base = started
    try:
        yield base
    finally:
        _stop(process)


def embedded_leg_redis(settings: config.Settings) -> str:
    """The Redis that server processes share: the app's, or on the embedded leg this worker's own
    database (tests/conftest.py sets OCIS_TEST_REDIS_URL); they empty its ocis: keys."""
    return settings.redis_url or os.environ["OCIS_TEST_REDIS_URL"]


@pytest.fixture
async def shared_redis(app_settings: config.Settings) -> AsyncIterator[str]:
    url = embedded_leg_redis(app_settings)
    store = Redis.from_url(url)
    try:
        async for key in store.scan_iter(match="ocis:*"):
            await store.delete(key)
        yield url
        async for key in store.scan_iter(match="ocis:*"):
            await store.delete(key)
    finally:
        await store.aclose()


@pytest.fixture
def servers(
    demo: None, app_settings: config.Settings, shared_redis: str, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    with (
        server_process(app_settings, shared_redis, tmp_path / "a.log") as first,
        server_process(app_settings, shared_redis, tmp_path / "b.log") as second,
    ):
        yield first, second


class Browser:
    """One HTTP client per server process, as a browser on our origin talks to either."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def sign_in(self, base: str, email: str) -> httpx.Response:
        # A fresh browser each time: a cookie sent along would be ended by the new sign-in.
        self.http.cookies.clear()
        return await self.http.post(
            f"{base}/auth/password",
            json={"email": email, "password": "ocis-demo"},
            headers={"origin": ORIGIN},
        )

    async def session(self, base: str, email: str) -> str:
        response = await self.sign_in(base, email)
        assert response.status_code == 200, response.text
        token = response.cookies.get("ocis_session")
        assert token
        self.http.cookies.clear()
        return token

    async def gql(
        self, base: str, cookie: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.http.post(
            f"{base}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"origin": ORIGIN, "cookie": f"ocis_session={cookie}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def email(self, base: str, cookie: str) -> str | None:
        response = await self.http.post(
            f"{base}/graphql",
            json={"query": ME},
            headers={"origin": ORIGIN, "cookie": f"ocis_session={cookie}"},
        )
        return signed_in_email(response)

    async def sign_out(self, base: str, cookie: str) -> int:
        response = await self.http.post(
            f"{base}/auth/logout",
            json={},
            headers={"origin": ORIGIN, "cookie": f"ocis_session={cookie}"},
        )
        return response.status_code


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield Browser(http)


@pytest.mark.promise("P06")
async def test_a_sign_out_in_one_process_rejects_the_cookie_in_the_other(
    servers: tuple[str, str], browser: Browser
) -> None:
    first, second = servers
    cookie = await browser.session(first, CUSTOMER)
    assert await browser.email(second, cookie) == CUSTOMER
    assert await browser.sign_out(second, cookie) == 204
    assert await browser.email(first, cookie) is None
    assert await browser.email(second, cookie) is None


async def test_sign_out_everywhere_and_disable_reach_every_process(
    servers: tuple[str, str], browser: Browser
) -> None:
    first, second = servers
    here = await browser.session(first, CUSTOMER)
    there = await browser.session(second, CUSTOMER)
    ended = await browser.gql(
        second,
        there,
        "mutation { signOutEverywhere { ... on SignOutEverywhereSuccess { sessionsEnded } } }",
    )
    assert ended["data"]["signOutEverywhere"] == {"sessionsEnded": 2}
    assert await browser.email(first, here) is None

    cookie = await browser.session(second, CUSTOMER)
    admin = await browser.session(first, "admin@example.com")
    customer = await User.get(email_index=crypto.blind_index(CUSTOMER))
    disabled = await browser.gql(
        first,
        admin,
        "mutation($id: ID!) { disableAccount(userId: $id) { __typename } }",
        {"id": to_global_id("User", customer.id)},
    )
    assert disabled["data"]["disableAccount"]["__typename"] == "DisableAccountSuccess"
    assert await browser.email(second, cookie) is None
    refused = await browser.sign_in(second, CUSTOMER)
    assert refused.status_code == 403
    assert refused.json()["code"] == "ACCOUNT_DISABLED"


async def test_the_request_log_keeps_no_path_query_or_ip_and_forwarded_headers_are_not_believed(
    servers: tuple[str, str], browser: Browser, tmp_path: Path
) -> None:
    first, _ = servers
    answer = await browser.http.get(f"{first}/auth/callback/nowhere?code=SECRET-CODE-1&state=ST-2")
    assert answer.status_code == 404
    signed_in = await browser.http.post(
        f"{first}/auth/password",
        json={"email": CUSTOMER, "password": "ocis-demo"},
        headers={"origin": ORIGIN, "x-forwarded-for": "203.0.113.99"},
    )
    assert signed_in.status_code == 200
    (record,) = await SignInSession.all()
    assert record.ip_address == "127.0.0.1", "X-Forwarded-For from an untrusted peer"
    log = tmp_path / "a.log"  # the first server's output: one JSON line per request among it

    def requests() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        return [line for line in lines if line["logger"] == "ocis.request"]

    deadline = time.monotonic() + 10
    # Written by the other process: polled, with a bound.
    while len(requests()) < 3 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    routes = [(line["route"], line["status"]) for line in requests()]
    assert ("/auth/callback/{provider}", 404) in routes
    assert ("/auth/password", 200) in routes
    text = log.read_text()
    assert "SECRET-CODE-1" not in text
    assert "ST-2" not in text
    assert "nowhere" not in text
    assert "203.0.113.99" not in text
    # The client's address appears nowhere but where the server says where it listens.
    assert all("127.0.0.1" not in line or "running on" in line for line in text.splitlines())
