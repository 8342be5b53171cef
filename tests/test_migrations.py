"""Migrations run on a database holding rows of the schema before them: nothing is lost."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

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
