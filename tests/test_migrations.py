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


def _walk_in_ticket(
    connection: sqlite3.Connection, ring: crypto.Keyring, email: str, name: str | None, at: str
) -> str:
    """An email-only ticket as the code before 0010 wrote it: sealed under the ticket's own key."""
    ticket_id = str(uuid.uuid4())
    cipher, wrapped = ring.new_data_key(ticket_id)
    connection.execute(
        "INSERT INTO data_keys (id, purpose, subject_id, version, state, wrapped_key, kek_id,"
        " created_at, updated_at) VALUES (?, 'data', ?, 1, 'active', ?, ?, ?, ?)",
        (wrapped.key_id, ticket_id, wrapped.wrapped_key, wrapped.kek_id, at, at),
    )

    def seal(column: str, value: str | None) -> str | None:
        return None if value is None else cipher.seal(value, f"tickets/{column}/{ticket_id}")

    connection.execute(
        "INSERT INTO tickets (id, subject, status, priority, channel, requester_name,"
        " requester_email, requester_email_index, awaiting_requester, created_at, updated_at)"
        " VALUES (?, ?, 'open', 'normal', 'email', ?, ?, ?, 0, ?, ?)",
        (
            ticket_id,
            seal("subject", "Wrote in"),
            seal("requester_name", name),
            seal("requester_email", email),
            ring.blind_index(email),
            at,
            at,
        ),
    )
    return ticket_id


def _opened(connection: sqlite3.Connection, ring: crypto.Keyring, walk_in: str) -> list[str]:
    """The walk-in's email and name, opened with its own data key."""
    key_id, wrapped, kek_id = connection.execute(
        "SELECT id, wrapped_key, kek_id FROM data_keys WHERE subject_id = ?", (walk_in,)
    ).fetchone()
    cipher = ring.open_data_key(key_id, uuid.UUID(walk_in), wrapped, kek_id)
    email, name = connection.execute(
        "SELECT email, name FROM walk_in_requesters WHERE id = ?", (walk_in,)
    ).fetchone()
    return [
        cipher.open(email, f"walk_in_requesters/email/{walk_in}"),
        cipher.open(name, f"walk_in_requesters/name/{walk_in}"),
    ]


@pytest.mark.promise("P20")
async def test_upgrading_names_a_walk_in_for_every_email_only_ticket(tmp_path: Path) -> None:
    """0010: one walk-in per address, from its oldest ticket, sealed under a key of its own."""
    path = tmp_path / "at-0008.sqlite3"
    url = f"sqlite://{path}"
    await run_migrations(
        config=db.tortoise_config(url),
        app_labels=["ocis"],
        target="ocis.0008_tickets_awaiting_requester",
    )
    await Tortoise.close_connections()
    ring = crypto.configure(MASTER_KEY)
    with sqlite3.connect(path) as connection:
        later = _walk_in_ticket(connection, ring, "gina@example.com", None, "2026-11-02 10:00:00")
        oldest = _walk_in_ticket(connection, ring, "Gina@Example.com", "Gina Guest", NOW)
        other = _walk_in_ticket(connection, ring, "hal@example.com", "Hal Guest", NOW)
        registered = _identity(connection, "https://login.example.com", "444")
        connection.execute(
            "INSERT INTO tickets (id, subject, status, priority, channel, requester_id,"
            " awaiting_requester, created_at, updated_at)"
            " VALUES (?, 'x', 'open', 'normal', 'web', ?, 0, ?, ?)",
            (str(uuid.uuid4()), registered, NOW, NOW),
        )

    await db.migrate(url)

    with sqlite3.connect(path) as connection:
        named = dict(
            connection.execute("SELECT id, walk_in_id FROM tickets WHERE requester_id IS NULL")
        )
        assert connection.execute(
            "SELECT walk_in_id FROM tickets WHERE requester_id IS NOT NULL"
        ).fetchall() == [(None,)]
        assert named[later] == named[oldest] != named[other]
        assert connection.execute("SELECT count(*) FROM walk_in_requesters").fetchone() == (2,)
        assert _opened(connection, ring, named[oldest]) == ["Gina@Example.com", "Gina Guest"]
        assert _opened(connection, ring, named[other]) == ["hal@example.com", "Hal Guest"]
        index = connection.execute(
            "SELECT email_index FROM walk_in_requesters WHERE id = ?", (named[oldest],)
        ).fetchone()
        assert index == (ring.blind_index("gina@example.com"),)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
