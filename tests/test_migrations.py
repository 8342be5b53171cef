"""Migrations run on a database holding rows of the schema before them: nothing is lost."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate as run_migrations

from models import crypto, db

NOW = "2026-11-01 10:00:00+00:00"
MASTER_KEY = b"m" * 32


def _identity(connection: sqlite3.Connection, issuer: str, subject: str) -> str:
    user_id = str(uuid.uuid4())
    connection.execute(
        "INSERT INTO users (id, name, email, email_index, locale, time_zone, roles, status,"
        " source, created_at, updated_at)"
        " VALUES (?, 'x', 'x', ?, 'en', 'UTC', '[]', 'active', 'self', ?, ?)",
        (user_id, uuid.uuid4().hex, NOW, NOW),
    )
    connection.execute(
        "INSERT INTO external_identities (id, issuer, subject, tenant_id, provider,"
        " email_verified, linked_at, user_id) VALUES (?, ?, ?, '', 'google', 1, ?, ?)",
        (str(uuid.uuid4()), issuer, subject, NOW, user_id),
    )
    connection.execute(
        "INSERT INTO sign_in_sessions (id, user_id, token_hash, method, created_at, expires_at)"
        " VALUES (?, ?, ?, 'password', ?, ?)",
        (str(uuid.uuid4()), user_id, uuid.uuid4().hex, NOW, NOW),
    )
    return user_id


async def test_upgrading_keeps_every_row_and_moves_google_to_its_canonical_issuer(
    tmp_path: Path,
) -> None:
    """On SQLite a column change rebuilds the table; rows referring to it must survive."""
    path = tmp_path / "at-0003.sqlite3"
    url = f"sqlite://{path}"
    await run_migrations(
        config=db.tortoise_config(url), app_labels=["ocis"], target="ocis.0003_data_keys"
    )
    await Tortoise.close_connections()
    with sqlite3.connect(path) as connection:
        bare = _identity(connection, "accounts.google.com", "111")
        # The same person signed in with both spellings before: two rows, kept apart.
        _identity(connection, "accounts.google.com", "222")
        canonical = _identity(connection, "https://accounts.google.com", "222")
        other = _identity(connection, "https://login.example.com", "111")
    await db.migrate(url)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (4,)
        assert connection.execute("SELECT count(*) FROM external_identities").fetchone() == (4,)
        assert connection.execute("SELECT count(*) FROM sign_in_sessions").fetchone() == (4,)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = dict(
            connection.execute(
                "SELECT user_id, issuer FROM external_identities WHERE subject = '111'"
            ).fetchall()
        )
        assert rows == {bare: "https://accounts.google.com", other: "https://login.example.com"}
        twice = connection.execute(
            "SELECT user_id, issuer FROM external_identities WHERE subject = '222' ORDER BY issuer"
        ).fetchall()
        assert [issuer for _, issuer in twice] == [
            "accounts.google.com",
            "https://accounts.google.com",
        ]
        assert twice[1][0] == canonical
        statuses = connection.execute("SELECT DISTINCT status_before_disable FROM users")
        assert statuses.fetchall() == [(None,)]


@pytest.mark.promise("P10")
async def test_upgrading_seals_the_client_details_already_stored(tmp_path: Path) -> None:
    """0006: locale, time zone, browser details and card brand rows become ciphertexts."""
    path = tmp_path / "at-0005.sqlite3"
    url = f"sqlite://{path}"
    await run_migrations(
        config=db.tortoise_config(url),
        app_labels=["ocis"],
        target="ocis.0005_notices_and_disabled_accounts",
    )
    await Tortoise.close_connections()
    with sqlite3.connect(path) as connection:
        user_id = _identity(connection, "https://login.example.com", "333")
        connection.execute(
            "UPDATE users SET locale = 'pt-PT', time_zone = 'Europe/Lisbon' WHERE id = ?",
            (user_id,),
        )
        connection.execute(
            "UPDATE sign_in_sessions SET browser = 'Firefox', browser_version = '128.0',"
            " os = 'Ubuntu', device_type = 'desktop', time_zone = 'Europe/Lisbon'"
        )
        connection.execute(
            "INSERT INTO payment_methods (id, user_id, gateway_token, brand, last4, exp_month,"
            " exp_year, created_at) VALUES (?, ?, 'v2:x:y', 'visa', '4242', 12, 2030, ?)",
            (str(uuid.uuid4()), user_id, NOW),
        )
    crypto.configure(MASTER_KEY)

    await db.migrate(url)

    with sqlite3.connect(path) as connection:
        stored = [
            *connection.execute("SELECT locale, time_zone FROM users").fetchone(),
            *connection.execute(
                "SELECT browser, browser_version, os, device_type, time_zone FROM sign_in_sessions"
            ).fetchone(),
            *connection.execute("SELECT brand, last4 FROM payment_methods").fetchone(),
        ]
    assert all(value.startswith("v2:") for value in stored), stored
    # Going back opens each value with its own table, column and row as associated data.
    await run_migrations(
        config=db.tortoise_config(url),
        app_labels=["ocis"],
        target="ocis.0005_notices_and_disabled_accounts",
    )
    await Tortoise.close_connections()
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT locale, time_zone FROM users").fetchone() == (
            "pt-PT",
            "Europe/Lisbon",
        )
        assert connection.execute("SELECT brand, last4 FROM payment_methods").fetchone() == (
            "visa",
            "4242",
        )
        assert connection.execute(
            "SELECT browser, browser_version, os, device_type, time_zone FROM sign_in_sessions"
        ).fetchone() == ("Firefox", "128.0", "Ubuntu", "desktop", "Europe/Lisbon")


@pytest.fixture
async def empty_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own, empty: on PostgreSQL when the suite runs there, else SQLite."""
    configured = os.environ.get("DATABASE_URL")
    if not (configured and configured.startswith("postgres")):
        yield f"sqlite://{tmp_path / 'empty.sqlite3'}"
        return
    parts = urlsplit(configured)
    name = f"ocis_pytest_{os.getpid()}_migrations"
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await connection.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        await Tortoise.close_connections()
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


class Sql:
    """Plain SQL on either backend, written with ? placeholders."""

    def __init__(self) -> None:
        self.connection = Tortoise.get_connection("default")

    async def __call__(self, sql: str, *values: object) -> list[dict[str, Any]]:
        if self.connection.capabilities.dialect == "postgres":
            parts = sql.split("?")
            sql = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
        _, rows = await self.connection.execute_query(sql, list(values))
        return [{key: _plain(value) for key, value in dict(row).items()} for row in rows]


def _plain(value: object) -> object:
    return str(value) if isinstance(value, uuid.UUID) else value


async def _walk_in_ticket(
    sql: Sql, ring: crypto.Keyring, email: str, name: str | None, at: datetime
) -> str:
    """An email-only ticket as the code before 0010 wrote it: sealed under the ticket's own key."""
    ticket_id = str(uuid.uuid4())
    cipher, wrapped = ring.new_data_key(ticket_id)
    await sql(
        "INSERT INTO data_keys (id, purpose, subject_id, version, state, wrapped_key, kek_id,"
        " created_at, updated_at) VALUES (?, 'data', ?, 1, 'active', ?, ?, ?, ?)",
        *(wrapped.key_id, ticket_id, wrapped.wrapped_key, wrapped.kek_id, at, at),
    )

    def seal(column: str, value: str | None) -> str | None:
        return None if value is None else cipher.seal(value, f"tickets/{column}/{ticket_id}")

    await sql(
        "INSERT INTO tickets (id, subject, status, priority, channel, requester_name,"
        " requester_email, requester_email_index, awaiting_requester, created_at, updated_at)"
        " VALUES (?, ?, 'open', 'normal', 'email', ?, ?, ?, ?, ?, ?)",
        ticket_id,
        seal("subject", "Wrote in"),
        seal("requester_name", name),
        seal("requester_email", email),
        ring.blind_index(email),
        False,
        at,
        at,
    )
    return ticket_id


async def _opened(sql: Sql, ring: crypto.Keyring, walk_in: str) -> list[str]:
    """The walk-in's email and name, opened with its own data key."""
    (key,) = await sql(
        "SELECT id, wrapped_key, kek_id FROM data_keys WHERE subject_id = ?", walk_in
    )
    cipher = ring.open_data_key(key["id"], uuid.UUID(walk_in), key["wrapped_key"], key["kek_id"])
    (row,) = await sql("SELECT email, name FROM walk_in_requesters WHERE id = ?", walk_in)
    return [
        cipher.open(row["email"], f"walk_in_requesters/email/{walk_in}"),
        cipher.open(row["name"], f"walk_in_requesters/name/{walk_in}"),
    ]


@pytest.mark.promise("P20")
async def test_upgrading_names_a_walk_in_for_every_email_only_ticket(
    empty_database_url: str,
) -> None:
    """0010: one walk-in per address, from its oldest ticket, sealed under a key of its own."""
    url = empty_database_url
    await run_migrations(
        config=db.tortoise_config(url),
        app_labels=["ocis"],
        target="ocis.0008_tickets_awaiting_requester",
    )
    await Tortoise.close_connections()
    await db.connect(url, MASTER_KEY)
    ring = crypto.keyring()
    sql = Sql()
    oldest_at = datetime(2026, 11, 1, 10, tzinfo=UTC)
    later = await _walk_in_ticket(sql, ring, "gina@example.com", None, oldest_at + timedelta(1))
    oldest = await _walk_in_ticket(sql, ring, "Gina@Example.com", "Gina Guest", oldest_at)
    other = await _walk_in_ticket(sql, ring, "hal@example.com", "Hal Guest", oldest_at)
    await db.disconnect()

    await db.migrate(url)

    await db.connect(url, MASTER_KEY)
    sql = Sql()
    named = {
        row["id"]: row["walk_in_id"]
        for row in await sql("SELECT id, walk_in_id FROM tickets WHERE requester_id IS NULL")
    }
    assert named[later] == named[oldest] != named[other]
    assert await sql("SELECT count(*) AS n FROM walk_in_requesters") == [{"n": 2}]
    assert await _opened(sql, ring, named[oldest]) == ["Gina@Example.com", "Gina Guest"]
    assert await _opened(sql, ring, named[other]) == ["hal@example.com", "Hal Guest"]
    assert await sql("SELECT email_index FROM walk_in_requesters WHERE id = ?", named[oldest]) == [
        {"email_index": ring.blind_index("gina@example.com")}
    ]
    await db.disconnect()


async def test_upgrading_turns_marketing_consent_into_marketing_email(tmp_path: Path) -> None:
    """0016: the one marketing purpose meant mail; sources outside the vocabulary are "api";
    no entry is an objection; rows referring to the rebuilt table's neighbours survive."""
    path = tmp_path / "at-0015.sqlite3"
    url = f"sqlite://{path}"
    await run_migrations(
        config=db.tortoise_config(url),
        app_labels=["ocis"],
        target="ocis.0015_policy_versions_and_processors",
    )
    await Tortoise.close_connections()
    entries = {"marketing": "api", "statistics": "console", "preferences": "api"}
    with sqlite3.connect(path) as connection:
        user_id = _identity(connection, "https://login.example.com", "333")
        for purpose, source in entries.items():
            connection.execute(
                "INSERT INTO consent_entries (id, user_id, purpose, granted, policy_version,"
                " source, created_at) VALUES (?, ?, ?, 1, '2026-01', ?, ?)",
                (str(uuid.uuid4()), user_id, purpose, source, NOW),
            )
    await db.migrate(url)
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT purpose, source, granted, objection, created_at FROM consent_entries"
            " ORDER BY purpose"
        ).fetchall()
        assert connection.execute("SELECT count(*) FROM sign_in_sessions").fetchone() == (1,)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    assert rows == [
        ("marketing_email", "api", 1, 0, NOW),
        ("preferences", "api", 1, 0, NOW),
        ("statistics", "api", 1, 0, NOW),
    ]
