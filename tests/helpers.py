"""Helpers that several test files share: callers, sign-ins, database views, processes."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from tortoise import Tortoise

import settings as config
from models import User, crypto

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://127.0.0.1:8000"
DEMO_PASSWORD = "ocis-demo"


def worker_redis_url(url: str) -> str:
    """`url` moved to this pytest-xdist worker's own Redis database: the URL's database plus the
    worker's index ("gw0" adds 0, "gw1" adds 1); unchanged outside xdist.

    Tests empty the ocis: keys of their database, so workers sharing one would wipe each other.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker:
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or "0")
    return urlunsplit(parts._replace(path=f"/{base + int(worker.removeprefix('gw'))}"))


@dataclass
class Api:
    """A signed-in (or anonymous) GraphQL caller."""

    http: httpx.AsyncClient
    cookie: str | None = None

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"cookie": f"ocis_session={self.cookie}"} if self.cookie else {}
        self.http.cookies.clear()
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )


def signed_in_email(response: httpx.Response) -> str | None:
    """The email of `{ me { email } }`'s answer, or None for an ended session (401
    `SESSION_EXPIRED`, the cookie cleared) or an anonymous caller."""
    if response.status_code == 401:
        assert response.json()["errors"][0]["extensions"]["code"] == "SESSION_EXPIRED"
        return None
    assert response.status_code == 200, response.text
    me = response.json()["data"]["me"]
    return None if me is None else str(me["email"])


async def sign_in(http: httpx.AsyncClient, email: str, password: str = DEMO_PASSWORD) -> str:
    """Sign in with a password and return the raw session cookie value."""
    http.cookies.clear()
    response = await http.post("/auth/password", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token = response.cookies.get("ocis_session")
    assert token
    http.cookies.clear()
    return token


async def user_by_email(email: str) -> User:
    return await User.get(email_index=crypto.blind_index(email))


async def pending_link_token(kind: str) -> str:
    """The token of the newest link of this kind still waiting in the outbox (its notice keeps
    the sealed link until the mail is sent)."""
    from models import Notice

    notice = await Notice.filter(kind=kind, link__isnull=False).order_by("-created_at").first()
    assert notice is not None, f"no {kind} link waits to be mailed"
    assert notice.link
    return notice.link.rsplit("#token=", 1)[1]


async def verify_by_link(http: httpx.AsyncClient) -> None:
    """Follow the newest verification link waiting in the outbox, as its mail's reader would."""
    token = await pending_link_token("account.verify")
    body = await Api(http).gql(
        "mutation($t: String!) { verifyEmail(token: $t) { __typename } }", {"t": token}
    )
    assert body == {"data": {"verifyEmail": {"__typename": "VerifyEmailSuccess"}}}, body


async def table_counts() -> dict[str, int]:
    return {
        model._meta.db_table: await model.all().count() for model in Tortoise.apps["ocis"].values()
    }


async def database_rows() -> str:
    """Every row of every table, as the database holds it."""
    connection = Tortoise.get_connection("default")
    rows: list[str] = []
    for model in Tortoise.apps["ocis"].values():
        table = model._meta.db_table
        result = await connection.execute_query_dict(f'SELECT * FROM "{table}"')
        rows.extend(repr(row) for row in result)
    return "\n".join(rows)


CHECKPOINT_DIR_VARIABLE = "OCIS_AUDIT_CHECKPOINT_DIR"


def subprocess_environment(**overrides: str) -> dict[str, str]:
    """This environment without our settings (only `overrides` configure the process),
    except where audit checkpoints go: the suite's own directory (conftest.py
    audit_checkpoints_elsewhere), never the checkout's var/, where `make run`'s database would
    be verified against another database's checkpoints and read as truncated."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key == CHECKPOINT_DIR_VARIABLE
        or not key.startswith(("OCIS_", "OIDC_", "DATABASE_URL", "REDIS_URL", "SMTP_URL"))
    }
    return environment | overrides


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run an `ocis` command in a process of its own, configured by `env` only."""
    return subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [sys.executable, "server.py", *args],
        cwd=ROOT,
        env=subprocess_environment(**(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class StatementCounter(logging.Handler):
    """Counts SQL statements the ORM sends, on either backend."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "%s: %s" and record.args:
            self.statements.append(str(record.args[0]))  # type: ignore[index]


def https_settings(base: config.Settings) -> config.Settings:
    return replace(base, public_url="https://ocis.example.com")


def unique_email() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@example.com"


def letters_canary(length: int = 24) -> str:
    """A random canary of letters only: a hex one now and then holds a run of digits that the
    card-data guard rightly refuses (13 Luhn-valid digits in a row), which made tests flaky."""
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(length))


async def bypass_append_only(statements: list[str]) -> None:
    """Run statements as someone with direct database access would, past the audit triggers.

    PostgreSQL: superuser replica mode. SQLite: drop the triggers and put them back.
    """
    import importlib

    from tortoise import Tortoise

    migration = importlib.import_module("migrations.0002_audit_access")
    connection = Tortoise.get_connection("default")
    body = "; ".join(statements)
    if connection.capabilities.dialect == "postgres":
        await connection.execute_script(
            f"SET session_replication_role = replica; {body}; "
            "SET session_replication_role = origin;"
        )
    else:
        await connection.execute_script(migration.SQLITE_DROP_APPEND_ONLY_SQL)
        try:
            await connection.execute_script(body)
        finally:
            await connection.execute_script(migration.SQLITE_APPEND_ONLY_SQL)


APP_CLIENT_ID = "ocis-mobile"
APP_REDIRECT_URI = "ocis://auth/callback"


async def app_refresh(http: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    """The mobile app's refresh at the token endpoint."""
    return await http.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


async def app_code_exchange(store: Any, user_id: Any) -> dict[str, str]:
    """The form of the mobile app's code exchange, for a code issued as the sign-in flow does."""
    from auth import tokens

    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    code = await tokens.issue_mobile_code(
        store, user_id, APP_REDIRECT_URI, challenge, APP_CLIENT_ID
    )
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": APP_REDIRECT_URI,
        "client_id": APP_CLIENT_ID,
    }


@asynccontextmanager
async def another_instance(app: Any, settings: config.Settings) -> AsyncIterator[Any]:
    """Another app process on the shared store: its own Redis connection where there is Redis
    (the embedded store is one process's, so there the object is shared), and its own gateway."""
    from auth.oidc import Gateway, configured_providers
    from auth.store import connect_store
    from server import create_app

    other = create_app(settings)
    other.state.store = connect_store(settings.redis_url) if settings.redis_url else app.state.store
    other.state.gateway = Gateway(configured_providers(settings.oidc), other.state.store)
    try:
        yield other
    finally:
        if other.state.store is not app.state.store:
            await other.state.store.aclose()
