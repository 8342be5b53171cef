"""The command line: migrate, seed, create-admin, audit-verify, and production's refusals."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tortoise import Tortoise
from tortoise.exceptions import OperationalError

import cli
from auth.principal import Principal
from models import AuditEvent, Role, User, crypto
from privacy import audit
from tests.helpers import ROOT, bypass_append_only, run_cli


def test_migrate_and_seed_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite://{tmp_path / 'fresh.sqlite3'}"}
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    first = run_cli("seed", env=env)
    assert first.returncode == 0, first.stderr
    assert "demo data created" in first.stdout
    for email in ("admin@example.com", "agent2@example.com", "customer2@example.com"):
        assert email in first.stdout
    again = run_cli("seed", env=env)
    assert again.returncode == 0
    assert "already present" in again.stdout
    assert run_cli("migrate", env=env).returncode == 0


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"OCIS_ENV": "production"}, "OCIS_MASTER_KEY"),
        ({"OCIS_ENV": "staging"}, "OCIS_ENV"),
        ({"OCIS_MASTER_KEY": "too-short"}, "OCIS_MASTER_KEY"),
        ({"OIDC_A_NAME_FAR_TOO_LONG_FOR_ROUTES_ISSUER": "https://id.example"}, "provider name"),
        ({"OIDC_9LIVES_ISSUER": "https://id.example"}, "provider name"),
        (
            {
                "OCIS_ENV": "production",
                "OCIS_MASTER_KEY": "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=",
                "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
                "REDIS_URL": "redis://127.0.0.1:6379/0",
                "PUBLIC_URL": "http://ocis.example.com",
            },
            "https",
        ),
    ],
)
def test_bad_or_development_configuration_is_refused(env: dict[str, str], complaint: str) -> None:
    result = run_cli("migrate", env=env)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "migrations applied" not in result.stdout


def test_seed_is_refused_in_production(tmp_path: Path) -> None:
    env = {
        "OCIS_ENV": "production",
        "OCIS_MASTER_KEY": "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/no_such_database_for_ocis",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "PUBLIC_URL": "https://ocis.example.com",
        "SMTP_URL": "smtps://mail.example.com",
        "OCIS_TRUSTED_PROXIES": "10.0.0.0/8",
    }
    result = run_cli("seed", env=env)
    assert result.returncode == 2
    assert "seed refuses to run in production" in result.stderr


async def test_create_admin_creates_a_signable_administrator(
    app: Any, database_url: str, app_settings: Any
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "OCIS_MASTER_KEY": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=",
        "OCIS_ADMIN_PASSWORD": "a long admin passphrase",
    }
    assert app_settings.master_key == b"k" * 32
    result = run_cli("create-admin", "--email", " Boss@Example.com ", "--name", "Bo", env=env)
    assert result.returncode == 0, result.stderr
    user = await User.get(email_index=crypto.blind_index("boss@example.com"))
    assert user.roles == [Role.ADMINISTRATOR.value]
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    weak = run_cli(
        "create-admin", "--email", "x@example.com", env={**env, "OCIS_ADMIN_PASSWORD": "short"}
    )
    assert weak.returncode == 2
    assert "password" in weak.stderr


async def _write_chain(length: int) -> list[AuditEvent]:
    actor = Principal(request_id="req-1")
    return [
        await audit.record(
            actor, action="test.event", entity="Thing", entity_id=str(i), subject_id=None
        )
        for i in range(length)
    ]


def _verify(database_url: str, settings: Any) -> subprocess.CompletedProcess[str]:
    """audit-verify with the app's master key and checkpoints, as an operator runs it."""
    env = {
        "DATABASE_URL": database_url,
        "OCIS_MASTER_KEY": base64.b64encode(settings.master_key).decode(),
        "OCIS_AUDIT_CHECKPOINT_DIR": str(settings.audit_checkpoint_dir),
    }
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    return run_cli("audit-verify", env=env)


async def test_audit_verify_accepts_an_intact_chain(
    app: Any, database_url: str, app_settings: Any
) -> None:
    await _write_chain(4)
    result = _verify(database_url, app_settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact: 4 records" in result.stdout


@pytest.mark.promise("P20")
@pytest.mark.parametrize("tampering", ["update", "delete", "swap"])
async def test_audit_verify_names_the_first_tampered_record(
    app: Any, database_url: str, app_settings: Any, tampering: str
) -> None:
    events = await _write_chain(5)
    third, fourth = events[2], events[3]
    if tampering == "update":
        statements = [f"UPDATE audit_events SET action = 'test.altered' WHERE seq = {third.seq}"]
        expected = third.seq
    elif tampering == "delete":
        statements = [f"DELETE FROM audit_events WHERE seq = {third.seq}"]
        expected = fourth.seq
    else:
        # Exchange the positions of two records.
        statements = [
            f"UPDATE audit_events SET seq = -1 WHERE seq = {third.seq}",
            f"UPDATE audit_events SET seq = {third.seq} WHERE seq = {fourth.seq}",
            f"UPDATE audit_events SET seq = {fourth.seq} WHERE seq = -1",
        ]
        expected = third.seq
    await bypass_append_only(statements)
    result = _verify(database_url, app_settings)
    assert result.returncode == 1
    assert f"broken at record {expected}:" in result.stdout


@pytest.mark.promise("P20")
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'x'",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE seq = {first}",
    ],
)
async def test_the_application_cannot_change_or_remove_audit_records(
    app: Any, statement: str
) -> None:
    events = await _write_chain(2)
    connection = Tortoise.get_connection("default")
    with pytest.raises(OperationalError, match="append-only"):
        await connection.execute_script(statement.format(first=events[0].seq))
    assert [event.seq for event in await AuditEvent.all().order_by("seq")] == [
        event.seq for event in events
    ]
    assert (await AuditEvent.get(seq=events[0].seq)).action == "test.event"


async def test_postgresql_refuses_truncating_the_audit_trail(app: Any, is_postgres: bool) -> None:
    await _write_chain(1)
    connection = Tortoise.get_connection("default")
    if is_postgres:
        with pytest.raises(OperationalError, match="append-only"):
            await connection.execute_script("TRUNCATE audit_events")
    else:
        # SQLite has no TRUNCATE; its DELETE without WHERE is refused (test above).
        with pytest.raises(OperationalError):
            await connection.execute_script("TRUNCATE audit_events")
    assert await AuditEvent.all().count() == 1


@pytest.mark.promise("P20")
@pytest.mark.parametrize(
    ("tampering", "named"),
    [
        ("DELETE FROM audit_events WHERE seq >= {fourth}", "truncated: chain"),
        ("DELETE FROM audit_events", "wiped: no records"),
        (
            "DELETE FROM audit_events WHERE seq = {third};"
            " UPDATE audit_events SET position = position - 1, prev_hash = '{second_hash}',"
            " hash = '{forged}' WHERE seq = {fourth}",
            "broken at record {fourth}: does not verify under our key",
        ),
    ],
)
async def test_audit_verify_names_truncation_wiping_and_recomputed_hashes(
    app: Any, database_url: str, app_settings: Any, tampering: str, named: str
) -> None:
    events = await _write_chain(5)
    values = {
        "third": events[2].seq,
        "fourth": events[3].seq,
        "second_hash": events[1].hash,
        "forged": "f" * 64,
    }
    await bypass_append_only([tampering.format(**values)])
    result = _verify(database_url, app_settings)
    assert result.returncode == 1, result.stdout + result.stderr
    assert named.format(**values) in result.stdout


@pytest.mark.parametrize(
    "tune",
    ["cli.tune_garbage_collector()", "server.serving_app()"],
    ids=["serve", "uvicorn-and-bench"],
)
def test_a_serving_process_freezes_its_start_up_heap_and_collects_less_often(tune: str) -> None:
    """`serve` calls this once its app is built; `uvicorn server:app` and the benchmark's
    OCIS build it with `server.serving_app`, which does too."""
    probe = (
        f"import gc, cli, server; before = gc.get_freeze_count(); {tune};"
        "print(before, gc.get_freeze_count(), *gc.get_threshold())"
    )
    output = subprocess.run(  # noqa: S603 - our interpreter and a fixed probe
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()[-5:]
    before, frozen, *thresholds = map(int, output)
    assert before == 0 < frozen
    assert tuple(thresholds) == cli.GC_THRESHOLDS
    assert cli.GC_THRESHOLDS[0] > 700  # CPython's default
