"""The real app in this process: one GraphQL request with its SQL statements counted."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

import settings as config
from server import create_app
from web.cookies import cookie_name

STATEMENT_LOGGER = "tortoise.db_client"


class BenchError(RuntimeError):
    """The benchmark cannot give a trustworthy answer; the message says why."""


class StatementCounter(logging.Handler):
    """Counts the SQL statements Tortoise sends (its DEBUG records ``"%s: %s"``)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "%s: %s" and isinstance(record.args, tuple) and record.args:
            self.statements.append(str(record.args[0]))


async def sign_in(
    client: httpx.AsyncClient, cookie: str, email: str, password: str, origin: str
) -> str:
    """Sign in with a password at POST /auth/password and return the session cookie value."""
    client.cookies.clear()
    response = await client.post(
        "/auth/password", json={"email": email, "password": password}, headers={"origin": origin}
    )
    token = response.cookies.get(cookie)
    client.cookies.clear()
    if response.status_code != 200 or not token:
        raise BenchError(f"sign-in as {email} failed: {response.status_code} {response.text}")
    return token


def graphql_headers(cookie: str, token: str, origin: str) -> dict[str, str]:
    return {"content-type": "application/json", "origin": origin, "cookie": f"{cookie}={token}"}


@dataclass(frozen=True, slots=True)
class Counted:
    """For each request body sent in turn: its answer and the statements it sent."""

    bodies: list[bytes]
    statements: list[list[str]]


async def count_statements(
    settings: config.Settings, email: str, password: str, request_bodies: list[bytes]
) -> Counted:
    """Send signed-in GraphQL requests through the ASGI app in turn, each after a warm-up
    request of its own, and count each one's statements."""
    app = create_app(settings)
    origin = settings.public_origin
    cookie = cookie_name(settings)
    bodies: list[bytes] = []
    statements: list[list[str]] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=origin) as client:
            token = await sign_in(client, cookie, email, password, origin)
            headers = graphql_headers(cookie, token, origin)
            logger = logging.getLogger(STATEMENT_LOGGER)
            for request_body in request_bodies:
                await client.post("/graphql", content=request_body, headers=headers)
                counter = StatementCounter()
                previous = logger.level
                logger.setLevel(logging.DEBUG)
                logger.addHandler(counter)
                try:
                    response = await client.post("/graphql", content=request_body, headers=headers)
                finally:
                    logger.removeHandler(counter)
                    logger.setLevel(previous)
                if response.status_code != 200:
                    raise BenchError(
                        f"in-process GraphQL answered {response.status_code}: {response.text}"
                    )
                bodies.append(response.content)
                statements.append(counter.statements)
    return Counted(bodies, statements)
