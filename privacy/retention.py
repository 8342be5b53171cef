"""Retention (P21): personal data kept only as long as its category's period, then deleted.

``CATEGORIES`` is the one table: for each category of personal data, which rows have outlived
their period (a filter of the cutoff, ``now`` minus the category's days, and of ``now``), and
which columns name whose data a row is. ``KEPT`` names every other table that holds personal
data, and why nothing expires there (a test holds the two together against the models).

A run takes the categories in order. Each is read in batches by id (a bounded transaction per
batch, so a run goes on while the server serves); a row whose subject is under a legal hold
(privacy/legal.py) is skipped and counted, the others are deleted (their dependent rows go
with them by the foreign keys' cascade). The delete repeats the expiry filter, so a row that
changed since it was read (a ticket reopened) stays. Deleting what expired is idempotent: a
second run finds only what the first skipped for its holds. A dry run reads the same batches
with the same holds and deletes nothing, so its counts are the real run's.

The audit trail is pruned as a prefix of each chain, behind a keyed anchor, so the rest still
verifies (privacy/audit_verify.py prune_before); a chain stops before its first expired record
about a held subject, and the records kept after that point are counted as held.

On a schedule (`worker`, every OCIS_RETENTION_EVERY_HOURS) it runs as the durable job
``privacy.retention``: each worker enqueues the job of the current period under one dedupe key,
so N workers queue it once and one of them runs it; the job checkpoints after each category and
a worker taking it over resumes at the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.exceptions import OperationalError
from tortoise.expressions import Q, Subquery
from tortoise.functions import Min
from tortoise.models import Model
from tortoise.transactions import in_transaction

import settings as config
from auth.principal import ANONYMOUS
from models import (
    AccountToken,
    AuditEvent,
    ConsentEntry,
    Export,
    Invitation,
    Job,
    JobState,
    MailStatus,
    Notice,
    PrivacyRequest,
    SignInSession,
    Ticket,
    TicketStatus,
    User,
    UserStatus,
    WalkInRequester,
)
from privacy import audit, audit_verify, jobs, legal
from privacy.audit_actions import AuditAction
from privacy.audit_links import LEGACY_CHAIN

logger = logging.getLogger("ocis.retention")

KIND = "privacy.retention"
AUDIT_TRAIL = "audit_trail"

# Whose data is held: privacy/legal.py held_subjects, every subject under a hold active at
# `now` when called without ids (a run asks once, so its categories agree on who is held).
HeldSubjects = Callable[..., Awaitable[set[UUID]]]


@dataclass(frozen=True, slots=True)
class Window:
    """The moment of a run and its periods: what a category's expiry filter is built from."""

    now: datetime
    days: Mapping[str, int]

    def cutoff(self, category: str) -> datetime:
        """Rows of `category` older than this have expired."""
        return self.now - timedelta(days=self.days[category])


Expiry = Callable[[Window], Q]
FINISHED_MAIL = (MailStatus.SENT, MailStatus.FAILED, MailStatus.CANCELLED)


def _closed_ticket(window: Window) -> Q:
    return Q(status=TicketStatus.CLOSED, closed_at__lt=window.cutoff("closed_tickets"))


def _lone_walk_in(window: Window) -> Q:
    """A walk-in past its period none of whose tickets this run keeps (open, or closed
    within their period)."""
    kept = (
        Ticket.filter(walk_in_id__isnull=False).exclude(_closed_ticket(window)).values("walk_in_id")
    )
    return Q(created_at__lt=window.cutoff("walk_in_requesters")) & ~Q(id__in=Subquery(kept))


def _visitor_consent(window: Window) -> Q:
    """A visitor's decision when none of theirs is newer than the period (no account took them)."""
    cutoff = window.cutoff("visitor_consents")
    recent = ConsentEntry.filter(
        user_id__isnull=True, visitor_id__isnull=False, created_at__gte=cutoff
    ).values("visitor_id")
    return Q(user_id__isnull=True, visitor_id__isnull=False, created_at__lt=cutoff) & ~Q(
        visitor_id__in=Subquery(recent)
    )


def _erased_account_consent(window: Window) -> Q:
    erased = User.filter(
        status=UserStatus.ERASED, updated_at__lt=window.cutoff("erased_account_consents")
    ).values("id")
    return Q(user_id__in=Subquery(erased))


@dataclass(frozen=True, slots=True)
class Category:
    """One category of personal data: its rows, when one has expired, and whose it is."""

    name: str
    model: type[Model]
    expired: Expiry
    # Columns naming the people a row is about (a hold on any of them keeps the row).
    subjects: tuple[str, ...]
    # Tables whose rows go with a deleted row (by cascade) and are this category's too.
    with_tables: tuple[str, ...] = ()

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.model._meta.db_table, *self.with_tables)


CATEGORIES: tuple[Category, ...] = (
    # A sign-in's record (IP, browser, place) from when the sign-in ended: expired or revoked.
    Category(
        "sign_ins",
        SignInSession,
        lambda w: Q(revoked_at__lt=w.cutoff("sign_ins")) | Q(expires_at__lt=w.cutoff("sign_ins")),
        ("user_id",),
    ),
    # Mailed single-use links, from when they were used or expired.
    Category(
        "account_tokens",
        AccountToken,
        lambda w: (
            Q(used_at__lt=w.cutoff("account_tokens")) | Q(expires_at__lt=w.cutoff("account_tokens"))
        ),
        ("user_id",),
    ),
    # Staff invitations, from when they were accepted, revoked or expired.
    Category(
        "invitations",
        Invitation,
        lambda w: (
            Q(accepted_at__lt=w.cutoff("invitations"))
            | Q(revoked_at__lt=w.cutoff("invitations"))
            | Q(expires_at__lt=w.cutoff("invitations"))
        ),
        ("id",),
    ),
    # In-platform notices and the outbox: once the mail is finished (sent, failed, cancelled).
    Category(
        "notices",
        Notice,
        lambda w: Q(mail_status__in=FINISHED_MAIL, created_at__lt=w.cutoff("notices")),
        ("user_id",),
    ),
    # An export and its sealed parts, never while its download link still works.
    Category(
        "exports",
        Export,
        lambda w: (
            Q(created_at__lt=w.cutoff("exports"))
            & (Q(expires_at__isnull=True) | Q(expires_at__lte=w.now))
        ),
        ("subject_id",),
        with_tables=("export_parts",),
    ),
    Category(
        "closed_tickets",
        Ticket,
        _closed_ticket,
        ("requester_id", "walk_in_id"),
        with_tables=("ticket_messages",),
    ),
    # Someone who wrote in without an account, once no ticket about them outlives this run.
    Category(
        "walk_in_requesters",
        WalkInRequester,
        _lone_walk_in,
        ("id",),
    ),
    Category(
        "privacy_requests",
        PrivacyRequest,
        lambda w: Q(closed_at__lt=w.cutoff("privacy_requests")),
        ("subject_id",),
        with_tables=("privacy_request_steps",),
    ),
    # Erasure keeps the consent ledger of an erased account as proof, without personal data
    # (P24); it goes this long after the erasure (the account's last change).
    Category(
        "erased_account_consents",
        ConsentEntry,
        _erased_account_consent,
        ("user_id",),
    ),
    # A visitor never signed in (no account took the decisions): this long after their last.
    Category(
        "visitor_consents",
        ConsentEntry,
        _visitor_consent,
        ("visitor_id",),
    ),
    Category(
        "jobs",
        Job,
        lambda w: Q(state__in=(JobState.DONE, JobState.FAILED), finished_at__lt=w.cutoff("jobs")),
        ("subject_id",),
    ),
)

# Tables with personal data that no retention period ends, and why.
KEPT: Mapping[str, str] = {
    "users": "the account itself: kept while it exists; erasure (P24) removes its data",
    "external_identities": "the account's sign-in methods: kept while the account is",
    "payment_methods": "the account's cards: kept until its owner removes them, or erasure",
    "notice_preferences": "the account's own choices: kept while the account is",
    "consent_entries": (
        "a living account's ledger proves its current consent (P05): kept while the account"
        " is; erased accounts' and visitors' entries expire above"
    ),
    "data_keys": (
        "key material, no values: a key left without rows opens nothing; erasure destroys"
        " a subject's keys and rotate-keys deletes retired ones"
    ),
    "legal_holds": (
        "a hold is what keeps the data above; lifted, it stays the record of why data was"
        " kept (P13)"
    ),
    "legal_disclosures": (
        "the record of what the law made OCIS hand over, owed to the subject's export (P13)"
    ),
    "announcements": "written by staff about OCIS; the author is a staff account kept with it",
    "campaigns": "written by staff about OCIS; the author is a staff account kept with it",
}

if {category.name for category in CATEGORIES} | {AUDIT_TRAIL} != set(config.RETENTION_DAYS):
    raise RuntimeError("the retention table and settings.RETENTION_DAYS name other categories")


@dataclass(slots=True)
class Count:
    deleted: int = 0
    held: int = 0


@dataclass(slots=True)
class Report:
    """Per category (in the table's order): rows deleted, and rows skipped for a legal hold."""

    dry_run: bool
    counts: dict[str, Count] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "categories": {
                name: {"deleted": count.deleted, "held": count.held}
                for name, count in self.counts.items()
            },
        }


def _subject(value: object) -> UUID | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError:
        return None


async def _expire(
    category: Category, window: Window, held: set[UUID], *, dry_run: bool, batch_size: int
) -> Count:
    count = Count()
    expired = category.expired(window)
    after: Any = None
    while True:
        query = category.model.filter(expired)
        if after is not None:
            query = query.filter(id__gt=after)
        columns = dict.fromkeys(("id", *category.subjects))
        rows = await query.order_by("id").limit(batch_size).values(*columns)
        if not rows:
            return count
        after = rows[-1]["id"]
        due = []
        for row in rows:
            if held and any(_subject(row[column]) in held for column in category.subjects):
                count.held += 1
            else:
                due.append(row["id"])
        if not due:
            continue
        if dry_run:
            count.deleted += len(due)
            continue
        async with in_transaction():
            # Counted by id: a backend's count of deleted rows may include the cascade's.
            still = await (
                category.model.filter(expired, id__in=due)
                .select_for_update()
                .values_list("id", flat=True)
            )
            if still:
                await category.model.filter(id__in=still).delete()
            count.deleted += len(still)


async def _prune_audit(
    cutoff: datetime, held: set[UUID], *, dry_run: bool, batch_size: int
) -> Count:
    count = Count()
    stop: dict[str, int] = {}
    if held:
        first_held = (
            await AuditEvent.filter(occurred_at__lt=cutoff, subject_id__in=held)
            .exclude(chain=LEGACY_CHAIN)
            .group_by("chain")
            .annotate(first=Min("position"))
            .values_list("chain", "first")
        )
        stop = {str(chain): int(first) for chain, first in first_held}
    points = await audit_verify.prune_points(cutoff, stop)
    for chain, (position, _) in points.items():
        count.deleted += await AuditEvent.filter(chain=chain, position__lte=position).count()
    if stop:
        for chain, (position, _) in (await audit_verify.prune_points(cutoff)).items():
            if chain in stop:
                kept_from = points[chain][0] if chain in points else 0
                count.held += await AuditEvent.filter(
                    chain=chain, position__gt=kept_from, position__lte=position
                ).count()
    if not dry_run and points:
        await audit_verify.prune_before(
            cutoff, _delete_audit_records, stop=stop, batch_size=batch_size
        )
    return count


# The trigger of migration 0002 that refuses DELETE on SQLite, put back after a prune.
SQLITE_NO_DELETE = (
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events"
    " BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
)


class PruneRefused(jobs.JobError):
    """The database role may not pass the audit trail's append-only trigger (PostgreSQL: it
    may not set session_replication_role); the other categories are done."""

    MESSAGE = (
        "the audit trail was not pruned: this database role may not SET"
        " session_replication_role (a superuser may, or on PostgreSQL 15+ a role granted"
        " SET ON PARAMETER session_replication_role; README, Retention)"
    )

    def __init__(self) -> None:
        super().__init__("audit_prune_refused")


async def _delete_audit_records(statements: list[str]) -> None:
    """Run a prune's deletes in one transaction past the append-only triggers.

    PostgreSQL: replica mode for this transaction only (the role running retention needs it:
    a superuser, or on PostgreSQL 15+ `GRANT SET ON PARAMETER session_replication_role`; the
    serving role should not have it). SQLite: the delete trigger is dropped and created again
    inside the transaction, so no other statement ever sees the table without it.
    """
    async with in_transaction() as connection:
        if connection.capabilities.dialect == "postgres":
            try:
                await connection.execute_query("SET LOCAL session_replication_role = replica")
            except OperationalError as error:
                if "permission denied" not in str(error):
                    raise
                raise PruneRefused() from None
            for statement in statements:
                await connection.execute_query(statement)
            return
        await connection.execute_query("DROP TRIGGER audit_events_no_delete")
        for statement in statements:
            await connection.execute_query(statement)
        await connection.execute_query(SQLITE_NO_DELETE)


Progress = Callable[[str, Count], Awaitable[None]]


async def run(
    days: Mapping[str, int],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    batch_size: int = config.DEFAULT_RETENTION_BATCH,
    held_subjects: HeldSubjects | None = None,
    skip: Iterable[str] = (),
    done: Progress | None = None,
) -> Report:
    """Delete (or with `dry_run` only count) what outlived `days` per category at `now`.

    `skip`: categories already done (a resumed job); `done` is awaited after each category.
    """
    moment = now or datetime.now(UTC)
    holds = held_subjects or legal.held_subjects
    held = await holds(None, now=moment)
    report = Report(dry_run=dry_run)
    skipped = set(skip)
    window = Window(moment, days)
    for category in CATEGORIES:
        if category.name in skipped:
            continue
        count = await _expire(category, window, held, dry_run=dry_run, batch_size=batch_size)
        await _finish(report, category.name, count, dry_run, done)
    if AUDIT_TRAIL not in skipped:
        cutoff = window.cutoff(AUDIT_TRAIL)
        count = await _prune_audit(cutoff, held, dry_run=dry_run, batch_size=batch_size)
        await _finish(report, AUDIT_TRAIL, count, dry_run, done)
    return report


async def _finish(
    report: Report, name: str, count: Count, dry_run: bool, done: Progress | None
) -> None:
    report.counts[name] = count
    if count.deleted and not dry_run:
        await audit.record(
            ANONYMOUS,
            action=AuditAction.RETENTION_DELETE,
            entity="RetentionCategory",
            entity_id=name,
            subject_id=None,
            purpose=name,
        )
    logger.info(
        "retention %s%s: %d deleted, %d held",
        name,
        " (dry run)" if dry_run else "",
        count.deleted,
        count.held,
    )
    if done is not None:
        await done(name, count)


def describe(report: Report, days: Mapping[str, int]) -> list[str]:
    """One line per category, as `retention` prints them."""
    verb = "would delete" if report.dry_run else "deleted"
    return [
        f"{name} (after {days[name]} days): {verb} {count.deleted}, held {count.held}"
        for name, count in report.counts.items()
    ]


def payload(settings: config.Settings) -> dict[str, object]:
    """The job's payload: the periods and the batch size it runs with."""
    return {
        "batch": settings.retention_batch_size,
        **{name: settings.retention_days[name] for name in config.RETENTION_DAYS},
    }


@jobs.handler(KIND)
async def retention_job(job: jobs.JobContext) -> None:
    """One scheduled run; resumed after the last category it checkpointed, at the moment
    its first attempt started (so a resumed run expires what the first one would have)."""
    days = {name: int(job.payload[name]) for name in config.RETENTION_DAYS}
    state: dict[str, object] = dict(job.progress)
    state.setdefault("at", int(datetime.now(UTC).timestamp()))
    finished = [name for name in config.RETENTION_DAYS if f"{name}_deleted" in state]

    async def done(name: str, count: Count) -> None:
        state.update({f"{name}_deleted": count.deleted, f"{name}_held": count.held})
        state.pop("step", None)
        await job.checkpoint(name, **state)

    await run(
        days,
        now=datetime.fromtimestamp(int(str(state["at"])), UTC),
        batch_size=int(job.payload["batch"]),
        skip=finished,
        done=done,
    )


def slot(settings: config.Settings, now: datetime) -> tuple[int, datetime]:
    """The scheduled period `now` falls in (its number and start)."""
    seconds = settings.retention_every_hours * 3600
    number = int(now.timestamp() // seconds)
    return number, datetime.fromtimestamp(number * seconds, UTC)


async def schedule(settings: config.Settings, now: datetime | None = None) -> Job | None:
    """Queue this period's run, once however many workers ask (None: no schedule)."""
    if settings.retention_every_hours <= 0:
        return None
    number, start = slot(settings, now or datetime.now(UTC))
    every = f"{settings.retention_every_hours:g}".replace(".", "_")
    return await jobs.enqueue(
        KIND,
        payload(settings),
        dedupe_key=f"{KIND}:{every}h:{number}",
        run_at=start,
        max_attempts=3,
    )


async def schedule_forever(settings: config.Settings, poll_seconds: float = 300.0) -> None:
    """Queue each period's run as it starts (every worker runs this; the queue keeps one)."""
    wait = min(poll_seconds, settings.retention_every_hours * 3600)
    while True:
        try:
            await schedule(settings)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the loop outlives a bad moment of the database
            logger.error("retention schedule failed: %s", type(error).__name__)
        await asyncio.sleep(wait)
