"""Erasure (P24, GDPR Art. 17): every trace of a subject removed or pseudonymised, for good.

Completing an erasure request (``order``, in the officer's transaction) queues the durable job
``privacy.erasure`` with the request's id, unless a legal hold applies (P13): then the request
stays in progress with an ``erasure_blocked`` step giving the reason, which its subject is
told, and completes (queueing the job) once the last hold on them is lifted (``resume``). The
job itself parks while a hold placed meanwhile is active.

The subject is told the erasure is done (a notice and its mail) when the request completes;
the job starts once that mail has left (or was given up), where a mail transport is
configured, since its first step takes the address the mail goes to.

The job runs STEPS in order, each checkpointed in the transaction of its work, so that a
worker killed at any point resumes at the step it was in, and a step run again does nothing
twice (rows deleted are gone, pseudonyms replace values that are no longer found):

1. ``sign_ins``: the account is erased at once (status, password, and the blind indexes, so
   that the address and username are free to register again as a new person); every web
   session and app sign-in ends in the shared store.
2. ``tickets``: the subject's tickets (as requester, and as the walk-in of their addresses)
   are kept for the team, the requester pseudonymised: no requester, no name or address on
   it, and its subject and the subject's own messages re-sealed under the ticket's own key.
3. ``texts``: every encrypted column of every table is read, and the subject's name (and each
   word of it), addresses, phone (in any spacing) and username, in any case, are replaced with
   a pseudonym wherever they appear: messages others wrote, notes, ticket subjects, privacy
   requests' details, others' exports. The subject's own rows are left to step 6.
4. ``consents``: the ledger keeps, per purpose, only a withdrawal without personal data (no
   address, user agent or visitor id): the proof that nothing is consented any more. The
   visitor consent ids merged into the account go with their entries.
5. ``account``: identities, sign-in records, payment tokens, notices and mail in the outbox,
   notice preferences, mailed links, exports and walk-ins are deleted; the account row stays
   as a tombstone (its id, status erased, no profile) so that the erasure log (the completed
   request and the audit records, ids only) still names it.
6. ``keys``: the subject's data keys (and their walk-ins' and visitors') are destroyed, which
   shreds whatever their rows still seal (the requests' details, the tombstone), and every
   process is told through the shared store to drop its cached copies at once.

Audit records keep their ids and were never values, so the trail verifies as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from auth import sessions
from auth import tokens as app_tokens
from auth.principal import ANONYMOUS, Principal
from models import (
    AccountToken,
    ConsentEntry,
    ConsentSource,
    Export,
    ExportPart,
    ExternalIdentity,
    MailStatus,
    Notice,
    NoticePreference,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestAction,
    PrivacyRequestChannel,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    PrivacyRequestStep,
    SignInSession,
    Ticket,
    TicketMessage,
    User,
    UserStatus,
    WalkInRequester,
    crypto,
)
from models.base import Entity
from privacy import audit, jobs, legal, mail, requests
from privacy import keys as key_management
from privacy.audit_actions import AuditAction

logger = logging.getLogger("ocis.erasure")

KIND = "privacy.erasure"
# What stands where the subject's name, address, phone or username stood.
PSEUDONYM = "[erased]"
BATCH = 200
# A job parked by a hold is not retried; these cover a store or database down for a while.
ATTEMPTS = 20
# Shorter words of a name are too common to replace on their own (the whole name still is).
MIN_NAME_WORD = 3
MIN_PHONE_DIGITS = 6
_SEPARATORS = r"[\s().\-/]*"


@dataclass(frozen=True, slots=True)
class Traces:
    """The values that identify the subject, read afresh by every run (never kept in the job:
    its checkpoint holds ids only)."""

    names: tuple[str, ...]
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    usernames: tuple[str, ...]

    def pattern(self) -> re.Pattern[str] | None:
        """One case-blind pattern for all of them, the longest alternatives first."""
        literal: set[str] = set()
        worded: set[str] = set()
        for value in (*self.emails, *self.usernames):
            if value.strip():
                literal.add(re.escape(value.strip()))
        for name in self.names:
            words = name.split()
            if words:
                literal.add(r"\s+".join(re.escape(word) for word in words))
            worded.update(rf"\b{re.escape(word)}\b" for word in words if len(word) >= MIN_NAME_WORD)
        for phone in self.phones:
            digits = re.sub(r"\D", "", phone)
            if len(digits) >= MIN_PHONE_DIGITS:
                literal.add(r"\+?" + _SEPARATORS.join(digits))
        alternatives = sorted(literal | worded, key=len, reverse=True)
        if not alternatives:
            return None
        return re.compile("|".join(alternatives), re.IGNORECASE)


def scrub(pattern: re.Pattern[str] | None, text: str) -> str:
    """The text with every trace replaced by the pseudonym."""
    return text if pattern is None else pattern.sub(PSEUDONYM, text)


def _present(*values: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value.strip() for value in values if value and value.strip()))


async def traces_of(subject_id: UUID) -> Traces:
    """What identifies the subject: their profile, linked identities' and pending addresses,
    their walk-ins' and what their tickets name them as."""
    user = await User.get(id=subject_id)
    identity_emails = [
        row.email for row in await ExternalIdentity.filter(user_id=subject_id) if row.email
    ]
    pending = [
        row.new_email for row in await AccountToken.filter(user_id=subject_id) if row.new_email
    ]
    emails = _present(user.email, *identity_emails, *pending)
    walk_ins = await _walk_ins(emails)
    tickets = await Ticket.filter(requester_id=subject_id)
    return Traces(
        names=_present(
            user.name,
            *(row.name for row in walk_ins),
            *(row.requester_name for row in tickets),
        ),
        emails=_present(
            *emails,
            *(row.email for row in walk_ins),
            *(row.requester_email for row in tickets),
        ),
        phones=_present(user.phone),
        usernames=_present(user.username),
    )


async def _walk_ins(emails: Iterable[str]) -> list[WalkInRequester]:
    indexes = sorted({crypto.blind_index(email) for email in emails})
    if not indexes:
        return []
    return await WalkInRequester.filter(email_index__in=indexes).order_by("id")


# --- ordering it -------------------------------------------------------------------------


async def order(
    principal: Principal, request: PrivacyRequest, outcome: str
) -> PrivacyRequestStatus:
    """Carry out an erasure request in progress, locked by the caller (in their transaction):
    completed and its job queued, or, while a legal hold applies, blocked with the reason."""
    if request.kind != PrivacyRequestKind.ERASURE:
        raise ValueError("only an erasure request erases")
    holds = await legal.active_holds(request.subject_id)
    request.outcome = outcome
    if holds:
        await requests.take(
            principal,
            request,
            PrivacyRequestAction.ERASURE_BLOCKED,
            note=blocked_reason(holds[0].authority, holds[0].reason),
            changed=("outcome",),
        )
        return request.status
    _, notice = await requests.take_and_tell(
        principal, request, PrivacyRequestAction.COMPLETED, note=outcome, changed=("outcome",)
    )
    await enqueue(request, notice.id)
    return request.status


def blocked_reason(authority: str, reason: str) -> str:
    """What the subject is told of the hold that blocks their erasure (its authority and
    reason, as staff wrote them for this purpose)."""
    return f"A legal hold placed for {authority} applies: {reason}"


async def enqueue(request: PrivacyRequest, notice_id: UUID) -> None:
    """Queue the erasure of a completed request's subject; `notice_id` is the notice telling
    them it is done, whose mail the job lets leave before it takes their address."""
    await jobs.enqueue(
        KIND,
        {"request": request.id, "notice": notice_id},
        subject_id=request.subject_id,
        dedupe_key=f"{KIND}:{request.id}",
        max_attempts=ATTEMPTS,
    )


async def resume(principal: Principal, subject_id: UUID) -> int:
    """Once no hold is left on the subject (in the caller's transaction): complete each erasure
    request of theirs that a hold blocked, queueing its job, and queue again any erasure job
    parked by a hold placed after its request completed. How many requests completed."""
    if await legal.is_held(subject_id):
        return 0
    blocked = await PrivacyRequest.select_for_update().filter(
        subject_id=subject_id,
        kind=PrivacyRequestKind.ERASURE,
        status=PrivacyRequestStatus.IN_PROGRESS,
    )
    completed = 0
    for request in blocked:
        last = await PrivacyRequestStep.filter(request_id=request.id).order_by("-at", "-id").first()
        if last is None or last.action != PrivacyRequestAction.ERASURE_BLOCKED:
            continue
        _, notice = await requests.take_and_tell(
            principal, request, PrivacyRequestAction.COMPLETED, note=request.outcome
        )
        await enqueue(request, notice.id)
        completed += 1
    await jobs.release_parked(subject_id)
    return completed


# --- the job -----------------------------------------------------------------------------

State = dict[str, Any]
StepFunction = Callable[[jobs.JobContext, UUID, State], Awaitable[None]]


async def _done(job: jobs.JobContext, subject_id: UUID, step: str, state: State) -> None:
    """Audit the step and checkpoint it, in the step's transaction."""
    await audit.record(
        ANONYMOUS,
        action=AuditAction.ERASURE_STEP,
        entity="User",
        entity_id=subject_id,
        subject_id=subject_id,
        purpose=step,
    )
    await job.checkpoint(step, **state)


async def _sign_ins(job: jobs.JobContext, subject_id: UUID, state: State) -> None:
    walk_ins = await _walk_ins((await traces_of(subject_id)).emails)
    await _end_sign_ins(job, subject_id)
    async with in_transaction():
        user = await User.select_for_update().get(id=subject_id)
        user.status = UserStatus.ERASED
        user.password_hash = None
        user.email_index = None
        user.username_index = None
        user.email_verified_at = None
        await user.save(
            update_fields=[
                "status",
                "password_hash",
                "email_index",
                "username_index",
                "email_verified_at",
                "updated_at",
            ]
        )
        state["walk_ins"] = [row.id for row in walk_ins]
        await _done(job, subject_id, "sign_ins", state)


async def _end_sign_ins(job: jobs.JobContext, subject_id: UUID) -> Redis:
    """End every web session and app sign-in in the shared store (again at the last step: one
    begun before the account was marked erased is ended too)."""
    if job.store is None:
        raise jobs.JobError("no_shared_store")
    await sessions.end_all_sessions(job.store, subject_id)
    await app_tokens.revoke_all_for_user(job.store, subject_id)
    return job.store


async def _tickets(job: jobs.JobContext, subject_id: UUID, state: State) -> None:
    pattern = (await traces_of(subject_id)).pattern()
    walk_ins = [UUID(str(ident)) for ident in state.get("walk_ins", [])]
    while True:
        async with in_transaction():
            batch = (
                await Ticket.select_for_update()
                .filter(requester_id=subject_id)
                .order_by("id")
                .limit(BATCH)
            )
            if not batch and walk_ins:
                batch = (
                    await Ticket.select_for_update()
                    .filter(walk_in_id__in=walk_ins)
                    .order_by("id")
                    .limit(BATCH)
                )
            if batch:
                for ticket in batch:
                    await _pseudonymise_ticket(ticket, subject_id, pattern)
            else:
                # What they wrote on tickets that are not theirs (a staff member's replies).
                written = (
                    await TicketMessage.select_for_update()
                    .filter(author_id=subject_id)
                    .order_by("id")
                    .limit(BATCH)
                )
                if not written:
                    await _done(job, subject_id, "tickets", state)
                    return
                for message in written:
                    await _unauthor(message, pattern)
            await job.renew()


async def _pseudonymise_ticket(
    ticket: Ticket, subject_id: UUID, pattern: re.Pattern[str] | None
) -> None:
    """Keep the ticket for the team, without its requester: sealed under its own key now."""
    ticket.requester_id = None
    ticket.walk_in_id = None
    ticket.requester_name = None
    ticket.requester_email = None
    ticket.requester_email_index = None
    ticket.awaiting_requester = False
    if ticket.subject is not None:
        ticket.subject = scrub(pattern, ticket.subject)
    await ticket.save(
        update_fields=[
            "requester_id",
            "walk_in_id",
            "requester_name",
            "requester_email",
            "requester_email_index",
            "awaiting_requester",
            "subject",
        ]
    )
    theirs = await TicketMessage.select_for_update().filter(
        ticket_id=ticket.id, author_id=subject_id
    )
    for message in theirs:
        await _unauthor(message, pattern)


async def _unauthor(message: TicketMessage, pattern: re.Pattern[str] | None) -> None:
    """A message of the subject's, kept without its author: sealed under its ticket's key."""
    message.author_id = None
    if message.body is not None:
        message.body = scrub(pattern, message.body)
    await message.save(update_fields=["author_id", "body"])


def _sweep_models() -> list[type[Entity]]:
    return key_management.encrypted_models()


async def _texts(job: jobs.JobContext, subject_id: UUID, state: State) -> None:
    pattern = (await traces_of(subject_id)).pattern()
    own = {subject_id, *(UUID(str(ident)) for ident in state.get("walk_ins", []))}
    tables = [model._meta.db_table for model in _sweep_models()]
    table = str(state.get("sweep_table") or tables[0])
    after = UUID(str(state["sweep_after"])) if state.get("sweep_after") else None
    for model in _sweep_models()[tables.index(table) :]:
        while pattern is not None:
            async with in_transaction():
                query = model.select_for_update().order_by("id").limit(BATCH)
                if after is not None:
                    query = query.filter(id__gt=after)
                batch = await query
                if not batch:
                    break
                for row in batch:
                    await _scrub_row(row, own, pattern)
                after = batch[-1].id
                await job.checkpoint(
                    "tickets",
                    **(state | {"sweep_table": model._meta.db_table, "sweep_after": after}),
                )
        after = None
    state.pop("sweep_table", None)
    state.pop("sweep_after", None)
    async with in_transaction():
        await _done(job, subject_id, "texts", state)


async def _scrub_row(row: Entity, own: set[UUID], pattern: re.Pattern[str]) -> None:
    try:
        subject = row.data_subject()
    except ValueError:
        return
    if subject in own:  # shredded with the subject's keys
        return
    changed = []
    for attribute, _ in type(row).encrypted_columns():
        value = getattr(row, attribute)
        if isinstance(value, str) and pattern.search(value):
            setattr(row, attribute, scrub(pattern, value))
            changed.append(attribute)
    if not changed:
        return
    if isinstance(row, Notice) and "address" in changed:
        # A mail to the subject's address that has not left: it never will.
        row.link = None
        if row.mail_status in (MailStatus.PENDING, MailStatus.SENDING):
            row.mail_status = MailStatus.CANCELLED
        changed += ["link", "mail_status"]
    await row.save(update_fields=changed)


async def _consents(job: jobs.JobContext, subject_id: UUID, state: State) -> None:
    async with in_transaction():
        entries = await ConsentEntry.filter(user_id=subject_id).order_by("created_at", "id")
        visitors = sorted({entry.visitor_id for entry in entries if entry.visitor_id})
        latest: dict[Any, str] = {}
        for entry in entries:
            latest[entry.purpose] = entry.policy_version
        await ConsentEntry.filter(user_id=subject_id).delete()
        if visitors:
            await ConsentEntry.filter(visitor_id__in=visitors).delete()
        proofs = [
            ConsentEntry(
                id=uuid4(),
                user_id=subject_id,
                purpose=purpose,
                granted=False,
                policy_version=version,
                source=ConsentSource.ERASURE,
            )
            for purpose, version in latest.items()
        ]
        if proofs:
            await ConsentEntry.bulk_create(proofs)
        state["visitors"] = [*state.get("visitors", []), *_visitor_subjects(visitors)]
        await _done(job, subject_id, "consents", state)


def _visitor_subjects(visitor_ids: Iterable[str]) -> list[UUID]:
    """The data-key subjects of these visitors (their random id is a UUID)."""
    found = []
    for visitor_id in visitor_ids:
        try:
            found.append(UUID(visitor_id))
        except ValueError:
            continue
    return found


async def _account(job: jobs.JobContext, subject_id: UUID, state: State) -> None:
    walk_ins = [UUID(str(ident)) for ident in state.get("walk_ins", [])]
    async with in_transaction():
        for model in (
            ExternalIdentity,
            SignInSession,
            PaymentMethod,
            Notice,
            NoticePreference,
            AccountToken,
        ):
            await model.filter(user_id=subject_id).delete()
        exports = await Export.filter(subject_id=subject_id).values_list("id", flat=True)
        await ExportPart.filter(export_id__in=list(exports)).delete()
        await Export.filter(subject_id=subject_id).delete()
        if walk_ins:
            await Ticket.filter(walk_in_id__in=walk_ins).update(walk_in_id=None)
            await WalkInRequester.filter(id__in=walk_ins).delete()
        user = await User.select_for_update().get(id=subject_id)
        user.name = ""
        user.email = ""
        user.phone = None
        user.username = None
        user.date_of_birth = None
        user.locale = "en"
        user.time_zone = "UTC"
        user.roles = []
        user.team_id = None
        await user.save(
            update_fields=[
                "name",
                "email",
                "phone",
                "username",
                "date_of_birth",
                "locale",
                "time_zone",
                "roles",
                "team_id",
                "updated_at",
            ]
        )
        await _done(job, subject_id, "account", state)


async def _keys(job: jobs.JobContext, subject_id: UUID, state: State) -> None:
    store = await _end_sign_ins(job, subject_id)
    subjects = [
        subject_id,
        *(UUID(str(ident)) for ident in state.get("walk_ins", [])),
        *(UUID(str(ident)) for ident in state.get("visitors", [])),
    ]
    await key_management.destroy_and_broadcast(store, subjects)
    async with in_transaction():
        await audit.record(
            ANONYMOUS,
            action=AuditAction.ERASURE_COMPLETE,
            entity="User",
            entity_id=subject_id,
            subject_id=subject_id,
        )
        await job.checkpoint("keys", **state)


# In order; a test may wrap them (tests/erasure_pause.py) to stop a worker between two.
STEPS: list[tuple[str, StepFunction]] = [
    ("sign_ins", _sign_ins),
    ("tickets", _tickets),
    ("texts", _texts),
    ("consents", _consents),
    ("account", _account),
    ("keys", _keys),
]


@jobs.handler(KIND, while_restricted=True)
async def erasure_job(job: jobs.JobContext) -> None:
    """Erase the subject of a completed erasure request, resuming after the last step done."""
    request = await PrivacyRequest.get_or_none(id=UUID(str(job.payload["request"])))
    if request is None or request.status != PrivacyRequestStatus.COMPLETED:
        raise jobs.JobError("request_not_completed")
    subject_id = request.subject_id
    names = [name for name, _ in STEPS]
    last = str(job.progress.get("step", ""))
    start = names.index(last) + 1 if last in names else 0
    told = job.payload.get("notice")
    if start == 0 and job.sends_mail and told and not await mail.has_left(UUID(str(told))):
        # Its first step takes the address the mail saying "done" goes to: that mail leaves
        # first (retried with backoff; the mail's own attempts are bounded, so this wait is).
        raise jobs.JobError("notice_not_sent")
    if last == "tickets" and job.progress.get("sweep_table"):
        start = names.index("texts")
    for name, run in STEPS[start:]:
        if await legal.is_held(subject_id):
            raise jobs.Park()
        state = {key: value for key, value in job.progress.items() if key != "step"}
        await run(job, subject_id, state)
        logger.info("erasure job %s: step %s done", job.id, name)


# --- children (P29) ----------------------------------------------------------------------


async def open_for_child(
    principal: Principal, user: User, reason: str, outcome: str, due_at: datetime
) -> PrivacyRequest:
    """The erasure request no one made, of an account staff found to be a child's (in the
    caller's transaction, the account locked and restricted already): opened in progress with
    the reason, then carried out as a completed one is (or blocked by a hold)."""
    now = datetime.now(UTC)
    request = PrivacyRequest(
        subject_id=user.id,
        kind=PrivacyRequestKind.ERASURE,
        status=PrivacyRequestStatus.IN_PROGRESS,
        details=reason,
        received_at=now,
        due_at=due_at,
        channel=PrivacyRequestChannel.CHILD_ACCOUNT,
        registered_by_id=principal.user_id,
    )
    await request.save()
    await requests.opened(
        principal,
        request,
        PrivacyRequestAction.REGISTERED,
        note=reason,
        notice=requests.CHILD_ACCOUNT_NOTICE,
    )
    await order(principal, request, outcome)
    return request
