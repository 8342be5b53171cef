"""Helpers for tests: a GraphQL caller, sign-in, a SQL statement counter."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx

import settings as config

ORIGIN = "http://127.0.0.1:8000"
DEMO_PASSWORD = "ocis-demo"


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


async def sign_in(http: httpx.AsyncClient, email: str, password: str = DEMO_PASSWORD) -> str:
    """Sign in with a password and return the raw session cookie value."""
    http.cookies.clear()
    response = await http.post("/auth/password", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token = response.cookies.get("ocis_session")
    assert token
    http.cookies.clear()
    return token


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
