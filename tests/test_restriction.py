"""Restriction of processing (P25) end to end: a completed restriction request restricts its
subject (kept and readable, not processed: no marketing, no analytics, no staff edits, jobs
parked but for the rights the subject keeps); the officer lifts it, the subject is told first."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise import Tortoise

import settings as config
from models import (
    AuditEvent,
    Job,
    JobState,
    MailStatus,
    Notice,
    PrivacyRequest,
    User,
    UserStatus,
)
from privacy import jobs, mail, marketing, restriction
from schema.relay import to_global_id
from tests.helpers import Api, user_by_email
from tests.smtp_server import Mailbox
from tests.test_privacy_workflow import (
    ADMIN,
    AGENT,
    CUSTOMER,
    CUSTOMER2,
    NOTICES,
    OFFICER,
    AsUser,
    ok,
    submit,
)

PROCESSING = "test.restricted_processing"
KEPT_RIGHT = "test.restricted_kept_right"
RAN: list[str] = []


@jobs.handler(PROCESSING)
async def _processing(job: jobs.JobContext) -> None:
    RAN.append(PROCESSING)


@jobs.handler(KEPT_RIGHT, while_restricted=True)
async def _kept_right(job: jobs.JobContext) -> None:
    RAN.append(KEPT_RIGHT)


LIFT = """mutation($input: LiftRestrictionInput!) { liftRestriction(input: $input) {
  __typename
  ... on PrivacyRequestSuccess { request { id kind status history { action note } } }
  ... on UserError { code message }
  ... on InvalidInputError { field }
  ... on IllegalTransitionError { field }
  ... on NotFoundError { field } } }"""
GRANT_ROLE = """mutation($u: ID!) { grantRole(userId: $u, role: AGENT) { __typename
  ... on UserError { code message } ... on AccountRestrictedError { field } } }"""
CONSENT = """mutation($p: ConsentPurpose!) { grantConsent(input: {purpose: $p}) { __typename } }"""
USAGE = """mutation($at: DateTime!) { recordUsage(input: {feature: "tickets.list", at: $at}) {
  __typename ... on RecordUsageSuccess { counted } } }"""


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


@pytest.fixture(autouse=True)
def _forget_runs() -> None:
    RAN.clear()


async def _restricted(customer_api: Api, officer: Api, *, by_staff: bool) -> dict[str, Any]:
    """A restriction request of the customer's, submitted (or registered by staff), verified,
    started and completed."""
    if by_staff:
        customer = await user_by_email(CUSTOMER)
        request = await ok(
            officer,
            "registerPrivacyRequest",
            {
                "kind": "RESTRICTION",
                "verificationMethod": "STAFF_KNOWN_CONTACT",
                "subjectId": to_global_id("User", customer.id),
                "receivedAt": datetime.now(UTC).isoformat(),
            },
        )
    else:
        request = await submit(customer_api, "RESTRICTION", "Stop using my data while I dispute it")
        await ok(officer, "verifyIdentity", {"requestId": request["id"], "method": "EMAIL_LINK"})
    await ok(officer, "startPrivacyRequest", {"requestId": request["id"]})
    return await ok(
        officer,
        "completePrivacyRequest",
        {"requestId": request["id"], "outcome": "Your account's processing is restricted."},
    )


async def _lift(officer: Api, user: User, reason: str) -> dict[str, Any]:
    given = {"userId": to_global_id("User", user.id), "reason": reason}
    answer: dict[str, Any] = (await officer.gql(LIFT, {"input": given}))["data"]["liftRestriction"]
    return answer


async def _actions(after: int) -> list[tuple[str, Any]]:
    events = await AuditEvent.filter(seq__gt=after).order_by("seq")
    return [(e.action, e.actor_id) for e in events if not e.action.startswith("personal_data")]


async def _last_seq() -> int:
    last = await AuditEvent.all().order_by("-seq").first()
    return last.seq if last else 0


@pytest.mark.promise("P25")
@pytest.mark.parametrize("by_staff", [False, True], ids=["submitted", "registered_by_staff"])
async def test_a_completed_restriction_keeps_the_data_but_stops_its_processing_until_lifted(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings, by_staff: bool
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    admin = await as_user(ADMIN)
    customer = await user_by_email(CUSTOMER)
    officer_user = await user_by_email(OFFICER)
    for purpose in ("MARKETING_EMAIL", "STATISTICS"):
        assert (await customer_api.gql(CONSENT, {"p": purpose}))["data"]["grantConsent"]
    assert await marketing.still_eligible(customer.id)
    processing = await jobs.enqueue(PROCESSING, subject_id=customer.id)
    before = await _last_seq()

    completed = await _restricted(customer_api, officer, by_staff=by_staff)

    assert completed["status"] == "COMPLETED"
    stored = await User.get(id=customer.id)
    assert stored.status == UserStatus.RESTRICTED
    assert (await _actions(before))[-2:] == [
        ("privacy_request.complete", officer_user.id),
        ("restriction.apply", officer_user.id),
    ]
    # The subject still signs in and reads everything: profile, requests, notices, tickets.
    mine = await customer_api.gql(
        "{ me { name email status } myPrivacyRequests { kind status outcome }"
        " tickets(first: 5) { edges { node { subject } } } }"
    )
    assert "errors" not in mine, mine
    assert mine["data"]["me"] == {
        "name": "Carla Customer",
        "email": CUSTOMER,
        "status": "RESTRICTED",
    }
    assert {"kind": "RESTRICTION", "status": "COMPLETED"}.items() <= mine["data"][
        "myPrivacyRequests"
    ][0].items()
    assert mine["data"]["tickets"]["edges"] != []
    kinds = [n["kind"] for n in (await customer_api.gql(NOTICES))["data"]["myNotices"]]
    assert kinds[0] == "privacy_request.completed"
    # No marketing, no analytics.
    assert not await marketing.still_eligible(customer.id)
    assert customer.id not in await marketing.eligible_batch(None, 100)
    now = datetime.now(UTC).isoformat()
    assert (await customer_api.gql(USAGE, {"at": now}))["data"]["recordUsage"] == {
        "__typename": "RecordUsageSuccess",
        "counted": False,
    }
    # No staff edits: refused with its own code, nothing changed.
    refused = (await admin.gql(GRANT_ROLE, {"u": to_global_id("User", customer.id)}))["data"]
    assert refused["grantRole"] == {
        "__typename": "AccountRestrictedError",
        "code": "ACCOUNT_RESTRICTED",
        "message": "This account's processing is restricted: it cannot be changed until the "
        "restriction is lifted.",
        "field": "userId",
    }
    assert (await User.get(id=customer.id)).roles == customer.roles
    # Its jobs are parked; a job of a right the subject keeps (an export, an erasure) runs.
    kept = await jobs.enqueue(KEPT_RIGHT, subject_id=customer.id)
    report = await jobs.Runner().run_due()
    assert (report.parked, report.done) == (1, 1)
    assert RAN == [KEPT_RIGHT]
    assert (await Job.get(id=processing.id)).state == JobState.PARKED
    assert (await Job.get(id=kept.id)).state == JobState.DONE
    assert (await jobs.Runner().run_due()).parked == 0  # a parked job is not claimed again

    # Lifting: the subject is told first, with the reason; the restriction stays meanwhile.
    reason = "The dispute is settled: canary-lift-reason-5c2"
    before_lift = await _last_seq()
    lifted = await _lift(officer, customer, reason)
    assert lifted["__typename"] == "PrivacyRequestSuccess", lifted
    assert lifted["request"]["history"][-1] == {"action": "RESTRICTION_LIFTED", "note": reason}
    assert lifted["request"]["status"] == "COMPLETED"
    assert (await User.get(id=customer.id)).status == UserStatus.RESTRICTED
    shown = (await customer_api.gql(NOTICES))["data"]["myNotices"][0]
    assert shown["kind"] == "privacy_request.restriction_lifted"
    assert shown["subject"] == "The restriction of your data's processing is being lifted"
    assert reason not in shown["body"]
    raw = await Tortoise.get_connection("default").execute_query_dict('SELECT * FROM "notices"')
    assert reason not in repr(raw)
    # Not before the mail went: the lifting job waits.
    assert (await jobs.Runner().run_due()).retried == 1
    assert (await User.get(id=customer.id)).status == UserStatus.RESTRICTED
    assert RAN == [KEPT_RIGHT]

    await mail.deliver_due(mail_settings)
    (told,) = [m for m in smtp.received if "being lifted" in str(m.message["Subject"])]
    assert told.recipients == [CUSTOMER]
    assert reason in told.message.get_content()
    report = await jobs.Runner().run_due(now=datetime.now(UTC) + timedelta(minutes=5))

    assert report.done == 2
    assert (await User.get(id=customer.id)).status == UserStatus.ACTIVE
    assert RAN == [KEPT_RIGHT, PROCESSING]
    assert (await Job.get(id=processing.id)).state == JobState.DONE
    assert await _actions(before_lift) == [
        ("restriction.lift", officer_user.id),
        ("restriction.lifted", None),
    ]
    lift_events = await AuditEvent.filter(seq__gt=before_lift, action__startswith="restriction")
    assert {e.subject_id for e in lift_events} == {customer.id}
    assert all(reason not in repr(e.field_names) for e in lift_events)
    assert await marketing.still_eligible(customer.id)
    assert (await customer_api.gql(USAGE, {"at": now}))["data"]["recordUsage"]["counted"] is True


@pytest.mark.promise("P25")
async def test_without_a_mail_transport_the_lifting_waits_for_the_notice_alone(
    as_user: AsUser, app: Any
) -> None:
    settings: config.Settings = app.state.settings
    assert settings.smtp_url is None  # no SMTP_URL: no mail ever leaves this deployment
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    await _restricted(customer_api, officer, by_staff=False)
    processing = await jobs.enqueue(PROCESSING, subject_id=customer.id)
    assert (await jobs.runner(settings).run_due()).parked == 1

    lifted = await _lift(officer, customer, "Settled")
    assert lifted["__typename"] == "PrivacyRequestSuccess", lifted
    # Told before it is lifted: the notice is written in the officer's transaction.
    shown = (await customer_api.gql(NOTICES))["data"]["myNotices"][0]
    assert shown["kind"] == "privacy_request.restriction_lifted"
    assert (await User.get(id=customer.id)).status == UserStatus.RESTRICTED

    report = await jobs.runner(settings).run_due()

    assert (report.done, report.retried, report.failed) == (2, 0, 0)
    assert (await User.get(id=customer.id)).status == UserStatus.ACTIVE
    (lift_job,) = await Job.filter(kind=restriction.LIFT_JOB)
    assert (lift_job.state, lift_job.attempts) == (JobState.DONE, 1)
    assert (await Job.get(id=processing.id)).state == JobState.DONE
    assert RAN == [PROCESSING]
    notice = await Notice.get(kind="privacy_request.restriction_lifted")
    assert notice.mail_status == MailStatus.PENDING  # kept, should a transport come later
    assert (await AuditEvent.filter(action="restriction.lifted").count()) == 1


@pytest.mark.promise("P25")
async def test_a_disabled_account_restricted_meanwhile_returns_restricted(as_user: AsUser) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    request = await submit(customer_api, "RESTRICTION")
    await ok(officer, "verifyIdentity", {"requestId": request["id"], "method": "EMAIL_LINK"})
    await ok(officer, "startPrivacyRequest", {"requestId": request["id"]})
    await User.filter(id=customer.id).update(
        status=UserStatus.DISABLED, status_before_disable=UserStatus.ACTIVE
    )
    await ok(officer, "completePrivacyRequest", {"requestId": request["id"], "outcome": "Done."})
    stored = await User.get(id=customer.id)
    assert (stored.status, stored.status_before_disable) == (
        UserStatus.DISABLED,
        UserStatus.RESTRICTED,
    )
    assert restriction.is_restricted(stored)
    assert await jobs.is_restricted(customer.id)


async def test_completing_another_kind_of_request_restricts_nothing(as_user: AsUser) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    request = await submit(customer_api, "ACCESS")
    await ok(officer, "verifyIdentity", {"requestId": request["id"], "method": "EMAIL_LINK"})
    await ok(officer, "startPrivacyRequest", {"requestId": request["id"]})
    await ok(officer, "completePrivacyRequest", {"requestId": request["id"], "outcome": "Sent."})
    assert (await user_by_email(CUSTOMER)).status == UserStatus.ACTIVE
    assert not await AuditEvent.filter(action="restriction.apply").exists()


async def _state() -> tuple[Any, ...]:
    users = await User.all().order_by("id").values_list("id", "status", "roles")
    return (
        users,
        await PrivacyRequest.all().order_by("id").values_list("id", "status"),
        await Notice.all().count(),
        await Job.all().count(),
        await AuditEvent.all().count(),
    )


@pytest.mark.parametrize(
    ("reason", "field"),
    [("", "reason"), ("   ", "reason"), ("Settled\u202e", "reason"), ("x" * 5001, "reason")],
    ids=["empty", "blank", "bidi", "too_long"],
)
async def test_lifting_with_a_bad_reason_is_refused_and_changes_nothing(
    as_user: AsUser, reason: str, field: str
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    await _restricted(customer_api, officer, by_staff=False)
    before = await _state()
    answer = await _lift(officer, await user_by_email(CUSTOMER), reason)
    assert (answer["__typename"], answer["code"], answer["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        field,
    )
    assert await _state() == before


async def test_lifting_what_is_not_restricted_or_is_being_lifted_is_refused(
    as_user: AsUser,
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    other = await user_by_email(CUSTOMER2)
    before = await _state()
    answer = await _lift(officer, other, "Nothing to lift")
    assert (answer["__typename"], answer["code"], answer["field"]) == (
        "IllegalTransitionError",
        "ILLEGAL_TRANSITION",
        "userId",
    )
    assert await _state() == before

    await _restricted(customer_api, officer, by_staff=False)
    customer = await user_by_email(CUSTOMER)
    assert (await _lift(officer, customer, "Settled"))["__typename"] == "PrivacyRequestSuccess"
    pending = await _state()
    again = await _lift(officer, customer, "Settled again")
    assert (again["__typename"], again["message"]) == (
        "IllegalTransitionError",
        "This restriction is being lifted already.",
    )
    assert await _state() == pending


@pytest.mark.parametrize("caller", [CUSTOMER, AGENT, ADMIN, None])
async def test_only_the_privacy_officer_lifts_a_restriction(
    as_user: AsUser, caller: str | None
) -> None:
    customer_api = await as_user(CUSTOMER)
    await _restricted(customer_api, await as_user(OFFICER), by_staff=False)
    before = await _state()
    answer = await _lift(await as_user(caller), await user_by_email(CUSTOMER), "Settled")
    expected = "AuthenticationRequiredError" if caller is None else "ForbiddenError"
    assert answer["__typename"] == expected
    assert await _state() == before
    assert (await user_by_email(CUSTOMER)).status == UserStatus.RESTRICTED


def test_jobs_declare_whether_they_run_while_their_subject_is_restricted() -> None:
    assert KEPT_RIGHT in jobs.WHILE_RESTRICTED
    assert PROCESSING not in jobs.WHILE_RESTRICTED
    assert restriction.LIFT_JOB in jobs.WHILE_RESTRICTED
    assert "privacy.restriction" in jobs.KIND_MODULES


async def test_a_restricted_subjects_job_is_parked_and_a_job_of_nobody_runs(app: Any) -> None:
    user = User(name="Rita Restricted", status=UserStatus.RESTRICTED)
    user.set_email("rita@example.com")
    await user.save()
    parked = await jobs.enqueue(PROCESSING, subject_id=user.id)
    nobodys = await jobs.enqueue(PROCESSING)
    report = await jobs.Runner().run_due()
    assert (report.parked, report.done) == (1, 1)
    stored = await Job.get(id=parked.id)
    assert (stored.state, stored.attempts, stored.lease_owner) == (JobState.PARKED, 0, None)
    assert (await Job.get(id=nobodys.id)).state == JobState.DONE
    assert await jobs.release_parked(user.id) == 1
    assert (await Job.get(id=parked.id)).state == JobState.QUEUED
