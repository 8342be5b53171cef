"""Durable jobs (privacy/jobs.py): queued once, claimed under a lease, retried, resumed, once."""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from prometheus_client import REGISTRY
from tortoise.transactions import in_transaction

import settings as config
from models import Job, JobState, MailStatus, Notice, User, crypto
from privacy import jobs, notices
from privacy.leases import backoff, claim
from tests import job_kinds
from tests.helpers import ROOT, subprocess_environment
from tests.smtp_server import Mailbox

pytestmark = pytest.mark.usefixtures("app")

PROCESS_SECONDS = 90


async def _noop(job: jobs.JobContext) -> None:
    return None


def _register(monkeypatch: pytest.MonkeyPatch, kind: str, handler: jobs.Handler) -> None:
    monkeypatch.setitem(jobs.HANDLERS, kind, handler)


# Enqueueing


async def test_a_job_is_queued_with_its_ids_and_a_dedupe_key_gives_the_same_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(monkeypatch, "test.noop", _noop)
    subject = uuid4()
    first = await jobs.enqueue(
        "test.noop",
        {"subject": subject, "batch": 500, "dry_run": True, "table": "tickets"},
        dedupe_key=f"export:{subject}",
    )
    again = await jobs.enqueue("test.noop", {"subject": uuid4()}, dedupe_key=f"export:{subject}")
    other = await jobs.enqueue("test.noop", {"subject": subject})
    assert again.id == first.id
    assert other.id != first.id
    stored = await Job.get(id=first.id)
    assert stored.payload == {
        "subject": str(subject),
        "batch": 500,
        "dry_run": True,
        "table": "tickets",
    }
    assert (stored.state, stored.attempts, stored.dedupe_key) == (
        JobState.QUEUED,
        0,
        f"export:{subject}",
    )
    assert await Job.all().count() == 2


async def test_two_enqueuers_racing_with_one_dedupe_key_get_one_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(monkeypatch, "test.noop", _noop)
    made = await asyncio.gather(
        *(jobs.enqueue("test.noop", {}, dedupe_key="erasure:race") for _ in range(5))
    )
    assert len({job.id for job in made}) == 1
    assert await Job.filter(dedupe_key="erasure:race").count() == 1


async def test_a_job_is_queued_in_the_transaction_of_the_change_that_asks_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(monkeypatch, "test.noop", _noop)

    async def change_that_fails() -> None:
        async with in_transaction():
            await jobs.enqueue("test.noop", {}, dedupe_key="erasure:rolled-back")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        await change_that_fails()
    assert await Job.all().count() == 0
    async with in_transaction():
        kept = await jobs.enqueue("test.noop", {}, dedupe_key="erasure:kept")
        again = await jobs.enqueue("test.noop", {}, dedupe_key="erasure:kept")
    assert again.id == kept.id
    assert [job.dedupe_key for job in await Job.all()] == ["erasure:kept"]


# A plaintext address in the jobs table would show in a raw dump (P10).
@pytest.mark.promise("P10")
@pytest.mark.parametrize(
    "payload",
    [
        {"email": "customer@example.com"},
        {"name": "Zoë Example"},
        {"note": "call me back tomorrow"},
        {"phone": "+44 20 7946 0958"},
        {"nested": {"subject": "x"}},
        {"ratio": 0.5},
        {"token": "a" * 65},
        {"ids": ["ok", "customer@example.com"]},
        {"a key with spaces": 1},
        {"empty": ""},
        {"none": None},
    ],
)
async def test_a_payload_holding_anything_but_ids_and_flags_is_refused(
    monkeypatch: pytest.MonkeyPatch, payload: dict[str, Any]
) -> None:
    _register(monkeypatch, "test.noop", _noop)
    with pytest.raises(jobs.InvalidPayload) as refused:
        await jobs.enqueue("test.noop", payload)
    for value in payload.values():
        if isinstance(value, str) and value:
            assert value not in str(refused.value)
    assert await Job.all().count() == 0


async def test_an_unknown_kind_or_a_bad_dedupe_key_is_refused_and_nothing_is_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(monkeypatch, "test.noop", _noop)
    with pytest.raises(ValueError, match="no handler"):
        await jobs.enqueue("test.nobody_handles_this", {})
    with pytest.raises(jobs.InvalidPayload):
        await jobs.enqueue("test.noop", {}, dedupe_key="export for customer@example.com")
    with pytest.raises(ValueError, match="max_attempts"):
        await jobs.enqueue("test.noop", {}, max_attempts=0)
    assert await Job.all().count() == 0


def test_a_kind_is_registered_once() -> None:
    with pytest.raises(ValueError, match="job kind"):
        jobs.handler("Not A Kind")
    with pytest.raises(ValueError, match="has a handler"):
        jobs.handler("test.steps")(_noop)


# Running, retrying, failing


async def test_a_handler_failing_twice_then_succeeding_is_retried_with_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    async def flaky(job: jobs.JobContext) -> None:
        calls.append(job.attempt)
        if len(calls) <= 2:
            raise jobs.JobError("upstream_down")

    _register(monkeypatch, "test.flaky", flaky)
    job = await jobs.enqueue("test.flaky", {"subject": uuid4()})
    runner = jobs.Runner()
    assert await runner.run_due() == jobs.Report(retried=1)
    waiting = await Job.get(id=job.id)
    assert (waiting.state, waiting.attempts, waiting.last_error_code) == (
        JobState.QUEUED,
        1,
        "upstream_down",
    )
    assert waiting.lease_owner is None
    first_delay = waiting.run_at - datetime.now(UTC)
    assert timedelta(seconds=25) < first_delay <= backoff(1)
    # Not due yet: nothing runs.
    assert await runner.run_due() == jobs.Report()
    assert calls == [1]
    assert await runner.run_due(now=waiting.run_at) == jobs.Report(retried=1)
    second = await Job.get(id=job.id)
    assert second.attempts == 2
    assert timedelta(seconds=55) < second.run_at - datetime.now(UTC) <= backoff(2)
    assert await runner.run_due(now=second.run_at) == jobs.Report(done=1)
    done = await Job.get(id=job.id)
    assert (done.state, done.attempts, done.lease_owner, done.lease_until) == (
        JobState.DONE,
        3,
        None,
        None,
    )
    assert done.finished_at is not None
    assert calls == [1, 2, 3]
    # Done is done: it never runs again.
    assert await runner.run_due(now=datetime.now(UTC) + timedelta(days=30)) == jobs.Report()


async def test_a_job_failing_every_attempt_ends_failed_with_its_kind_and_code_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(job: jobs.JobContext) -> None:
        raise RuntimeError("customer@example.com is unreachable")  # never logged

    _register(monkeypatch, "test.broken", broken)
    caplog.set_level(logging.INFO, logger="ocis")
    job = await jobs.enqueue("test.broken", {}, max_attempts=2)
    before = _finished("test.broken", "failed")
    runner = jobs.Runner()
    assert await runner.run_due() == jobs.Report(retried=1)
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await runner.run_due(now=later) == jobs.Report(failed=1)
    failed = await Job.get(id=job.id)
    assert (failed.state, failed.attempts, failed.last_error_code) == (
        JobState.FAILED,
        2,
        "RuntimeError",
    )
    assert failed.finished_at is not None
    assert await runner.run_due(now=later + timedelta(days=1)) == jobs.Report()
    assert _finished("test.broken", "failed") == before + 1
    lines = [r.getMessage() for r in caplog.records if r.name == "ocis.jobs"]
    assert any(
        "test.broken" in line and "RuntimeError" in line and "giving up" in line for line in lines
    )
    assert not any("example.com" in line or "unreachable" in line for line in lines)


def _finished(kind: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("ocis_job_attempts_total", {"kind": kind, "outcome": outcome})
    return value or 0.0


async def test_a_checkpoint_refuses_personal_data_and_keeps_the_last_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def leaky(job: jobs.JobContext) -> None:
        await job.checkpoint(step=1, cursor=uuid4())
        await job.checkpoint(step=2, last_email="customer@example.com")

    _register(monkeypatch, "test.leaky", leaky)
    job = await jobs.enqueue("test.leaky", {})
    assert await jobs.Runner().run_due() == jobs.Report(retried=1)
    stored = await Job.get(id=job.id)
    assert stored.progress["step"] == 1
    assert set(stored.progress) == {"step", "cursor"}
    assert stored.last_error_code == "InvalidPayload"


# Leases


async def test_a_dead_workers_lease_runs_out_and_another_runner_resumes_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resumed_from: list[object] = []

    async def resumable(job: jobs.JobContext) -> None:
        resumed_from.append(job.progress.get("step"))
        await job.checkpoint(step=2)

    _register(monkeypatch, "test.resumable", resumable)
    job = await jobs.enqueue("test.resumable", {})
    dead = jobs.Runner(owner="dead-worker")
    now = datetime.now(UTC)
    # The dead worker claimed it and checkpointed step 1, then vanished.
    (taken,) = await claim(
        jobs.JOB_QUEUE,
        limit=1,
        queued="queued",
        running="running",
        now=now,
        owner=dead.owner,
        until=now + dead.lease,
    )
    assert taken.id == job.id
    await Job.filter(id=job.id).update(progress={"step": 1})
    other = jobs.Runner(owner="other-worker")
    # While its lease holds nobody else takes the job.
    assert await other.run_due() == jobs.Report()
    after_lease = now + dead.lease + timedelta(seconds=1)
    assert await other.run_due(now=after_lease) == jobs.Report(done=1)
    assert resumed_from == [1]
    done = await Job.get(id=job.id)
    assert (done.state, done.attempts, done.progress) == (JobState.DONE, 2, {"step": 2})
    # The dead worker, back from the dead, can no longer touch it.
    ghost = jobs.JobContext(
        id=job.id,
        kind="test.resumable",
        payload={},
        progress={},
        attempt=1,
        owner=dead.owner,
        lease=dead.lease,
    )
    with pytest.raises(jobs.LeaseLost):
        await ghost.checkpoint(step=9)
    assert (await Job.get(id=job.id)).progress == {"step": 2}


async def test_a_job_whose_worker_died_on_its_last_attempt_ends_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[int] = []

    async def counted(job: jobs.JobContext) -> None:
        ran.append(job.attempt)

    _register(monkeypatch, "test.counted", counted)
    job = await jobs.enqueue("test.counted", {}, max_attempts=1)
    await Job.filter(id=job.id).update(
        state=JobState.RUNNING, attempts=1, lease_owner="gone", lease_until=datetime.now(UTC)
    )
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert await jobs.Runner().run_due(now=later) == jobs.Report(failed=1)
    failed = await Job.get(id=job.id)
    assert (failed.state, failed.last_error_code) == (JobState.FAILED, "lease_expired")
    assert ran == []


async def test_a_running_handler_keeps_its_lease_by_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = asyncio.Event()
    runs: list[str] = []

    async def slow(job: jobs.JobContext) -> None:
        runs.append(job.owner)
        started.set()
        await asyncio.sleep(1.2)  # no checkpoint: only the heartbeat renews the lease

    _register(monkeypatch, "test.slow", slow)
    job = await jobs.enqueue("test.slow", {})
    first = jobs.Runner(owner="first", lease=timedelta(seconds=0.3))
    second = jobs.Runner(owner="second", lease=timedelta(seconds=0.3))
    working = asyncio.create_task(first.run_due())
    await asyncio.wait_for(started.wait(), timeout=10)
    for _ in range(8):
        await asyncio.sleep(0.1)
        assert await second.run_due() == jobs.Report()
    assert await asyncio.wait_for(working, timeout=10) == jobs.Report(done=1)
    assert runs == ["first"]
    assert (await Job.get(id=job.id)).attempts == 1


async def test_a_stopping_runner_hands_its_job_back_without_counting_the_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = asyncio.Event()

    async def endless(job: jobs.JobContext) -> None:
        await job.checkpoint(step=1)
        started.set()
        await asyncio.sleep(60)

    _register(monkeypatch, "test.endless", endless)
    job = await jobs.enqueue("test.endless", {})
    runner = jobs.Runner(stop_grace=0.1)
    working = asyncio.create_task(runner.run_due())
    await asyncio.wait_for(started.wait(), timeout=10)
    runner.stopping.set()
    assert await asyncio.wait_for(working, timeout=10) == jobs.Report(released=1)
    back = await Job.get(id=job.id)
    assert (back.state, back.attempts, back.lease_owner, back.progress) == (
        JobState.QUEUED,
        0,
        None,
        {"step": 1},
    )
    assert back.run_at <= datetime.now(UTC)


async def test_two_runners_at_once_run_each_of_fifty_jobs_exactly_once(
    monkeypatch: pytest.MonkeyPatch, is_postgres: bool
) -> None:
    ran: list[tuple[UUID, str]] = []

    async def record(job: jobs.JobContext) -> None:
        await asyncio.sleep(0.005)
        ran.append((job.id, job.owner))

    _register(monkeypatch, "test.record", record)
    queued = {(await jobs.enqueue("test.record", {"n": n})).id for n in range(50)}
    runners = [jobs.Runner(owner="a"), jobs.Runner(owner="b")]
    reports = await asyncio.gather(*(runner.run_due(limit=100) for runner in runners))
    assert sum(report.done for report in reports) == 50
    assert Counter(ident for ident, _ in ran) == dict.fromkeys(queued, 1)
    # Both took part: neither waited for the other to finish.
    assert {owner for _, owner in ran} == {"a", "b"}
    assert await Job.filter(state=JobState.DONE).count() == 50


async def test_concurrent_claims_never_hand_out_one_job_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(monkeypatch, "test.noop", _noop)
    queued = {(await jobs.enqueue("test.noop", {"n": n})).id for n in range(50)}
    now = datetime.now(UTC)

    async def take(owner: str) -> list[UUID]:
        got: list[UUID] = []
        while True:
            batch = await claim(
                jobs.JOB_QUEUE,
                limit=3,
                queued="queued",
                running="running",
                now=now,
                owner=owner,
                until=now + timedelta(minutes=5),
            )
            if not batch:
                return got
            got.extend(row.id for row in batch)

    claims = await asyncio.gather(*(take(f"claimer-{n}") for n in range(5)))
    everything = [ident for got in claims for ident in got]
    assert sorted(everything) == sorted(queued)
    owners = {job.id: job.lease_owner for job in await Job.all()}
    for index, got in enumerate(claims):
        assert all(owners[ident] == f"claimer-{index}" for ident in got)


async def test_the_queue_metrics_count_waiting_jobs_and_the_oldest_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(monkeypatch, "test.noop", _noop)
    now = datetime.now(UTC)
    await jobs.enqueue("test.noop", {}, run_at=now - timedelta(seconds=90))
    await jobs.enqueue("test.noop", {}, run_at=now + timedelta(hours=1))
    await jobs.measure_queue(now)
    assert REGISTRY.get_sample_value("ocis_job_queue_depth") == 2
    oldest = REGISTRY.get_sample_value("ocis_job_queue_oldest_seconds")
    assert oldest is not None
    assert 89 <= oldest <= 91


# Settings


def test_jobs_run_in_the_server_by_default_only_in_development() -> None:
    assert config.from_environ({}).run_jobs_in_server is True
    assert config.from_environ({"OCIS_RUN_JOBS_IN_SERVER": "false"}).run_jobs_in_server is False
    with pytest.raises(config.ConfigurationError, match="OCIS_RUN_JOBS_IN_SERVER"):
        config.from_environ({"OCIS_RUN_JOBS_IN_SERVER": "sometimes"})
    with pytest.raises(config.ConfigurationError, match="OCIS_JOB_LEASE_SECONDS"):
        config.from_environ({"OCIS_JOB_LEASE_SECONDS": "0"})
    production = {
        "OCIS_ENV": "production",
        "OCIS_MASTER_KEY": base64.b64encode(b"m" * 32).decode(),
        "DATABASE_URL": "postgres://ocis@db.example.com/ocis",
        "REDIS_URL": "redis://cache.example.com:6379/0",
        "SMTP_URL": "smtps://mail.example.com",
        "PUBLIC_URL": "https://ocis.example.com",
        "OCIS_TRUSTED_PROXIES": "10.0.0.1",
    }
    assert config.from_environ(production).run_jobs_in_server is False
    with pytest.raises(config.ConfigurationError, match="OCIS_EXTRA_JOB_MODULES"):
        config.from_environ({**production, "OCIS_EXTRA_JOB_MODULES": "tests.job_kinds"})


# Real processes


def _worker_environment(settings: config.Settings, trail: Path, **extra: str) -> dict[str, str]:
    return subprocess_environment(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url or "",
        OCIS_MASTER_KEY=base64.b64encode(settings.master_key).decode(),
        OCIS_AUDIT_CHECKPOINT_DIR=str(settings.audit_checkpoint_dir),
        OCIS_EXTRA_JOB_MODULES="tests.job_kinds",
        OCIS_JOB_LEASE_SECONDS="2",
        OCIS_JOB_POLL_SECONDS="0.1",
        PYTHONUNBUFFERED="1",
        **{job_kinds.TRAIL: str(trail)},
        **extra,
    )


def _start_worker(environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 - our own worker with fixed arguments
            [sys.executable, "server.py", "worker"],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _end(process: subprocess.Popen[bytes], how: signal.Signals) -> int:
    if process.poll() is None:
        process.send_signal(how)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)
        raise


async def _until(job_id: UUID, done: Any, process: subprocess.Popen[bytes], log: Path) -> Job:
    deadline = time.monotonic() + PROCESS_SECONDS
    while time.monotonic() < deadline:
        job = await Job.get(id=job_id)
        if done(job):
            return job
        if process.poll() is not None:
            raise AssertionError("the worker stopped:\n" + _tail(log))
        await asyncio.sleep(0.05)
    raise AssertionError("the job did not get there in time:\n" + _tail(log))


def _tail(log: Path) -> str:
    return log.read_text()[-5000:]


@pytest.fixture
async def effects_table(app: Any) -> Any:
    await job_kinds.create_effects_table()
    try:
        yield
    finally:
        await job_kinds.drop_effects_table()


@pytest.mark.usefixtures("effects_table")
async def test_a_job_survives_kill_9_of_its_worker_and_finishes_once_after_a_restart(
    app_settings: config.Settings, tmp_path: Path
) -> None:
    trail, log = tmp_path / "trail.txt", tmp_path / "worker.log"
    environment = _worker_environment(app_settings, trail)
    job = await jobs.enqueue("test.steps", {"pause_ms": 600}, dedupe_key="test:kill-9")
    worker = _start_worker(environment, log)
    try:
        await _until(job.id, lambda j: j.progress.get("step", 0) >= 2, worker, log)
    finally:
        _end(worker, signal.SIGKILL)
    crashed = await Job.get(id=job.id)
    assert crashed.state == JobState.RUNNING  # the dead worker's lease is still on it
    assert crashed.progress["step"] in (2, 3)
    restarted = _start_worker(environment, log)
    try:
        done = await _until(job.id, lambda j: j.state == JobState.DONE, restarted, log)
    finally:
        assert _end(restarted, signal.SIGTERM) == 0
    assert done.attempts == 2
    assert done.progress == {"step": job_kinds.STEPS}
    assert await job_kinds.effects() == [(str(job.id), step) for step in range(1, 6)]
    started = Counter(int(line.split()[1]) for line in trail.read_text().splitlines())
    # Checkpointed steps never ran again; the step cut short ran again, its row written once.
    assert started[1] == 1
    assert started[2] == 1
    assert set(started) == {1, 2, 3, 4, 5}
    assert sum(started.values()) <= job_kinds.STEPS + 1


@pytest.mark.usefixtures("effects_table")
async def test_a_stopped_worker_hands_its_job_back_and_a_serving_process_finishes_it(
    app_settings: config.Settings, tmp_path: Path
) -> None:
    trail, log = tmp_path / "trail.txt", tmp_path / "worker.log"
    environment = _worker_environment(app_settings, trail, OCIS_JOB_STOP_GRACE_SECONDS="0.2")
    job = await jobs.enqueue("test.steps", {"pause_ms": 1500})
    worker = _start_worker(environment, log)
    try:
        await _until(job.id, lambda j: j.progress.get("step", 0) >= 1, worker, log)
    finally:
        assert _end(worker, signal.SIGTERM) == 0
    back = await Job.get(id=job.id)
    assert (back.state, back.attempts, back.lease_owner) == (JobState.QUEUED, 0, None)
    assert back.progress["step"] in (1, 2)
    # The embedded default: `serve` runs the jobs itself (and takes this one at once).
    server = _start_server(environment | {"PORT": "0"}, log)
    try:
        done = await _until(job.id, lambda j: j.state == JobState.DONE, server, log)
    finally:
        # uvicorn shuts down cleanly, then re-raises the signal it caught.
        assert _end(server, signal.SIGTERM) in (0, -signal.SIGTERM), _tail(log)
    assert done.attempts == 1
    assert await job_kinds.effects() == [(str(job.id), step) for step in range(1, 6)]


def _start_server(environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 - our own server with fixed arguments
            [sys.executable, "server.py", "serve"],
            cwd=ROOT,
            env={**environment, "HOST": "127.0.0.1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _runners_started(log: Path) -> int:
    return log.read_text().count("job runner") if log.exists() else 0


@pytest.mark.usefixtures("effects_table", "demo")
async def test_two_worker_processes_share_the_jobs_and_the_mail_each_done_once(
    app_settings: config.Settings, tmp_path: Path, smtp: Mailbox
) -> None:
    trail = tmp_path / "trail.txt"
    environment = _worker_environment(app_settings, trail, SMTP_URL=smtp.url)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    workers = [_start_worker(environment, log) for log in logs]
    try:
        deadline = time.monotonic() + PROCESS_SECONDS
        while not all(_runners_started(log) for log in logs):
            assert time.monotonic() < deadline, _tail(logs[0]) + _tail(logs[1])
            assert all(worker.poll() is None for worker in workers)
            await asyncio.sleep(0.1)
        customer = await User.get(email_index=crypto.blind_index("customer@example.com"))
        notice = await notices.notify(customer.id, "identity.linked", provider="Google")
        queued = [
            (await jobs.enqueue("test.steps", {"pause_ms": 60, "n": n})).id for n in range(12)
        ]
        for ident in queued:
            await _until(ident, lambda j: j.state == JobState.DONE, workers[0], logs[0])
        while (await Notice.get(id=notice.id)).mail_status != MailStatus.SENT:
            assert time.monotonic() < deadline, _tail(logs[0]) + _tail(logs[1])
            await asyncio.sleep(0.1)
    finally:
        codes = [_end(worker, signal.SIGTERM) for worker in workers]
    assert codes == [0, 0]
    assert len(smtp.received) == 1
    assert await job_kinds.effects() == sorted(
        (str(ident), step) for ident in queued for step in range(1, 6)
    )
    runs = [tuple(line.split()) for line in trail.read_text().splitlines()]
    assert Counter((ident, step) for ident, step, _ in runs) == dict.fromkeys(
        ((str(ident), str(step)) for ident in queued for step in range(1, 6)), 1
    )
    assert len({owner for _, _, owner in runs}) == 2  # both workers took part
    assert all(job.attempts == 1 for job in await Job.filter(id__in=queued))
