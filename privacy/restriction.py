"""Restriction of processing (P25, GDPR Art. 18): the account's data kept, but not processed.

A completed restriction request restricts its subject (``restrict``): their account's status
becomes restricted (a disabled account keeps it as the status to return to). While restricted
they still sign in and read everything OCIS holds about them, but no marketing reaches them
(privacy/marketing.py mails active accounts only), no usage of theirs is counted
(privacy/usage.py), staff may not edit their profile (resolvers/restriction.py) and their jobs
are parked (privacy/jobs.py), but for an export or an erasure.

The officer lifts it in two moves, so that its subject is told before it is lifted (Art.
18(3)): the decision (``decide_lift``, in the officer's transaction) writes a step of the
restriction request with its reason, the subject's notice and a job; the job (``lift``) lifts
the restriction only once that notice's mail has been sent (or given up, the notice being shown
in-platform all along; without a mail transport, at once, on the notice alone), then queues the
parked jobs again.
"""

from __future__ import annotations

from uuid import UUID

from tortoise.transactions import in_transaction

from auth.principal import ANONYMOUS, Principal
from models import (
    Job,
    JobState,
    PrivacyRequest,
    PrivacyRequestAction,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    PrivacyRequestStep,
    User,
    UserStatus,
)
from privacy import audit, jobs, mail, requests
from privacy.audit_actions import AuditAction

LIFT_JOB = "restriction.lift"
# The lifting waits for the notice's mail, retried with the jobs' growing delays (30 s,
# doubling, at most 6 h): this many attempts wait for a mail for well over a week.
LIFT_ATTEMPTS = 40
_STATUS = ["User.status"]


def is_restricted(user: User) -> bool:
    """Whether this account's processing is restricted (a disabled one's included)."""
    if user.status == UserStatus.DISABLED:
        return user.status_before_disable == UserStatus.RESTRICTED
    return user.status == UserStatus.RESTRICTED


async def restrict(principal: Principal, request: PrivacyRequest) -> bool:
    """Restrict the subject of a restriction request being completed (in its transaction);
    answer whether that changed their account (an erased one, or one restricted already,
    stays as it is)."""
    if request.kind != PrivacyRequestKind.RESTRICTION:
        raise ValueError("only a restriction request restricts processing")
    user = await User.select_for_update().get(id=request.subject_id)
    if user.status == UserStatus.ACTIVE:
        user.status = UserStatus.RESTRICTED
        changed = ["status"]
    elif user.status == UserStatus.DISABLED and user.status_before_disable == UserStatus.ACTIVE:
        user.status_before_disable = UserStatus.RESTRICTED
        changed = ["status_before_disable"]
    else:
        return False
    await user.save(update_fields=[*changed, "updated_at"])
    await audit.record(
        principal,
        action=AuditAction.RESTRICTION_APPLY,
        entity="User",
        entity_id=user.id,
        subject_id=user.id,
        field_names=_STATUS,
    )
    return True


class NotRestricted(ValueError):
    """The account's processing is not restricted (or no restriction request of theirs was
    completed); nothing changed."""


class LiftPending(ValueError):
    """The restriction is being lifted already (its subject is being told); nothing changed."""


async def restricting_request(subject_id: UUID) -> PrivacyRequest | None:
    """The subject's completed restriction request, the newest, locked."""
    return (
        await PrivacyRequest.select_for_update()
        .filter(
            subject_id=subject_id,
            kind=PrivacyRequestKind.RESTRICTION,
            status=PrivacyRequestStatus.COMPLETED,
        )
        .order_by("-closed_at", "-id")
        .first()
    )


async def lift_pending(subject_id: UUID) -> bool:
    """Whether a lifting of this subject's restriction waits for them to be told."""
    return await Job.filter(
        kind=LIFT_JOB, subject_id=subject_id, state__in=(JobState.QUEUED, JobState.RUNNING)
    ).exists()


async def decide_lift(
    principal: Principal, subject_id: UUID, reason: str
) -> tuple[PrivacyRequest, PrivacyRequestStep]:
    """The officer's decision to lift a restriction (in the caller's transaction): a step of
    the request that put it in place, with the reason; the subject's notice; and the job that
    lifts it once they are told. NotRestricted or LiftPending when there is nothing to lift."""
    user = await User.select_for_update().get_or_none(id=subject_id)
    if user is None or not is_restricted(user):
        raise NotRestricted("This account's processing is not restricted.")
    if await lift_pending(subject_id):
        raise LiftPending("This restriction is being lifted already.")
    request = await restricting_request(subject_id)
    if request is None:
        raise NotRestricted("No completed restriction request of this account was found.")
    step, notice = await requests.take_and_tell(
        principal, request, PrivacyRequestAction.RESTRICTION_LIFTED, note=reason
    )
    await jobs.enqueue(
        LIFT_JOB,
        {"subject": subject_id, "notice": notice.id, "step": step.id},
        subject_id=subject_id,
        dedupe_key=f"{LIFT_JOB}:{step.id}",
        max_attempts=LIFT_ATTEMPTS,
    )
    return request, step


@jobs.handler(LIFT_JOB, while_restricted=True)
async def lift(job: jobs.JobContext) -> None:
    """Lift the restriction once its subject was told; then their parked jobs run again.

    Told is the notice's mail gone, or, where no mail transport is configured (no SMTP_URL),
    the in-platform notice alone: that mail can never leave, and waiting for it would keep
    the restriction in place after the officer lifted it. The mail stays queued meanwhile."""
    subject_id = UUID(str(job.payload["subject"]))
    if job.sends_mail and not await mail.has_left(UUID(str(job.payload["notice"]))):
        raise jobs.JobError("notice_not_sent")
    async with in_transaction():
        user = await User.select_for_update().get_or_none(id=subject_id)
        if user is not None and is_restricted(user):
            if user.status == UserStatus.DISABLED:
                user.status_before_disable = UserStatus.ACTIVE
                changed = ["status_before_disable"]
            else:
                user.status = UserStatus.ACTIVE
                changed = ["status"]
            await user.save(update_fields=[*changed, "updated_at"])
            await audit.record(
                ANONYMOUS,
                action=AuditAction.RESTRICTION_LIFTED,
                entity="User",
                entity_id=user.id,
                subject_id=user.id,
                field_names=_STATUS,
            )
        await jobs.release_parked(subject_id)
