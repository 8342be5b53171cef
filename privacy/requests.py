"""The privacy-request workflow: which step may follow which, and what every step leaves.

A request moves received → identity verified → in progress → completed, or to rejected (with
a reason) from any open status; a second open request of a kind its subject already has open
is stored as a duplicate, linked to the first and closed. Assigning it and extending its
deadline (once, by one or two months: GDPR Art. 12(3)) keep its status. Every step is one
row of its history, one audit record (ids and field names) and one notice to its subject,
written in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from auth.principal import Principal
from models import (
    OPEN_PRIVACY_REQUEST_STATUSES,
    Notice,
    PrivacyRequest,
    PrivacyRequestAction,
    PrivacyRequestStatus,
    PrivacyRequestStep,
)
from privacy import audit, exports, notices
from privacy.audit_actions import AuditAction

# GDPR Art. 12(3) counts in months; OCIS counts a month as 30 days, receipt's window included.
MONTH = timedelta(days=30)
RESPONSE_WINDOW = MONTH
MAX_EXTENSION_MONTHS = 2

Status = PrivacyRequestStatus
Action = PrivacyRequestAction
OPEN = frozenset(OPEN_PRIVACY_REQUEST_STATUSES)


@dataclass(frozen=True, slots=True)
class Step:
    """An officer's step: the statuses it may start from, and the status it leads to
    (None: the status stays)."""

    from_statuses: frozenset[PrivacyRequestStatus]
    to_status: PrivacyRequestStatus | None
    audit_action: AuditAction
    notice: str


# The one table of allowed transitions.
STEPS: dict[PrivacyRequestAction, Step] = {
    Action.ASSIGNED: Step(
        OPEN, None, AuditAction.PRIVACY_REQUEST_ASSIGN, "privacy_request.assigned"
    ),
    Action.IDENTITY_VERIFIED: Step(
        frozenset({Status.RECEIVED}),
        Status.IDENTITY_VERIFIED,
        AuditAction.PRIVACY_REQUEST_VERIFY_IDENTITY,
        "privacy_request.identity_verified",
    ),
    Action.STARTED: Step(
        frozenset({Status.IDENTITY_VERIFIED}),
        Status.IN_PROGRESS,
        AuditAction.PRIVACY_REQUEST_START,
        "privacy_request.started",
    ),
    Action.COMPLETED: Step(
        frozenset({Status.IN_PROGRESS}),
        Status.COMPLETED,
        AuditAction.PRIVACY_REQUEST_COMPLETE,
        "privacy_request.completed",
    ),
    Action.REJECTED: Step(
        OPEN, Status.REJECTED, AuditAction.PRIVACY_REQUEST_REJECT, "privacy_request.rejected"
    ),
    Action.EXTENDED: Step(
        OPEN, None, AuditAction.PRIVACY_REQUEST_EXTEND, "privacy_request.extended"
    ),
    # A completed restriction request's restriction is lifted (privacy/restriction.py): the
    # subject is told, with the reason, before it takes effect.
    Action.RESTRICTION_LIFTED: Step(
        frozenset({Status.COMPLETED}),
        None,
        AuditAction.RESTRICTION_LIFT,
        "privacy_request.restriction_lifted",
    ),
    # An erasure the officer completed while a legal hold applies (privacy/erasure.py): it
    # stays in progress, the subject is told why, and it completes once the hold is lifted.
    Action.ERASURE_BLOCKED: Step(
        frozenset({Status.IN_PROGRESS}),
        None,
        AuditAction.ERASURE_BLOCK,
        "privacy_request.erasure_blocked",
    ),
}

# How a request begins: the notice its subject gets.
OPENING_NOTICES: dict[PrivacyRequestAction, str] = {
    Action.SUBMITTED: "privacy_request.received",
    Action.REGISTERED: "privacy_request.registered",
    Action.LINKED_AS_DUPLICATE: "privacy_request.duplicate",
}
# A duplicate rectification whose corrections were added to the open one: it asks for more, so
# its subject is told so rather than that nothing new was asked.
CORRECTIONS_ADDED_NOTICE = "privacy_request.corrections_added"
# A request no one made: staff found the account to be a child's (P29, privacy/erasure.py).
CHILD_ACCOUNT_NOTICE = "privacy_request.child_account"


def transitions() -> dict[PrivacyRequestStatus, frozenset[PrivacyRequestStatus]]:
    """Every status and the statuses a step may move it to (read off STEPS)."""
    allowed: dict[PrivacyRequestStatus, set[PrivacyRequestStatus]] = {s: set() for s in Status}
    for step in STEPS.values():
        if step.to_status is not None:
            for start in step.from_statuses:
                allowed[start].add(step.to_status)
    return {status: frozenset(targets) for status, targets in allowed.items()}


class IllegalStep(ValueError):
    """The step may not follow the request's current status (nothing was changed)."""


class ExtensionRefused(ValueError):
    """The deadline was extended already, or by more than the law allows."""


def check(request: PrivacyRequest, action: PrivacyRequestAction) -> PrivacyRequestStatus:
    """The status the step leads to; IllegalStep when it may not follow the current one."""
    step = STEPS[action]
    if request.status not in step.from_statuses:
        raise IllegalStep(f"A {request.status.value} request cannot be {action.value}.")
    return step.to_status or request.status


def extended_due_at(request: PrivacyRequest, months: int) -> datetime:
    """The deadline after extending it by `months`; refused past the one extension allowed."""
    if not 1 <= months <= MAX_EXTENSION_MONTHS:
        raise ExtensionRefused(f"An extension is one or {MAX_EXTENSION_MONTHS} months.")
    if request.extension_months:
        raise ExtensionRefused("This request's deadline was extended already.")
    return request.received_at + RESPONSE_WINDOW + months * MONTH


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


async def take(
    principal: Principal,
    request: PrivacyRequest,
    action: PrivacyRequestAction,
    *,
    note: str | None = None,
    changed: tuple[str, ...] = (),
) -> PrivacyRequestStep:
    """Apply an officer's step to a request locked by the caller: its status, its history,
    the audit record and the subject's notice. Other changes (`changed`, attribute names)
    the caller has set on the request already."""
    step, _ = await take_and_tell(principal, request, action, note=note, changed=changed)
    return step


async def take_and_tell(
    principal: Principal,
    request: PrivacyRequest,
    action: PrivacyRequestAction,
    *,
    note: str | None = None,
    changed: tuple[str, ...] = (),
) -> tuple[PrivacyRequestStep, Notice]:
    """``take``, answering the notice its subject is given too."""
    before = request.status
    after = check(request, action)
    now = datetime.now(UTC)
    request.status = after
    fields = ["status", *changed]
    if after not in OPEN:
        request.closed_at = now
        fields.append("closed_at")
    await request.save(update_fields=fields)
    if action is Action.STARTED:
        await exports.create_for(request)
    step = await _append(principal, request, action, before, note, now)
    spec = STEPS[action]
    notice = await _tell(request, spec.notice, step)
    await audit.record(
        principal,
        action=spec.audit_action,
        entity="PrivacyRequest",
        entity_id=request.id,
        subject_id=request.subject_id,
        field_names=_audited(changed, before != after, note is not None),
    )
    return step, notice


async def opened(
    principal: Principal,
    request: PrivacyRequest,
    action: PrivacyRequestAction,
    *,
    note: str | None = None,
    notice: str | None = None,
) -> PrivacyRequestStep:
    """The first step of a request the caller just saved, and its subject's notice (the one
    its opening action gives, unless `notice` names another)."""
    step = await _append(principal, request, action, None, note, request.received_at)
    await _tell(request, notice or OPENING_NOTICES[action], step)
    return step


async def corrections_merged(
    principal: Principal, original: PrivacyRequest, note: str
) -> PrivacyRequestStep:
    """The step of an open rectification whose corrections a duplicate's were added to (the
    caller saved them), and its audit record; the subject is told by the duplicate's notice."""
    step = await _append(
        principal, original, Action.CORRECTIONS_MERGED, original.status, note, datetime.now(UTC)
    )
    await audit.record(
        principal,
        action=AuditAction.PRIVACY_REQUEST_MERGE_CORRECTIONS,
        entity="PrivacyRequest",
        entity_id=original.id,
        subject_id=original.subject_id,
        field_names=_audited(("corrections",), status_changed=False, noted=True),
    )
    return step


async def verified_on_registration(
    principal: Principal, request: PrivacyRequest, note: str | None
) -> PrivacyRequestStep:
    """A registered request's identity check, made by the staff member who registered it."""
    return await take(
        principal, request, Action.IDENTITY_VERIFIED, note=note, changed=("verification_method",)
    )


async def _append(
    principal: Principal,
    request: PrivacyRequest,
    action: PrivacyRequestAction,
    before: PrivacyRequestStatus | None,
    note: str | None,
    at: datetime,
) -> PrivacyRequestStep:
    step = PrivacyRequestStep(
        request_id=request.id,
        subject_id=request.subject_id,
        action=action,
        from_status=before,
        to_status=request.status,
        actor_id=principal.user_id,
        at=at,
        note=note,
    )
    await step.save()
    return step


async def _tell(request: PrivacyRequest, kind: str, step: PrivacyRequestStep) -> Notice:
    return await notices.notify(
        request.subject_id,
        kind,
        received=_when(request.received_at),
        due=_when(request.due_at),
        step=str(step.id),
    )


_FIELD_NAMES = {
    "assignee_id": "PrivacyRequest.assignee",
    "verification_method": "PrivacyRequest.verificationMethod",
    "outcome": "PrivacyRequest.outcome",
    "corrections": "PrivacyRequest.corrections",
    "due_at": "PrivacyRequest.dueAt",
    "extension_months": "PrivacyRequest.extensionMonths",
    "internal_notes_released": "PrivacyRequest.internalNotesReleased",
}


def _audited(changed: tuple[str, ...], status_changed: bool, noted: bool) -> list[str]:
    names = [_FIELD_NAMES[name] for name in changed]
    if status_changed:
        names.append("PrivacyRequest.status")
    if noted:
        names.append("PrivacyRequestStep.note")
    return names
