"""Durable jobs: work that outlives a request, run once in effect by any number of processes.

A job is a row (models/jobs.py). Any process claims due jobs through privacy/leases.py, the
claim mail delivery uses too: a lease that the running handler renews while it works. A worker
that dies leaves its lease to run out, and another process takes the job over and resumes it
from its last checkpoint, so every step must be idempotent (write keyed rows, move cursors in
the transaction of the work). A failure is retried with the mail's growing delays, then marked
failed with a short code; a crash counts as an attempt too, so a job that kills its worker
cannot take the fleet down forever.

Why our own: procrastinate needs PostgreSQL, arq Redis, saq Redis or PostgreSQL; none runs on
SQLite, the embedded default. huey has SQLite and PostgreSQL storage, but it deletes a task when
a worker takes it and never acknowledges it (its maintainer's word in coleifer/huey#418 and
#571): a worker killed mid-task loses the task, the very case these jobs exist for; and its
workers are threads outside our event loop and Tortoise. The architecture also keeps one
mechanism for mail and jobs alike. Ours is small: one claim statement, a lease, a checkpoint.

A job may name its subject (``enqueue(..., subject_id=)``): while that person's processing is
restricted (P25, privacy/restriction.py) the runner parks the job instead of running it, unless
its kind was registered ``while_restricted`` (an export, an erasure: the rights the subject
keeps); lifting the restriction queues the parked jobs again.

Payloads and progress hold ids, counts and flags, never personal data: ``enqueue`` and
``checkpoint`` refuse anything that is not a UUID, an int, a bool, a short ASCII identifier, or a
short list of those.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import re
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid4

from redis.asyncio import Redis
from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

import settings as config
from models import Job, JobState, User, UserStatus
from observability import JOB_QUEUE_DEPTH, JOB_QUEUE_OLDEST_SECONDS, JOBS_FINISHED
from privacy.leases import Queue, backoff, claim

logger = logging.getLogger("ocis.jobs")

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=60)
KIND = re.compile(r"[a-z][a-z0-9_.]{0,49}")
IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
DEDUPE_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
MAX_LIST = 1000
MAX_KEYS = 50

# Queued and due, or running under a lease that ran out (its worker died).
JOB_QUEUE = Queue(
    table="jobs",
    due='("state" = :queued AND "run_at" <= :now) OR ("state" = :running AND "lease_until" < :now)',
    take='"state" = :running, "attempts" = "attempts" + 1, "lease_owner" = :owner,'
    ' "lease_until" = :until',
    order='"run_at"',
    attempts="attempts",
)

Handler = Callable[["JobContext"], Coroutine[Any, Any, None]]
HANDLERS: dict[str, Handler] = {}
# What a kind does when its job is given up (its last attempt failed), in the transaction that
# marks the job failed: e.g. the export it was building is marked failed and its subject told.
GIVEN_UP: dict[str, Handler] = {}
# Kinds that run for a subject whose processing is restricted (P25).
WHILE_RESTRICTED: set[str] = set()


class InvalidPayload(ValueError):
    """A payload or checkpoint value that is not an id, a count, a flag or an identifier."""

    def __init__(self, key: str) -> None:
        # The key only: the refused value may be the very personal data kept out.
        super().__init__(f"job data {key!r} must be a UUID, int, bool or short identifier")
        self.key = key


class JobError(Exception):
    """A handler's expected failure, recorded by its short code (retried like any failure)."""

    def __init__(self, code: str) -> None:
        if not IDENTIFIER.fullmatch(code):
            raise ValueError("a job error code is a short ASCII identifier")
        super().__init__(code)
        self.code = code


class Park(Exception):
    """The handler may not do its work for its subject now (a legal hold on them, P13): the
    job is parked, its attempt not counted, until ``release_parked`` queues it again."""


class LeaseLost(Exception):
    """This worker's lease on the job ran out and another may hold it: stop touching it."""


def handler(
    kind: str, *, while_restricted: bool = False, given_up: Handler | None = None
) -> Callable[[Handler], Handler]:
    """Register `function` as the handler of jobs of this kind; `while_restricted`: it runs
    for a subject whose processing is restricted too (only what the subject keeps a right to);
    `given_up`: what to do once its job has failed for good."""
    if not KIND.fullmatch(kind):
        raise ValueError(f"a job kind is lower-case letters, digits, _ and .: {kind!r}")

    def register(function: Handler) -> Handler:
        if kind in HANDLERS and HANDLERS[kind] is not function:
            raise ValueError(f"job kind {kind!r} has a handler already")
        HANDLERS[kind] = function
        if given_up is not None:
            GIVEN_UP[kind] = given_up
        else:
            GIVEN_UP.pop(kind, None)
        if while_restricted:
            WHILE_RESTRICTED.add(kind)
        else:
            WHILE_RESTRICTED.discard(kind)
        return function

    return register


def _clean_value(key: str, value: object) -> object:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str) and IDENTIFIER.fullmatch(value):
        return value
    raise InvalidPayload(key)


def clean_data(data: Mapping[str, object]) -> dict[str, object]:
    """`data` as stored JSON, or InvalidPayload naming the first key that is not allowed."""
    if len(data) > MAX_KEYS:
        raise InvalidPayload("(too many keys)")
    cleaned: dict[str, object] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not IDENTIFIER.fullmatch(key):
            raise InvalidPayload("(a key)")
        if isinstance(value, list | tuple):
            if len(value) > MAX_LIST:
                raise InvalidPayload(key)
            cleaned[key] = [_clean_value(key, item) for item in value]
        else:
            cleaned[key] = _clean_value(key, value)
    return cleaned


async def enqueue(
    kind: str,
    payload: Mapping[str, object] | None = None,
    *,
    dedupe_key: str | None = None,
    run_at: datetime | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    subject_id: UUID | None = None,
) -> Job:
    """Queue a job (inside the caller's transaction, if any); the same `dedupe_key` twice gives
    the job queued first. `subject_id`: the person it is about (parked while restricted)."""
    if kind not in HANDLERS:
        raise ValueError(f"no handler for job kind {kind!r}")
    if dedupe_key is not None and not DEDUPE_KEY.fullmatch(dedupe_key):
        raise InvalidPayload("dedupe_key")
    if not 1 <= max_attempts <= 100:
        raise ValueError("max_attempts is 1 to 100")
    cleaned = clean_data(payload or {})
    if dedupe_key is not None:
        existing = await Job.get_or_none(dedupe_key=dedupe_key)
        if existing is not None:
            return existing
    job = Job(
        id=uuid4(),
        kind=kind,
        payload=cleaned,
        run_at=run_at or datetime.now(UTC),
        max_attempts=max_attempts,
        dedupe_key=dedupe_key,
        subject_id=subject_id,
    )
    try:
        # A savepoint: losing the race to another enqueuer leaves the caller's transaction usable.
        async with in_transaction():
            await job.save()
    except IntegrityError:
        if dedupe_key is None:
            raise
        return await Job.get(dedupe_key=dedupe_key)
    return job


@dataclass(slots=True)
class JobContext:
    """What a handler sees of its job: the payload, the last checkpoint, and `checkpoint`."""

    id: UUID
    kind: str
    payload: Mapping[str, Any]
    progress: dict[str, Any]
    attempt: int
    owner: str
    lease: timedelta
    # Whether this process sends mail (SMTP_URL is set): without it a notice's mail never leaves.
    sends_mail: bool = True
    # The shared store, for handlers that end sign-ins or broadcast (None in a bare runner).
    store: Redis | None = None

    async def checkpoint(self, step: int | str, **state: object) -> None:
        """Record that `step` is done (with the state to resume from) and renew the lease."""
        progress = clean_data({"step": step, **state})
        renewed = await _held(self).update(
            progress=progress, lease_until=datetime.now(UTC) + self.lease
        )
        if not renewed:
            raise LeaseLost(str(self.id))
        self.progress = progress

    async def renew(self) -> None:
        """Keep the lease (the heartbeat while a step runs long)."""
        if not await _held(self).update(lease_until=datetime.now(UTC) + self.lease):
            raise LeaseLost(str(self.id))


def _held(job: JobContext) -> QuerySet[Job]:
    """The job's row while this worker still holds its lease."""
    return Job.filter(id=job.id, state=JobState.RUNNING, lease_owner=job.owner)


@dataclass(slots=True)
class Report:
    done: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0
    parked: int = 0


@dataclass(slots=True)
class Runner:
    """One process's job loop: claims due jobs one at a time and runs their handlers."""

    owner: str = field(
        default_factory=lambda: f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid4().hex[:8]}"
    )
    lease: timedelta = LEASE
    stop_grace: float = 20.0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Every process that runs jobs runs the mail loop too when SMTP_URL is set (server.py, cli.py).
    sends_mail: bool = True
    store: Redis | None = None

    async def run_due(self, *, limit: int = 20, now: datetime | None = None) -> Report:
        """Run up to `limit` jobs due at `now` (default the present), one after another."""
        report = Report()
        tried: list[UUID] = []
        while len(tried) < limit and not self.stopping.is_set():
            taken = await claim(
                JOB_QUEUE,
                limit=1,
                skip=tried,
                queued=JobState.QUEUED.value,
                running=JobState.RUNNING.value,
                now=now or datetime.now(UTC),
                owner=self.owner,
                until=datetime.now(UTC) + self.lease,
            )
            if not taken:
                break
            (row,) = taken
            tried.append(row.id)
            outcome = await self._run(row.id)
            setattr(report, outcome, getattr(report, outcome) + 1)
        return report

    async def _run(self, job_id: UUID) -> str:
        job = await Job.get(id=job_id)
        context = JobContext(
            id=job.id,
            kind=job.kind,
            payload=MappingProxyType(dict(job.payload)),
            progress=dict(job.progress),
            attempt=job.attempts,
            owner=self.owner,
            lease=self.lease,
            sends_mail=self.sends_mail,
            store=self.store,
        )
        if job.attempts > job.max_attempts:  # its last worker died holding it
            return await self._failed(context, "lease_expired", final=True)
        if (
            job.subject_id is not None
            and job.kind not in WHILE_RESTRICTED
            and await is_restricted(job.subject_id)
        ):
            return await self._park(context, "its subject's processing is restricted")
        function = HANDLERS.get(job.kind)
        if function is None:  # queued by a newer version: retried until it is deployed
            return await self._failed(
                context, "unknown_kind", final=job.attempts >= job.max_attempts
            )
        work = asyncio.create_task(function(context))
        heartbeat = asyncio.create_task(self._heartbeat(context, work))
        stop = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():  # stopping: give the step a moment, then hand the job back
                await asyncio.wait({work}, timeout=self.stop_grace)
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
                return await self._release(context)
        except asyncio.CancelledError:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            await asyncio.shield(self._release(context))
            raise
        finally:
            heartbeat.cancel()
            stop.cancel()
        error = work.exception() if not work.cancelled() else LeaseLost(str(job_id))
        if error is None:
            return await self._done(context)
        if isinstance(error, LeaseLost):
            logger.warning("job %s (%s) lost its lease", job_id, job.kind)
            return "lost"
        if isinstance(error, Park):
            return await self._park(context, "its handler cannot work for its subject now")
        code = error.code if isinstance(error, JobError) else type(error).__name__[:64]
        return await self._failed(context, code, final=job.attempts >= job.max_attempts)

    async def _heartbeat(self, context: JobContext, work: asyncio.Task[None]) -> None:
        while not work.done():
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await context.renew()
            except LeaseLost:
                work.cancel()
                return
            except Exception as error:  # a bad moment of the database: the next beat retries
                logger.warning("job %s lease renewal failed: %s", context.id, type(error).__name__)

    async def _done(self, context: JobContext) -> str:
        now = datetime.now(UTC)
        if not await _held(context).update(
            state=JobState.DONE, finished_at=now, lease_owner=None, lease_until=None
        ):
            return "lost"
        JOBS_FINISHED.labels(kind=context.kind, outcome="done").inc()
        logger.info("job %s (%s) done after %d attempts", context.id, context.kind, context.attempt)
        return "done"

    async def _failed(self, context: JobContext, code: str, *, final: bool) -> str:
        now = datetime.now(UTC)
        changes: dict[str, Any] = {
            "last_error_code": code,
            "lease_owner": None,
            "lease_until": None,
        }
        if final:
            changes |= {"state": JobState.FAILED, "finished_at": now}
        else:
            changes |= {"state": JobState.QUEUED, "run_at": now + backoff(context.attempt)}
        given_up = GIVEN_UP.get(context.kind) if final else None
        async with in_transaction():
            if not await _held(context).update(**changes):
                return "lost"
            if given_up is not None:
                await given_up(context)
        outcome = "failed" if final else "retried"
        JOBS_FINISHED.labels(kind=context.kind, outcome=outcome).inc()
        logger.warning(
            "job %s (%s) attempt %d: %s%s",
            context.id,
            context.kind,
            context.attempt,
            code,
            ", giving up" if final else "",
        )
        return outcome

    async def _release(self, context: JobContext) -> str:
        """Hand the job back at once, its attempt not counted (this process is stopping)."""
        released = await _held(context).update(
            state=JobState.QUEUED,
            run_at=datetime.now(UTC),
            lease_owner=None,
            lease_until=None,
            attempts=max(0, context.attempt - 1),
        )
        logger.info("job %s (%s) released at shutdown", context.id, context.kind)
        return "released" if released else "lost"

    async def _park(self, context: JobContext, why: str) -> str:
        """Hold the job back, its attempt not counted, until released (its subject's
        restriction or legal hold lifted)."""
        parked = await _held(context).update(
            state=JobState.PARKED,
            lease_owner=None,
            lease_until=None,
            attempts=max(0, context.attempt - 1),
        )
        if not parked:
            return "lost"
        JOBS_FINISHED.labels(kind=context.kind, outcome="parked").inc()
        logger.info("job %s (%s) parked: %s", context.id, context.kind, why)
        return "parked"

    async def run_forever(self, poll_seconds: float) -> None:
        """Run due jobs until `stopping` is set (a job in hand is finished or released)."""
        while not self.stopping.is_set():
            try:
                await self.run_due()
                await measure_queue()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the loop outlives a bad moment of the database
                logger.error("job round failed: %s", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=poll_seconds)


async def is_restricted(subject_id: UUID) -> bool:
    """Whether this person's processing is restricted (P25), a disabled account's included."""
    user = await User.get_or_none(id=subject_id).only("id", "status", "status_before_disable")
    if user is None or user.status == UserStatus.ERASED:
        return False
    return UserStatus.RESTRICTED in (user.status, user.status_before_disable)


async def release_parked(subject_id: UUID) -> int:
    """Queue again, due now, the jobs parked while this subject was restricted or held (one
    still restricted or held is parked again when claimed)."""
    return await Job.filter(subject_id=subject_id, state=JobState.PARKED).update(
        state=JobState.QUEUED, run_at=datetime.now(UTC)
    )


def runner(settings: config.Settings, store: Redis | None = None) -> Runner:
    """This process's job runner, with the configured lease and mail transport."""
    return Runner(
        lease=timedelta(seconds=settings.job_lease_seconds),
        stop_grace=settings.job_stop_grace_seconds,
        sends_mail=bool(settings.smtp_url),
        store=store,
    )


@asynccontextmanager
async def running(settings: config.Settings, store: Redis | None = None) -> AsyncIterator[Runner]:
    """Run this process's job loop while the block runs; at its end, let the job in hand finish
    (for the configured grace) or hand it back, then stop."""
    load_extra_kinds(settings)
    loop = runner(settings, store)
    task = asyncio.create_task(loop.run_forever(settings.job_poll_seconds))
    logger.info("job runner %s started", loop.owner)
    try:
        yield loop
    finally:
        loop.stopping.set()
        try:
            await asyncio.wait_for(task, timeout=loop.stop_grace + 10)
        except TimeoutError:
            logger.warning("job runner %s did not stop in time; cancelled", loop.owner)
        except Exception as error:
            logger.error("job runner %s stopped on %s", loop.owner, type(error).__name__)


# The modules that register OCIS's own job kinds, imported by every process that runs jobs.
KIND_MODULES = ("privacy.restriction", "privacy.exports", "privacy.erasure", "privacy.retention")


def load_extra_kinds(settings: config.Settings) -> None:
    """Import the modules that register the job kinds, OCIS's own and more (development only:
    tests use it)."""
    for module in (*KIND_MODULES, *settings.extra_job_modules):
        importlib.import_module(module)


async def measure_queue(now: datetime | None = None) -> None:
    """The number of jobs waiting or running, and how long the oldest due one has waited."""
    moment = now or datetime.now(UTC)
    JOB_QUEUE_DEPTH.set(await Job.filter(state__in=(JobState.QUEUED, JobState.RUNNING)).count())
    oldest = (
        await Job.filter(state=JobState.QUEUED, run_at__lte=moment)
        .order_by("run_at")
        .first()
        .values_list("run_at", flat=True)
    )
    waited = (moment - oldest).total_seconds() if isinstance(oldest, datetime) else 0.0
    JOB_QUEUE_OLDEST_SECONDS.set(max(0.0, waited))
