"""The audit chain (P20) past the database: keyed links, checkpoints, writers, pruning."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate as run_migrations
from tortoise.transactions import in_transaction

import settings as config
from auth.principal import Principal
from bench.audit_appends import measure
from models import AuditEvent, db
from privacy import audit, audit_checkpoints, audit_links, audit_state, audit_verify
from tests.helpers import bypass_append_only

TICKETS = "{ tickets(first: 50) { edges { node { subject requester { id name email } } } } }"


async def write_chain(length: int) -> list[AuditEvent]:
    actor = Principal(request_id="req-1")
    return [
        await audit.record(
            actor, action="test.event", entity="Thing", entity_id=str(i), subject_id=None
        )
        for i in range(length)
    ]


def _sha256_link(event: AuditEvent, prev_hash: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{audit_links.content(event)}".encode()).hexdigest()


def _wrong_key_link(event: AuditEvent, prev_hash: str) -> str:
    text = f"{event.chain}|{event.position}|{prev_hash}|{audit_links.content(event)}"
    return hmac.new(b"w" * 32, text.encode(), hashlib.sha256).hexdigest()


def _recompute_after(events: list[AuditEvent], removed: int, link: Any) -> list[str]:
    """Statements that close the gap left by ``events[removed]`` as an attacker would."""
    statements = [f"DELETE FROM audit_events WHERE seq = {events[removed].seq}"]
    prev_hash = events[removed].prev_hash
    for event in events[removed + 1 :]:
        event.position -= 1
        event.prev_hash = prev_hash
        event.hash = link(event, prev_hash)
        statements.append(
            f"UPDATE audit_events SET position = {event.position}, prev_hash = '{prev_hash}',"
            f" hash = '{event.hash}' WHERE seq = {event.seq}"
        )
        prev_hash = event.hash
    return statements


@pytest.mark.promise("P20")
@pytest.mark.parametrize(
    ("tampering", "reason"),
    [
        ("delete the newest", "truncated: chain "),
        ("delete all", "wiped: no records, but checkpoints name 5"),
        ("delete one, recompute with SHA-256", "does not verify under our key"),
        ("delete one, recompute with another key", "does not verify under our key"),
        ("relabel as the legacy chain", "truncated: chain "),
    ],
)
async def test_tampering_past_the_triggers_is_named(app: Any, tampering: str, reason: str) -> None:
    events = await write_chain(5)
    assert await audit_verify.verify_chain() == audit_verify.ChainReport(5, None, None)
    expected: int | None = events[2].seq
    if tampering == "delete the newest":
        statements = [f"DELETE FROM audit_events WHERE seq >= {events[3].seq}"]
    elif tampering == "delete all":
        statements = ["DELETE FROM audit_events"]
        expected = 0
    elif tampering == "relabel as the legacy chain":
        # Plain SHA-256 links in the chain that needs no key: the checkpoints still count.
        statements, prev_hash = [], audit_links.GENESIS
        for event in events:
            event.chain, event.key_id, event.position, event.prev_hash = "legacy", "sha256", 0, ""
            event.hash = _sha256_link(event, prev_hash)
            statements.append(
                f"UPDATE audit_events SET chain = 'legacy', key_id = 'sha256', position = 0,"
                f" prev_hash = '{prev_hash}', hash = '{event.hash}' WHERE seq = {event.seq}"
            )
            prev_hash = event.hash
        expected = 0
    else:
        link = _sha256_link if "SHA-256" in tampering else _wrong_key_link
        statements = _recompute_after(events, 2, link)
        expected = events[3].seq
    await bypass_append_only(statements)
    report = await audit_verify.verify_chain()
    assert not report.intact
    assert report.first_broken_seq == expected, report
    assert report.reason is not None
    assert report.reason.startswith(reason) or reason in report.reason, report


@pytest.mark.promise("P20")
async def test_every_read_batch_leaves_a_keyed_checkpoint_outside_the_database(
    as_user: Any, app_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    agent = await as_user("agent@example.com")
    caplog.set_level("INFO", logger="ocis.audit")
    for _ in range(2):
        assert (await agent.gql(TICKETS)).get("errors") is None
    reads = await AuditEvent.filter(action=audit.READ_ACTION).order_by("seq")
    assert len(reads) == 4
    stored = [json.loads(text) for text in await audit_checkpoints.stored()]
    heads = {chain: head for doc in stored for chain, head in doc["chains"].items()}
    assert heads[reads[-1].chain] == [reads[-1].position, reads[-1].hash]
    assert all(doc["mac"] and doc["key_id"] == reads[-1].key_id for doc in stored)
    lines = [r.getMessage() for r in caplog.records if r.name == "ocis.audit"]
    if app_settings.redis_url:
        assert len(lines) == 2
        assert f"{reads[-1].chain}@4:{reads[-1].hash}" in lines[-1]
        assert "example.com" not in " ".join(lines)
    else:
        assert lines == []
        files = list(app_settings.audit_checkpoint_dir.glob("checkpoint-*.jsonl"))
        assert len(files) == 1
    # Truncating the newest request's records is caught from the checkpoint.
    await bypass_append_only([f"DELETE FROM audit_events WHERE seq >= {reads[2].seq}"])
    report = await audit_verify.verify_chain()
    assert report.first_broken_seq == reads[1].seq
    assert report.reason is not None
    assert "ends at position 2 but its checkpoint names 4" in report.reason


@pytest.mark.promise("P20")
async def test_a_change_in_a_transaction_is_checkpointed_once_committed(as_user: Any) -> None:
    customer = await as_user("customer@example.com")
    body = await customer.gql(
        "mutation { grantConsent(input: {purpose: MARKETING_EMAIL}) { __typename } }"
    )
    assert body["data"]["grantConsent"]["__typename"] == "ConsentSuccess"
    change = await AuditEvent.get(action="consent.grant")
    agent = await as_user("agent@example.com")
    assert (await agent.gql(TICKETS)).get("errors") is None
    heads = {
        chain: head
        for text in await audit_checkpoints.stored()
        for chain, head in json.loads(text)["chains"].items()
    }
    assert heads[change.chain] == [change.position, change.hash]
    await bypass_append_only([f"DELETE FROM audit_events WHERE seq = {change.seq}"])
    report = await audit_verify.verify_chain()
    assert report.reason is not None
    assert report.reason.startswith(f"truncated: chain {change.chain} ends at position 0")


@pytest.mark.promise("P20")
async def test_a_forged_checkpoint_is_named(app: Any, app_settings: Any) -> None:
    events = await write_chain(2)
    # Someone who can write the checkpoint store but lacks the key moves the head back.
    forger = audit_links.AuditKey(events[0].key_id, b"f" * 32)
    body = audit_checkpoints.checkpoint_body("forged", {events[0].chain: (1, events[0].hash)})
    text = audit_checkpoints.sealed(forger, body)
    if app_settings.redis_url:
        await app.state.store.set(audit_checkpoints.REDIS_PREFIX + "checkpoint-forged", text)
    else:
        audit_checkpoints.write_file(app_settings.audit_checkpoint_dir, "checkpoint-forged", text)
    report = await audit_verify.verify_chain()
    assert report == audit_verify.ChainReport(
        0, 0, "a checkpoint does not verify under our key (forged?)"
    )


@pytest.mark.promise("P20")
async def test_two_writer_processes_append_at_once_without_retries(
    app: Any, app_settings: Any
) -> None:
    result = await asyncio.to_thread(
        measure, app_settings, 2, seconds=60, appends=40, batch=2, verify=False
    )
    assert result["appends"] == 80
    assert result["retries"] == 0
    assert await audit_verify.verify_chain() == audit_verify.ChainReport(160, None, None)
    writers = await AuditEvent.all().distinct().values_list("chain", flat=True)
    assert len(set(writers)) == 2


async def test_a_pruned_prefix_leaves_the_rest_verifiable_from_its_anchor(app: Any) -> None:
    events = await write_chain(5)
    pruned = await audit_verify.prune_before(
        datetime.now(UTC) + timedelta(seconds=5), bypass_append_only
    )
    # Every chain keeps its newest record, so appends go on from it.
    assert pruned == {events[0].chain: 4}
    assert await AuditEvent.all().count() == 1
    more = await write_chain(1)
    assert more[0].position == 6
    assert await audit_verify.verify_chain() == audit_verify.ChainReport(2, None, None)
    await bypass_append_only([f"DELETE FROM audit_events WHERE seq = {events[4].seq}"])
    report = await audit_verify.verify_chain()
    assert report.first_broken_seq == more[0].seq
    assert report.reason is not None
    assert report.reason.startswith("does not follow")


async def test_records_from_before_0007_stay_verifiable_and_are_anchored(tmp_path: Path) -> None:
    """Migration 0007 keeps the old rows as the legacy chain; the first start anchors it."""
    path = tmp_path / "at-0005.sqlite3"
    url = f"sqlite://{path}"
    await run_migrations(
        config=db.tortoise_config(url),
        app_labels=["ocis"],
        target="ocis.0005_notices_and_disabled_accounts",
    )
    await Tortoise.close_connections()
    prev_hash = audit_links.GENESIS
    with sqlite3.connect(path) as connection:
        for i in range(3):
            event = AuditEvent(
                occurred_at=datetime(2026, 11, 1, 10, i, tzinfo=UTC),
                actor_id=None,
                actor_roles=[],
                subject_id=None,
                action="test.event",
                entity="Thing",
                entity_id=str(i),
                field_names=[],
                purpose=None,
                request_id="req-1",
            )
            event_hash = audit_links.link_hash(prev_hash, event)
            connection.execute(
                "INSERT INTO audit_events (occurred_at, actor_roles, action, entity, entity_id,"
                " field_names, request_id, prev_hash, hash)"
                " VALUES (?, '[]', 'test.event', 'Thing', ?, '[]', 'req-1', ?, ?)",
                (event.occurred_at.isoformat(sep=" "), str(i), prev_hash, event_hash),
            )
            prev_hash = event_hash
    await db.migrate(url)
    settings = config.Settings(
        database_url=url, master_key=b"m" * 32, audit_checkpoint_dir=tmp_path / "checkpoints"
    )
    await db.connect(url, settings.master_key)
    try:
        audit.configure(settings)
        assert await audit_verify.verify_chain() == audit_verify.ChainReport(3, None, None)
        await audit.prime_head(settings)
        await write_chain(1)
        assert await audit_verify.verify_chain() == audit_verify.ChainReport(4, None, None)
        with sqlite3.connect(path) as connection:
            connection.executescript(
                "DROP TRIGGER audit_events_no_delete;"
                " DELETE FROM audit_events WHERE entity_id = '2' AND chain = 'legacy';"
            )
        report = await audit_verify.verify_chain()
        assert report.reason is not None
        assert report.reason.startswith("truncated: chain legacy ends at position 2")
    finally:
        await db.disconnect()


HAMMER = 200


@pytest.mark.promise("P20")
async def test_concurrent_audited_writes_take_turns_on_the_chain_without_errors_or_retries(
    app: Any,
) -> None:
    """200 changes at once, each appended inside a transaction that stays open a while after
    (as the resolvers' do), and read batches among them: every one recorded, none retried, one
    unbroken chain per kind that verifies. Before appends took turns, this exhausted retries."""
    actor = Principal(request_id="req-hammer")
    retried = audit.retries()

    async def change(number: int) -> None:
        async with in_transaction():
            await audit.record(
                actor,
                action="test.event",
                entity="Thing",
                entity_id=str(number),
                subject_id=uuid.uuid4(),
                field_names=["Thing.name"],
            )
            # Others run meanwhile: the append is not yet committed.
            await asyncio.sleep(0.001 * (number % 5))

    async def reads(number: int) -> None:
        await audit.record_many(
            actor,
            [
                audit.Entry(
                    action=audit.READ_ACTION,
                    entity="personal_data",
                    entity_id=None,
                    subject_id=uuid.uuid4(),
                    field_names=("User.email",),
                )
                for _ in range(1 + number % 3)
            ],
        )

    outcomes = await asyncio.gather(
        *(change(number) for number in range(HAMMER)),
        *(reads(number) for number in range(HAMMER // 4)),
        return_exceptions=True,
    )
    assert [repr(outcome) for outcome in outcomes if outcome is not None] == []
    assert audit.retries() == retried
    changes = await AuditEvent.filter(chain=audit_state.Writer.changes_chain()).order_by("position")
    assert [event.position for event in changes] == list(range(1, HAMMER + 1))
    assert sorted(int(event.entity_id or 0) for event in changes) == list(range(HAMMER))
    read_count = sum(1 + number % 3 for number in range(HAMMER // 4))
    assert await AuditEvent.filter(chain=audit_state.Writer.reads_chain()).count() == read_count
    await audit.checkpoint()
    assert await audit_verify.verify_chain() == audit_verify.ChainReport(
        HAMMER + read_count, None, None
    )
