"""Privacy requests (GDPR rights): submitting and following one's own; the officer's queue
and steps; requests staff register from the contact address (P28).

The workflow's rules (which step may follow which, the deadline) are privacy/requests.py's;
these use cases validate, lock the request and call it, in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from auth import scoping
from auth.principal import Principal, parse_roles
from auth.scopes import Scope, scopes_for
from models import (
    OPEN_PRIVACY_REQUEST_STATUSES,
    ConsentSource,
    IdentityVerificationMethod,
    PrivacyRequest,
    PrivacyRequestAction,
    PrivacyRequestChannel,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    PrivacyRequestStep,
    User,
    UserStatus,
    crypto,
)
from privacy import audit, erasure, objection, rectification, requests, restriction
from privacy.audit_actions import AuditAction
from privacy.objection import ObjectionTarget
from resolvers import consents, validation
from resolvers import rectification as corrections_input
from resolvers.errors import IllegalTransition, InvalidInput, NotAllowed, NotFound
from resolvers.pagination import Page, open_position, page_size, seal_position
from resolvers.rectification import CorrectionDecision, ProposedCorrection
from resolvers.users import require_user

__all__ = ["ObjectionTarget"]

RESPONSE_WINDOW = requests.RESPONSE_WINDOW
MAX_DETAILS = 5_000
MAX_NOTE = 2_000
MAX_OUTCOME = 5_000
# How far back staff may date a request they register (a mail found late is still dated).
MAX_REGISTRATION_AGE = timedelta(days=365)
# A sender's clock may run a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)
QUEUE_CURSOR = "PrivacyRequestQueue"


def _cleaned(value: str | None, field: str, max_length: int) -> str | None:
    if value is None or not value.strip():
        return None
    return validation.text(value, field, max_length=max_length, multiline=True)


def _required(value: str, field: str, max_length: int) -> str:
    cleaned = _cleaned(value, field, max_length)
    if cleaned is None:
        raise InvalidInput(f"Write the {field}.", field=field)
    return cleaned


def require_officer(principal: Principal) -> UUID:
    user_id = require_user(principal)
    if not principal.has(Scope.PRIVACY_REQUESTS):
        raise NotAllowed("Handling privacy requests needs the privacy officer's scope.")
    return user_id


async def _open_one(subject_id: UUID, kind: PrivacyRequestKind) -> PrivacyRequest | None:
    """The subject's oldest open request of this kind, the subject's row locked meanwhile so
    that two submissions at once cannot both be the first."""
    await User.select_for_update().filter(id=subject_id).only("id").first()
    return (
        await PrivacyRequest.select_for_update()
        .filter(subject_id=subject_id, kind=kind, status__in=OPEN_PRIVACY_REQUEST_STATUSES)
        .order_by("received_at", "id")
        .first()
    )


async def _merge_corrections(
    principal: Principal, duplicate: PrivacyRequest, original: PrivacyRequest
) -> None:
    """A duplicate rectification's corrections are not lost with it: they are added to the
    open request it joins (a field proposed again takes the later value), which the officer
    decides whole. The duplicate keeps its own as proposed, for the record."""
    later = rectification.loads(duplicate.corrections)
    if not later:
        return
    original.corrections = rectification.dumps(
        rectification.merged(rectification.loads(original.corrections), later)
    )
    await original.save(update_fields=["corrections"])
    note = f"Corrections added from a later request: {rectification.labels(later)}."
    await requests.corrections_merged(principal, original, note)


def _duplicate_notice(duplicate: PrivacyRequest) -> str | None:
    """The notice of a duplicate that adds corrections to the open request (None: the usual)."""
    return requests.CORRECTIONS_ADDED_NOTICE if rectification.loads(duplicate.corrections) else None


def _as_duplicate(request: PrivacyRequest, original: PrivacyRequest) -> None:
    request.status = PrivacyRequestStatus.DUPLICATE
    request.duplicate_of_id = original.id
    request.due_at = original.due_at
    request.closed_at = datetime.now(UTC)


def _submitted_fields(request: PrivacyRequest) -> list[str]:
    names = ["PrivacyRequest.kind"]
    if request.details is not None:
        names.append("PrivacyRequest.details")
    if request.corrections is not None:
        names.append("PrivacyRequest.corrections")
    if request.duplicate_of_id is not None:
        names.append("PrivacyRequest.duplicateOf")
    return names


def _check_objection(kind: PrivacyRequestKind, targets: Sequence[ObjectionTarget] | None) -> None:
    if targets is not None and kind != PrivacyRequestKind.OBJECTION:
        raise InvalidInput("Only an objection request objects to something.", field="objectTo")
    if targets is not None and not targets:
        raise InvalidInput("Name what you object to, or leave objectTo out.", field="objectTo")


@dataclass(frozen=True, slots=True)
class Objection:
    """What an objection request objects to (P27), and where it was made (for the ledger)."""

    targets: Sequence[ObjectionTarget]
    source: ConsentSource
    ip_address: str | None = None
    user_agent: str | None = None


async def submit_privacy_request(
    principal: Principal,
    kind: PrivacyRequestKind,
    details: str | None,
    corrections: Sequence[ProposedCorrection] | None = None,
    objection_to: Objection | None = None,
) -> PrivacyRequest:
    """Register a request to exercise a right; it is due one month after receipt.

    A second open request of the same kind is stored, linked to the first and closed as its
    duplicate; the answer is that linked row (``duplicateOf`` names the request in work). A
    duplicate rectification's corrections join the open one's, to be decided there.
    An objection to marketing or analytics (`objection_to`) takes effect at once, in the
    request's transaction: recorded in the consent ledger as an objection (P27).
    """
    subject_id = require_user(principal)
    _check_objection(kind, None if objection_to is None else objection_to.targets)
    cleaned = _cleaned(details, "details", MAX_DETAILS)
    proposed = corrections_input.proposed(kind, corrections)
    received = datetime.now(UTC)
    request = PrivacyRequest(
        subject_id=subject_id,
        kind=kind,
        details=cleaned,
        corrections=proposed,
        received_at=received,
        due_at=received + RESPONSE_WINDOW,
    )
    async with in_transaction():
        original = await _open_one(subject_id, kind)
        if original is not None:
            _as_duplicate(request, original)
        await request.save()
        if objection_to is not None:
            await consents.object_to(
                principal,
                subject_id,
                objection.purposes_of(objection_to.targets),
                objection_to.source,
                ip_address=objection_to.ip_address,
                user_agent=objection_to.user_agent,
            )
        await audit.record(
            principal,
            action=AuditAction.PRIVACY_REQUEST_SUBMIT,
            entity="PrivacyRequest",
            entity_id=request.id,
            subject_id=subject_id,
            field_names=sorted(_submitted_fields(request)),
        )
        await requests.opened(
            principal,
            request,
            PrivacyRequestAction.LINKED_AS_DUPLICATE
            if original
            else PrivacyRequestAction.SUBMITTED,
            notice=_duplicate_notice(request) if original else None,
        )
        if original is not None:
            await _merge_corrections(principal, request, original)
    return request


@dataclass(frozen=True, slots=True)
class Registration:
    """A request received at the contact address, as the staff member registers it."""

    kind: PrivacyRequestKind
    received_at: datetime
    verification_method: IdentityVerificationMethod
    subject_id: UUID | None = None
    subject_email: str | None = None
    details: str | None = None
    verification_note: str | None = None
    corrections: tuple[ProposedCorrection, ...] = ()
    # An objection written to the contact address takes effect at registration (P27).
    object_to: Sequence[ObjectionTarget] | None = None


async def _registered_subject(registration: Registration) -> UUID:
    if (registration.subject_id is None) == (registration.subject_email is None):
        raise InvalidInput("Name the subject by exactly one of subjectId or subjectEmail.")
    if registration.subject_id is not None:
        found = await User.get_or_none(id=registration.subject_id).only("id", "status")
        field = "subjectId"
    else:
        email = validation.email(registration.subject_email or "", "subjectEmail")
        found = await User.get_or_none(email_index=crypto.blind_index(email)).only("id", "status")
        field = "subjectEmail"
    if found is None or found.status == UserStatus.ERASED:
        raise NotFound("No account is known by this.", field=field)
    return found.id


async def register_privacy_request(
    principal: Principal, registration: Registration
) -> PrivacyRequest:
    """Register, for its subject, a request received at the contact address (P28): who
    registered it and how the identity was verified are recorded; due one month after receipt."""
    require_officer(principal)
    received = registration.received_at
    if received.tzinfo is None:
        raise InvalidInput("Give receivedAt with its time zone.", field="receivedAt")
    now = datetime.now(UTC)
    if received > now + CLOCK_SKEW:
        raise InvalidInput("A request cannot be received in the future.", field="receivedAt")
    if received < now - MAX_REGISTRATION_AGE:
        raise InvalidInput("A request received over a year ago cannot be registered.", "receivedAt")
    _check_objection(registration.kind, registration.object_to)
    details = _cleaned(registration.details, "details", MAX_DETAILS)
    note = _cleaned(registration.verification_note, "verificationNote", MAX_NOTE)
    proposed = corrections_input.proposed(registration.kind, registration.corrections)
    subject_id = await _registered_subject(registration)
    received = min(received.astimezone(UTC), now)
    request = PrivacyRequest(
        subject_id=subject_id,
        kind=registration.kind,
        details=details,
        corrections=proposed,
        received_at=received,
        due_at=received + RESPONSE_WINDOW,
        channel=PrivacyRequestChannel.CONTACT_ADDRESS,
        registered_by_id=principal.user_id,
    )
    async with in_transaction():
        original = await _open_one(subject_id, registration.kind)
        if original is not None:
            _as_duplicate(request, original)
        await request.save()
        if registration.object_to:
            await consents.object_to(
                principal,
                subject_id,
                objection.purposes_of(registration.object_to),
                ConsentSource.STAFF_ON_BEHALF,
                ip_address=None,
                user_agent=None,
            )
        await audit.record(
            principal,
            action=AuditAction.PRIVACY_REQUEST_REGISTER,
            entity="PrivacyRequest",
            entity_id=request.id,
            subject_id=subject_id,
            field_names=sorted(
                [*_submitted_fields(request), "PrivacyRequest.receivedAt", "PrivacyRequest.channel"]
            ),
        )
        if original is not None:
            await requests.opened(
                principal,
                request,
                PrivacyRequestAction.LINKED_AS_DUPLICATE,
                notice=_duplicate_notice(request),
            )
            await _merge_corrections(principal, request, original)
            return request
        await requests.opened(principal, request, PrivacyRequestAction.REGISTERED)
        request.verification_method = registration.verification_method
        await requests.verified_on_registration(principal, request, note)
    return request


async def my_privacy_requests(principal: Principal, limit: int = 100) -> list[PrivacyRequest]:
    subject_id = require_user(principal)
    return (
        await scoping.readable_privacy_requests(principal)
        .filter(subject_id=subject_id)
        .order_by("-received_at")
        .limit(limit)
    )


def _queue_cursor(request: PrivacyRequest) -> str:
    return seal_position(QUEUE_CURSOR, [request.due_at.isoformat(), str(request.id)])


async def privacy_request_queue(
    principal: Principal,
    *,
    status: PrivacyRequestStatus | None,
    first: int | None,
    after: str | None,
) -> Page[PrivacyRequest]:
    """The officer's queue: open requests (or those of one status) by due date, earliest
    first, so the overdue ones lead; one query for the page."""
    require_officer(principal)
    size = page_size(first)
    query = scoping.readable_privacy_requests(principal)
    if status is None:
        query = query.filter(status__in=OPEN_PRIVACY_REQUEST_STATUSES)
    else:
        query = query.filter(status=status)
    if after is not None:
        position = open_position(after, QUEUE_CURSOR)
        try:
            due, ident = datetime.fromisoformat(position[0]), UUID(position[1])
        except (IndexError, TypeError, ValueError) as exc:
            raise InvalidInput("This cursor is not one this API issued.", field="after") from exc
        query = query.filter(Q(due_at__gt=due) | Q(due_at=due, id__gt=ident))
    rows = await query.order_by("due_at", "id").limit(size + 1)
    return Page(rows[:size], len(rows) > size, cursor_of=_queue_cursor)


def is_overdue(request: PrivacyRequest, now: datetime | None = None) -> bool:
    """Still open past its deadline."""
    moment = now or datetime.now(UTC)
    return request.status in OPEN_PRIVACY_REQUEST_STATUSES and request.due_at < moment


Changes = Callable[[PrivacyRequest], dict[str, object]]
Effect = Callable[[PrivacyRequest], Awaitable[object]]


async def _step(
    principal: Principal,
    request_id: UUID,
    action: PrivacyRequestAction,
    *,
    note: str | None = None,
    changes: Changes | None = None,
    effect: Effect | None = None,
) -> PrivacyRequest:
    """Lock the request, check the step may follow its status, then apply it with the
    changes computed from the locked row (and its `effect`, in the same transaction)."""
    async with in_transaction():
        request = (
            await scoping.readable_privacy_requests(principal)
            .select_for_update()
            .get_or_none(id=request_id)
        )
        if request is None:
            raise NotFound("No such privacy request.", field="requestId")
        try:
            requests.check(request, action)
        except requests.IllegalStep as refused:
            raise IllegalTransition(str(refused), field="requestId") from None
        changed = changes(request) if changes is not None else {}
        for attribute, value in changed.items():
            setattr(request, attribute, value)
        await requests.take(principal, request, action, note=note, changed=tuple(changed))
        if effect is not None:
            await effect(request)
    return request


async def assign_privacy_request(
    principal: Principal, request_id: UUID, assignee_id: UUID | None
) -> PrivacyRequest:
    """Give an open request to a privacy officer (the caller, when none is named)."""
    me = require_officer(principal)
    assignee = await User.get_or_none(id=assignee_id or me, status=UserStatus.ACTIVE).only(
        "id", "roles"
    )
    if assignee is None or Scope.PRIVACY_REQUESTS not in scopes_for(parse_roles(assignee.roles)):
        raise InvalidInput("Assign requests to an active privacy officer.", field="assigneeId")
    chosen = assignee.id
    return await _step(
        principal,
        request_id,
        PrivacyRequestAction.ASSIGNED,
        changes=lambda _: {"assignee_id": chosen},
    )


async def verify_identity(
    principal: Principal, request_id: UUID, method: IdentityVerificationMethod, note: str | None
) -> PrivacyRequest:
    """Record how the requester was confirmed to be the subject; the request moves on."""
    require_officer(principal)
    cleaned = _cleaned(note, "note", MAX_NOTE)
    return await _step(
        principal,
        request_id,
        PrivacyRequestAction.IDENTITY_VERIFIED,
        note=cleaned,
        changes=lambda _: {"verification_method": method},
    )


async def start_privacy_request(
    principal: Principal,
    request_id: UUID,
    note: str | None = None,
    *,
    release_internal_notes: bool = False,
) -> PrivacyRequest:
    """Start work on a verified request; an access request's export is built now, with the
    internal notes on the subject's tickets if the officer releases them."""
    require_officer(principal)
    cleaned = _cleaned(note, "note", MAX_NOTE)

    def released(request: PrivacyRequest) -> dict[str, object]:
        if not release_internal_notes:
            return {}
        if request.kind != PrivacyRequestKind.ACCESS:
            raise InvalidInput(
                "Internal notes are released into an access request's export only.",
                field="releaseInternalNotes",
            )
        return {"internal_notes_released": True}

    return await _step(
        principal, request_id, PrivacyRequestAction.STARTED, note=cleaned, changes=released
    )


async def complete_privacy_request(
    principal: Principal, request_id: UUID, outcome: str
) -> PrivacyRequest:
    """Close a request in progress with its outcome, which its subject is told; a completed
    restriction request restricts its subject's processing (P25); a completed erasure request
    erases its subject (P24), unless a legal hold keeps it in progress, blocked (P13)."""
    require_officer(principal)
    cleaned = _required(outcome, "outcome", MAX_OUTCOME)
    erasing = await scoping.readable_privacy_requests(principal).get_or_none(
        id=request_id, kind=PrivacyRequestKind.ERASURE
    )
    if erasing is not None:
        return await _erase(principal, request_id, cleaned)

    def completed(request: PrivacyRequest) -> dict[str, object]:
        if request.corrections is not None:
            raise IllegalTransition(
                "A rectification is completed by deciding its corrections.", field="requestId"
            )
        return {"outcome": cleaned}

    async def carried_out(request: PrivacyRequest) -> None:
        if request.kind == PrivacyRequestKind.RESTRICTION:
            await restriction.restrict(principal, request)

    return await _step(
        principal,
        request_id,
        PrivacyRequestAction.COMPLETED,
        note=cleaned,
        changes=completed,
        effect=carried_out,
    )


async def _erase(principal: Principal, request_id: UUID, outcome: str) -> PrivacyRequest:
    async with in_transaction():
        request = (
            await scoping.readable_privacy_requests(principal)
            .select_for_update()
            .get_or_none(id=request_id)
        )
        if request is None:
            raise NotFound("No such privacy request.", field="requestId")
        try:
            requests.check(request, PrivacyRequestAction.COMPLETED)
        except requests.IllegalStep as refused:
            raise IllegalTransition(str(refused), field="requestId") from None
        if await _blocked_already(request):
            raise IllegalTransition(
                "This erasure waits for a legal hold to be lifted.", field="requestId"
            )
        await erasure.order(principal, request, outcome)
    return request


async def _blocked_already(request: PrivacyRequest) -> bool:
    last = await PrivacyRequestStep.filter(request_id=request.id).order_by("-at", "-id").first()
    return last is not None and last.action == PrivacyRequestAction.ERASURE_BLOCKED


async def decide_corrections(
    principal: Principal, request_id: UUID, given: Sequence[CorrectionDecision]
) -> PrivacyRequest:
    """Accept or refuse each correction a rectification in progress proposes (P23): the
    accepted ones are applied and audited, the outcome recorded and told, the request done."""
    require_officer(principal)
    async with in_transaction():
        request = (
            await scoping.readable_privacy_requests(principal)
            .select_for_update()
            .get_or_none(id=request_id)
        )
        if request is None:
            raise NotFound("No such privacy request.", field="requestId")
        if request.corrections is None:
            raise InvalidInput("This request proposes no corrections.", "requestId")
        try:
            requests.check(request, PrivacyRequestAction.COMPLETED)
        except requests.IllegalStep as refused:
            raise IllegalTransition(str(refused), field="requestId") from None
        decided = corrections_input.decisions(rectification.loads(request.corrections), given)
        await rectification.apply(principal, request, decided)
        told = rectification.outcome(decided)
        request.corrections = rectification.dumps(decided)
        request.outcome = told
        await requests.take(
            principal,
            request,
            PrivacyRequestAction.COMPLETED,
            note=told,
            changed=("corrections", "outcome"),
        )
    return request


async def reject_privacy_request(
    principal: Principal, request_id: UUID, reason: str
) -> PrivacyRequest:
    """Decline an open request; its reason is the outcome its subject is told."""
    require_officer(principal)
    cleaned = _required(reason, "reason", MAX_OUTCOME)
    return await _step(
        principal,
        request_id,
        PrivacyRequestAction.REJECTED,
        note=cleaned,
        changes=lambda _: {"outcome": cleaned},
    )


async def extend_privacy_request(
    principal: Principal, request_id: UUID, months: int, reason: str
) -> PrivacyRequest:
    """Move an open request's deadline by one or two months, once, telling its subject why."""
    require_officer(principal)
    if not 1 <= months <= requests.MAX_EXTENSION_MONTHS:
        raise InvalidInput(
            f"An extension is 1 to {requests.MAX_EXTENSION_MONTHS} months.", field="months"
        )
    cleaned = _required(reason, "reason", MAX_NOTE)

    def extended(request: PrivacyRequest) -> dict[str, object]:
        try:
            due = requests.extended_due_at(request, months)
        except requests.ExtensionRefused as refused:
            raise IllegalTransition(str(refused), field="requestId") from None
        return {"due_at": due, "extension_months": months}

    return await _step(
        principal, request_id, PrivacyRequestAction.EXTENDED, note=cleaned, changes=extended
    )


async def load_histories(
    principal: Principal, request_ids: list[UUID]
) -> list[list[PrivacyRequestStep]]:
    """Batch: each readable request's steps, oldest first, in one query."""
    grouped: dict[UUID, list[PrivacyRequestStep]] = defaultdict(list)
    steps = scoping.readable_privacy_request_steps(principal).filter(request_id__in=request_ids)
    for step in await steps.order_by("at", "id"):
        grouped[step.request_id].append(step)
    return [grouped.get(ident, []) for ident in request_ids]


async def load_privacy_requests(
    principal: Principal, request_ids: list[UUID]
) -> list[PrivacyRequest | None]:
    """Batch: readable requests by id, in key order."""
    rows = await scoping.readable_privacy_requests(principal).filter(id__in=request_ids)
    found = {row.id: row for row in rows}
    return [found.get(ident) for ident in request_ids]
