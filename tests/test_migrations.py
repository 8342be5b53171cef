"""Migrations run on a database holding rows of the schema before them: nothing is lost."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate as run_migrations

from models import db

NOW = "2026-11-01 10:00:00+00:00"


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
