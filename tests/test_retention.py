"""Retention (P21): every category's expired rows go, fresh ones stay, held ones are counted;
a dry run counts what the run deletes; a second run finds nothing; the audit trail is pruned
behind its anchors and still verifies; the CLI and the worker's schedule run it."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import pytest
from tortoise import Tortoise
from tortoise.exceptions import OperationalError
from tortoise.fields.relational import ForeignKeyFieldInstance
from tortoise.models import Model
from tortoise.transactions import in_transaction

import settings as config
from auth.principal import ANONYMOUS
from models import (
    AccountToken,
    AccountTokenPurpose,
    AuditEvent,
    ConsentEntry,
    ConsentPurpose,
    ConsentSource,
    Export,
    ExportPart,
    ExportStatus,
    Invitation,
    Job,
    JobState,
    MailStatus,
    Notice,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    SignInSession,
    Ticket,
    TicketMessage,
    TicketStatus,
    User,
    UserStatus,
    WalkInRequester,
    crypto,
    part_id,
)
from models.fields import EncryptedField
from privacy import audit_verify, jobs, legal, retention
from privacy.audit_checkpoints import checkpoint_body, put
from privacy.audit_links import genesis, keyed_link
from privacy.audit_state import current_config
from tests.helpers import ROOT, run_cli, subprocess_environment, table_counts

pytestmark = pytest.mark.promise("P21")

DAYS = dict(config.RETENTION_DAYS)
NOW = datetime.now(UTC).replace(microsecond=0)

# A row seeded for one category: its model, its id, and the person it is about.
Seeded = tuple[type[Model], Any, UUID]
Seed = Callable[[User, datetime], Awaitable[Seeded]]


def token() -> str:
    return secrets.token_hex(32)


async def person(name: str = "Rhea Retained", status: UserStatus = UserStatus.ACTIVE) -> User:
    user = User(name=name, status=status)
    user.set_email(f"retained-{uuid4().hex[:10]}@example.com")
    await user.save()
    return user


async def aged(model: type[Model], row_id: Any, **times: datetime) -> None:
    """Set timestamps that the ORM fills in itself (created_at, updated_at)."""
    await model.filter(id=row_id).update(**times)


async def seed_sign_in(owner: User, at: datetime) -> Seeded:
    row = await SignInSession.create(
        user=owner, token_hash=token(), ip_address="192.0.2.1", expires_at=at
    )
    return SignInSession, row.id, owner.id


async def seed_account_token(owner: User, at: datetime) -> Seeded:
    row = await AccountToken.create(
        user=owner, purpose=AccountTokenPurpose.VERIFY_EMAIL, token_hash=token(), expires_at=at
    )
    return AccountToken, row.id, owner.id


async def seed_invitation(_owner: User, at: datetime) -> Seeded:
    email = f"invited-{uuid4().hex[:8]}@example.com"
    row = await Invitation.create(
        email=email, email_index=crypto.blind_index(email), token_hash=token(), expires_at=at
    )
    return Invitation, row.id, row.id


async def seed_notice(owner: User, at: datetime) -> Seeded:
    row = await Notice.create(
        user=owner, kind="account.disabled", mail_status=MailStatus.SENT, mail_due_at=at
    )
    await aged(Notice, row.id, created_at=at)
    return Notice, row.id, owner.id


async def _request(owner: User, at: datetime, *, closed: bool) -> PrivacyRequest:
    return await PrivacyRequest.create(
        subject=owner,
        kind=PrivacyRequestKind.ACCESS,
        status=PrivacyRequestStatus.COMPLETED if closed else PrivacyRequestStatus.IN_PROGRESS,
        details="my data, please",
        received_at=at,
        due_at=at + timedelta(days=30),
        closed_at=at if closed else None,
    )


async def seed_export(owner: User, at: datetime) -> Seeded:
    request = await _request(owner, NOW, closed=False)
    export = await Export.create(
        request=request,
        subject=owner,
        kind=PrivacyRequestKind.ACCESS,
        status=ExportStatus.READY,
        token_hash=token(),
        expires_at=min(at + timedelta(days=7), NOW - timedelta(seconds=1)),
    )
    await ExportPart.create(
        id=part_id(export.id, 0), export=export, subject=owner, index=0, data="{}"
    )
    await aged(Export, export.id, created_at=at)
    return Export, export.id, owner.id


async def seed_closed_ticket(owner: User, at: datetime) -> Seeded:
    ticket = await Ticket.create(
        subject="My parcel", requester=owner, status=TicketStatus.CLOSED, closed_at=at
    )
    await TicketMessage.create(ticket=ticket, author=owner, body="Where is it?")
    return Ticket, ticket.id, owner.id


async def seed_walk_in(_owner: User, at: datetime) -> Seeded:
    email = f"walk-in-{uuid4().hex[:8]}@example.com"
    row = await WalkInRequester.create(email=email, email_index=crypto.blind_index(email))
    await aged(WalkInRequester, row.id, created_at=at)
    return WalkInRequester, row.id, row.id


async def seed_privacy_request(owner: User, at: datetime) -> Seeded:
    request = await _request(owner, at, closed=True)
    return PrivacyRequest, request.id, owner.id


async def _consent(user: User | None, visitor: UUID | None, at: datetime) -> ConsentEntry:
    entry = await ConsentEntry.create(
        user=user,
        visitor_id=str(visitor) if visitor else None,
        purpose=ConsentPurpose.STATISTICS,
        granted=True,
        policy_version="1",
        source=ConsentSource.WEB,
    )
    await aged(ConsentEntry, entry.id, created_at=at)
    return entry


async def seed_erased_account_consent(_owner: User, at: datetime) -> Seeded:
    erased = await person("Erased Person", UserStatus.ERASED)
    entry = await _consent(erased, None, at)
    await aged(User, erased.id, updated_at=at)
    return ConsentEntry, entry.id, erased.id


async def seed_visitor_consent(_owner: User, at: datetime) -> Seeded:
    visitor = uuid4()
    entry = await _consent(None, visitor, at)
    return ConsentEntry, entry.id, visitor


async def seed_job(owner: User, at: datetime) -> Seeded:
    job = await Job.create(
        kind=retention.KIND, state=JobState.DONE, run_at=at, finished_at=at, subject_id=owner.id
    )
    return Job, job.id, owner.id


async def old_chain(records: Iterable[tuple[datetime, UUID | None]]) -> list[AuditEvent]:
    """A chain of a writer that ran back then, its records dated then, and its checkpoint."""
    key = current_config().current
    writer = secrets.token_hex(8)
    chain = f"{writer}.c"
    head = (0, genesis(chain))
    events = []
    for at, subject in records:
        event = AuditEvent(
            occurred_at=at.replace(microsecond=0),
            actor_roles=[],
            subject_id=subject,
            action="test.old",
            entity="Thing",
            field_names=[],
            chain=chain,
            position=head[0] + 1,
            key_id=key.key_id,
            prev_hash=head[1],
        )
        event.hash = keyed_link(key, event)
        await event.save()
        head = (event.position, event.hash)
        events.append(event)
    await put(f"checkpoint-{writer}", checkpoint_body(writer, {chain: head}))
    return events


async def seed_audit_record(owner: User, at: datetime) -> Seeded:
    # The chain's newest record stays whatever its age (appends go on from it).
    record, _ = await old_chain([(at, owner.id), (NOW, None)])
    return AuditEvent, record.seq, owner.id


SEEDS: dict[str, Seed] = {
    "sign_ins": seed_sign_in,
    "account_tokens": seed_account_token,
    "invitations": seed_invitation,
    "notices": seed_notice,
    "exports": seed_export,
    "closed_tickets": seed_closed_ticket,
    "walk_in_requesters": seed_walk_in,
    "privacy_requests": seed_privacy_request,
    "erased_account_consents": seed_erased_account_consent,
    "visitor_consents": seed_visitor_consent,
    "jobs": seed_job,
    "audit_trail": seed_audit_record,
}


def expired(category: str) -> datetime:
    return NOW - timedelta(days=DAYS[category], hours=6)


def fresh(category: str) -> datetime:
    return NOW - timedelta(days=DAYS[category]) + timedelta(hours=6)


def holding(subjects: set[UUID]) -> retention.HeldSubjects:
    """A legal hold on these subjects, as privacy/legal.py answers it."""

    async def held_subjects(
        subject_ids: Iterable[UUID] | None = None, *, now: datetime | None = None
    ) -> set[UUID]:
        return set(subjects) if subject_ids is None else set(subjects) & set(subject_ids)

    return held_subjects


async def exists(seeded: Seeded) -> bool:
    model, row_id, _ = seeded
    key = "seq" if model is AuditEvent else "id"
    return await model.filter(**{key: row_id}).exists()


def test_every_category_has_a_documented_period_and_a_seed_here() -> None:
    names = [category.name for category in retention.CATEGORIES] + [retention.AUDIT_TRAIL]
    assert names == list(config.RETENTION_DAYS) == list(SEEDS)
    readme = (ROOT / "README.md").read_text()
    for name in names:
        assert f"`OCIS_RETENTION_{name.upper()}_DAYS`" in readme
        assert f"| `{DAYS[name]}` |" in readme.split(f"`OCIS_RETENTION_{name.upper()}_DAYS`")[1]


def _personal(model: type[Model]) -> bool:
    """Whether a table holds personal data: a sealed column, or a column naming a person."""
    for name, field in model._meta.fields_map.items():
        if isinstance(field, EncryptedField):
            return True
        if isinstance(field, ForeignKeyFieldInstance) and field.related_model is User:
            return True
        if name in ("subject_id", "user_id", "actor_id", "visitor_id"):
            return True
    return False


async def test_every_table_with_personal_data_expires_or_says_why_it_is_kept(app: Any) -> None:
    covered = {table for category in retention.CATEGORIES for table in category.tables}
    covered.add(AuditEvent._meta.db_table)
    personal = {
        model._meta.db_table for model in Tortoise.apps["ocis"].values() if _personal(model)
    }
    assert personal - covered - set(retention.KEPT) == set()
    assert set(retention.KEPT) <= personal
    assert all(len(reason) > 20 for reason in retention.KEPT.values())


async def _seed_world() -> tuple[dict[str, list[Seeded]], set[UUID]]:
    """Per category: an expired row, a fresh row, and an expired row of a held subject."""
    someone, held_person = await person(), await person("Hal Held")
    rows: dict[str, list[Seeded]] = {}
    held: set[UUID] = set()
    for name, seed in SEEDS.items():
        gone = await seed(someone, expired(name))
        kept = await seed(someone, fresh(name))
        on_hold = await seed(held_person, expired(name))
        held.add(on_hold[2])
        rows[name] = [gone, kept, on_hold]
    return rows, held


@pytest.mark.parametrize("batch_size", [1, config.DEFAULT_RETENTION_BATCH])
async def test_a_dry_run_counts_what_the_run_deletes_and_a_second_run_finds_nothing(
    app: Any, batch_size: int
) -> None:
    rows, held = await _seed_world()
    holds = holding(held)
    before = await table_counts()
    dry = await retention.run(
        DAYS, dry_run=True, now=NOW, held_subjects=holds, batch_size=batch_size
    )
    assert await table_counts() == before
    expected = {name: {"deleted": 1, "held": 1} for name in SEEDS}
    assert dry.as_json() == {"dry_run": True, "categories": expected}
    real = await retention.run(DAYS, now=NOW, held_subjects=holds, batch_size=batch_size)
    assert real.as_json() == {"dry_run": False, "categories": expected}
    for name, (gone, kept, on_hold) in rows.items():
        assert (await exists(gone), await exists(kept), await exists(on_hold)) == (
            False,
            True,
            True,
        ), name
    again = await retention.run(DAYS, now=NOW, held_subjects=holds)
    assert again.as_json()["categories"] == {name: {"deleted": 0, "held": 1} for name in SEEDS}
    assert await audit_verify.verify_chain() == audit_verify.ChainReport(
        (await AuditEvent.all().count()), None, None
    )


async def test_a_legal_hold_keeps_its_subjects_rows_until_it_is_lifted(app: Any) -> None:
    """Through privacy/legal.py, as a run without a given source of holds asks it."""
    held_person, someone = await person("Hal Held"), await person()
    kept = {name: await seed(held_person, expired(name)) for name, seed in SEEDS.items()}
    gone = {name: await seed(someone, expired(name)) for name, seed in SEEDS.items()}
    async with in_transaction():
        hold = await legal.place_hold(
            ANONYMOUS,
            held_person.id,
            authority="A court",
            reference="Case 1",
            reason="Litigation",
            review_on=(NOW + timedelta(days=90)).date(),
        )
    # Only rows about an account can be held (a hold names an account).
    holdable = {name for name, (_, _, subject) in kept.items() if subject == held_person.id}
    assert holdable >= {"sign_ins", "closed_tickets", "privacy_requests", "audit_trail"}
    dry = await retention.run(DAYS, dry_run=True)
    report = await retention.run(DAYS)
    assert dry.counts == report.counts
    for name in SEEDS:
        held = 1 if name in holdable else 0
        assert (report.counts[name].deleted, report.counts[name].held) == (2 - held, held), name
        assert not await exists(gone[name]), name
        assert await exists(kept[name]) is (name in holdable), name
    async with in_transaction():
        await legal.lift_hold(ANONYMOUS, hold)
    after = await retention.run(DAYS)
    assert {name: (count.deleted, count.held) for name, count in after.counts.items()} == {
        name: (1 if name in holdable else 0, 0) for name in SEEDS
    }
    assert (await audit_verify.verify_chain()).intact


async def test_what_goes_with_a_deleted_row_goes_and_nothing_else(app: Any) -> None:
    """A ticket's messages and an export's parts go by cascade; the account stays."""
    owner = await person()
    _, ticket_id, _ = await seed_closed_ticket(owner, expired("closed_tickets"))
    _, export_id, _ = await seed_export(owner, expired("exports"))
    await retention.run(DAYS, now=NOW, held_subjects=holding(set()))
    assert not await TicketMessage.filter(ticket_id=ticket_id).exists()
    assert not await ExportPart.filter(export_id=export_id).exists()
    assert await User.filter(id=owner.id).exists()


async def test_a_walk_in_goes_with_its_last_ticket_in_the_dry_run_count_too(app: Any) -> None:
    email = "walked-in@example.com"
    walk_in = await WalkInRequester.create(email=email, email_index=crypto.blind_index(email))
    await aged(WalkInRequester, walk_in.id, created_at=expired("closed_tickets"))
    ticket = await Ticket.create(
        subject="A refund",
        walk_in=walk_in,
        requester_email=email,
        status=TicketStatus.CLOSED,
        closed_at=expired("closed_tickets"),
    )
    reopened = await WalkInRequester.create(
        email="still-open@example.com", email_index=crypto.blind_index("still-open@example.com")
    )
    await aged(WalkInRequester, reopened.id, created_at=expired("closed_tickets"))
    await Ticket.create(subject="Still open", walk_in=reopened, status=TicketStatus.OPEN)
    dry = await retention.run(DAYS, dry_run=True, now=NOW, held_subjects=holding(set()))
    real = await retention.run(DAYS, now=NOW, held_subjects=holding(set()))
    assert dry.counts == real.counts
    assert real.counts["closed_tickets"].deleted == 1
    assert real.counts["walk_in_requesters"].deleted == 1
    assert not await Ticket.filter(id=ticket.id).exists()
    assert [row.id for row in await WalkInRequester.all()] == [reopened.id]


async def test_open_and_live_rows_never_expire_however_old(app: Any) -> None:
    owner = await person()
    ancient = NOW - timedelta(days=config.MAX_RETENTION_DAYS)
    open_ticket = await Ticket.create(subject="Open", requester=owner)
    await aged(Ticket, open_ticket.id, created_at=ancient)
    live = await SignInSession.create(
        user=owner, token_hash=token(), expires_at=NOW + timedelta(days=1)
    )
    await aged(SignInSession, live.id, created_at=ancient)
    pending = await Notice.create(user=owner, kind="account.disabled", mail_due_at=NOW)
    await aged(Notice, pending.id, created_at=ancient)
    request = await _request(owner, ancient, closed=False)
    linked = await Export.create(
        request=request,
        subject=owner,
        kind=PrivacyRequestKind.ACCESS,
        status=ExportStatus.READY,
        expires_at=NOW + timedelta(days=1),
    )
    await aged(Export, linked.id, created_at=ancient)
    await _consent(owner, None, ancient)
    running = await Job.create(kind=retention.KIND, state=JobState.RUNNING, run_at=ancient)
    report = await retention.run(DAYS, now=NOW, held_subjects=holding(set()))
    assert {name: count.deleted for name, count in report.counts.items()} == dict.fromkeys(SEEDS, 0)
    assert await Job.filter(id=running.id).exists()


async def test_the_audit_trail_is_pruned_from_an_anchor_and_still_verifies(app: Any) -> None:
    held_person, someone = await person("Hal Held"), await person()
    old = expired("audit_trail")
    # One chain: two old records, then one of a held subject, then more; another chain all old.
    first = await old_chain(
        [(old, someone.id), (old, someone.id), (old, held_person.id), (old, None), (NOW, None)]
    )
    second = await old_chain([(old, someone.id), (old, None), (old, None)])
    dry = await retention.run(DAYS, dry_run=True, now=NOW, held_subjects=holding({held_person.id}))
    report = await retention.run(DAYS, now=NOW, held_subjects=holding({held_person.id}))
    assert dry.counts == report.counts
    # First chain: two pruned, the held one and the old one after it kept; second: all but
    # its newest.
    assert (report.counts["audit_trail"].deleted, report.counts["audit_trail"].held) == (4, 2)
    remaining = {event.seq for event in await AuditEvent.filter(action="test.old")}
    assert remaining == {first[2].seq, first[3].seq, first[4].seq, second[2].seq}
    report_after = await audit_verify.verify_chain()
    assert report_after.intact, report_after
    # The triggers are back: the application still cannot delete a record.
    connection = Tortoise.get_connection("default")
    with pytest.raises(OperationalError, match="append-only"):
        await connection.execute_script(f"DELETE FROM audit_events WHERE seq = {first[2].seq}")


async def test_a_pruned_trail_in_small_batches_verifies_and_more_removed_shows(app: Any) -> None:
    old = expired("audit_trail")
    events = await old_chain([(old, None)] * 7 + [(NOW, None)])
    report = await retention.run(DAYS, now=NOW, batch_size=2, held_subjects=holding(set()))
    assert report.counts["audit_trail"].deleted == 7
    assert (await audit_verify.verify_chain()).intact
    from tests.helpers import bypass_append_only

    await bypass_append_only([f"DELETE FROM audit_events WHERE seq = {events[7].seq}"])
    assert not (await audit_verify.verify_chain()).intact


def _cli_env(settings: config.Settings, database_url: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "OCIS_MASTER_KEY": base64.b64encode(settings.master_key).decode(),
        "OCIS_AUDIT_CHECKPOINT_DIR": str(settings.audit_checkpoint_dir),
    }
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    return env


def _cli_counts(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert len(lines) == len(config.RETENTION_DAYS) + 1
    for line, name in zip(lines, config.RETENTION_DAYS, strict=False):
        assert line.startswith(f"{name} (after {DAYS[name]} days): ")
    return summary  # type: ignore[no-any-return]


async def test_the_cli_dry_run_then_the_run_then_nothing_and_the_trail_verifies(
    app: Any, app_settings: config.Settings, database_url: str
) -> None:
    owner = await person()
    for name, seed in SEEDS.items():
        await seed(owner, expired(name))
    env = _cli_env(app_settings, database_url)
    dry = _cli_counts(await asyncio.to_thread(run_cli, "retention", "--dry-run", env=env))
    assert dry["dry_run"] is True
    assert dry["categories"] == {name: {"deleted": 1, "held": 0} for name in SEEDS}
    assert (
        "would delete 1, held 0"
        in (await asyncio.to_thread(run_cli, "retention", "--dry-run", env=env)).stdout
    )
    real = _cli_counts(await asyncio.to_thread(run_cli, "retention", env=env))
    assert real["categories"] == dry["categories"]
    again = _cli_counts(await asyncio.to_thread(run_cli, "retention", env=env))
    assert again["categories"] == {name: {"deleted": 0, "held": 0} for name in SEEDS}
    verified = await asyncio.to_thread(run_cli, "audit-verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_periods_come_from_the_environment_and_typos_are_refused() -> None:
    settings = config.from_environ({"OCIS_RETENTION_SIGN_INS_DAYS": "7"})
    assert settings.retention_days == {**DAYS, "sign_ins": 7}
    assert config.from_environ({}).retention_days == DAYS
    for bad in ({"OCIS_RETENTION_SIGN_IN_DAYS": "7"}, {"OCIS_RETENTION_JOBS_DAYS": "0"}):
        with pytest.raises(config.ConfigurationError):
            config.from_environ(bad)
    with pytest.raises(config.ConfigurationError):
        config.from_environ({"OCIS_RETENTION_EVERY_HOURS": "-1"})


async def test_workers_queue_each_periods_run_once_and_one_of_them_runs_it(
    app: Any, app_settings: config.Settings
) -> None:
    owner = await person()
    _, session_id, _ = await seed_sign_in(owner, expired("sign_ins"))
    moment = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    # Three workers ask for the same period's run: one job.
    queued = [await retention.schedule(app_settings, moment) for _ in range(3)]
    assert len({job.id for job in queued if job is not None}) == 1
    assert await Job.filter(kind=retention.KIND).count() == 1
    runs = await asyncio.gather(jobs.Runner().run_due(), jobs.Runner().run_due())
    assert sum(run.done for run in runs) == 1
    job = await Job.get(kind=retention.KIND)
    assert job.state == JobState.DONE
    assert job.progress["sign_ins_deleted"] == 1
    assert job.progress["step"] == retention.AUDIT_TRAIL
    assert not await SignInSession.filter(id=session_id).exists()
    # The next period is a run of its own; no schedule at all when it is turned off.
    later = await retention.schedule(app_settings, moment + timedelta(days=1))
    assert later is not None
    assert later.id != job.id
    off = replace(app_settings, retention_every_hours=0)
    assert await retention.schedule(off, moment) is None


async def test_a_resumed_job_skips_the_categories_it_finished(
    app: Any, app_settings: config.Settings
) -> None:
    owner = await person()
    _, session_id, _ = await seed_sign_in(owner, expired("sign_ins"))
    _, notice_id, _ = await seed_notice(owner, expired("notices"))
    job = await retention.schedule(app_settings, NOW)
    assert job is not None
    # A worker died after sign-ins; the checkpoint says so.
    await Job.filter(id=job.id).update(progress={"step": "sign_ins", "sign_ins_deleted": 5})
    await jobs.Runner().run_due()
    stored = await Job.get(id=job.id)
    assert stored.progress["sign_ins_deleted"] == 5
    assert stored.progress["notices_deleted"] == 1
    assert await SignInSession.filter(id=session_id).exists()
    assert not await Notice.filter(id=notice_id).exists()


def _start_worker(environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 - our own worker with fixed arguments
            [sys.executable, "server.py", "worker"],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _end(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)
        raise


async def test_the_worker_process_runs_the_schedule(
    app: Any, app_settings: config.Settings, database_url: str, tmp_path: Path
) -> None:
    owner = await person()
    _, session_id, _ = await seed_sign_in(owner, expired("sign_ins"))
    environment = subprocess_environment(
        **_cli_env(app_settings, database_url),
        OCIS_RETENTION_EVERY_HOURS="1",
        OCIS_JOB_POLL_SECONDS="0.2",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "worker.log"
    worker = _start_worker(environment, log)
    job = None
    try:
        for _ in range(300):
            job = await Job.get_or_none(kind=retention.KIND, state=JobState.DONE)
            if job is not None or worker.poll() is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        stopped = _end(worker)
    assert job is not None, log.read_text()[-5000:]
    assert stopped == 0, log.read_text()[-5000:]
    assert job.dedupe_key is not None
    assert job.dedupe_key.startswith(f"{retention.KIND}:1h:")
    assert not await SignInSession.filter(id=session_id).exists()


async def test_on_postgresql_only_a_role_granted_the_replica_setting_prunes_the_audit_trail(
    app: Any, app_settings: config.Settings, database_url: str
) -> None:
    """The README's deployment rule, run as a user would: `retention` under a role without
    superuser, granted `SET ON PARAMETER session_replication_role`, prunes the trail; the same
    command under a role without the grant (the serving role) cannot delete one record."""
    if not database_url.startswith("postgres"):
        pytest.skip("roles and replica mode are PostgreSQL's; SQLite has no roles")
    owner = await person()
    _, seq, _ = await seed_audit_record(owner, expired("audit_trail"))
    connection = Tortoise.get_connection("default")
    suffix = uuid4().hex[:8]
    granted, serving = f"ocis_retention_{suffix}", f"ocis_serving_{suffix}"
    parts = urlsplit(database_url)
    created: list[str] = []
    try:
        for role in (granted, serving):
            await connection.execute_script(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER')
            created.append(role)
            await connection.execute_script(
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}";'
                f' GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}";'
            )
        await connection.execute_script(
            f'GRANT SET ON PARAMETER session_replication_role TO "{granted}"'
        )

        def as_role(role: str) -> dict[str, str]:
            netloc = f"{role}@{parts.hostname}:{parts.port or 5432}"
            return _cli_env(app_settings, urlunsplit(parts._replace(netloc=netloc)))

        refused = await asyncio.to_thread(run_cli, "retention", env=as_role(serving))
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert retention.PruneRefused.MESSAGE in refused.stderr
        assert "Traceback" not in refused.stderr
        assert await AuditEvent.filter(seq=seq).exists()
        done = _cli_counts(await asyncio.to_thread(run_cli, "retention", env=as_role(granted)))
        assert done["categories"]["audit_trail"] == {"deleted": 1, "held": 0}
        assert not await AuditEvent.filter(seq=seq).exists()
        verified = await asyncio.to_thread(run_cli, "audit-verify", env=as_role(granted))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        for role in (granted, serving):
            await connection.execute_script(f'DROP OWNED BY "{role}"; DROP ROLE IF EXISTS "{role}"')
