"""Legal holds and disclosures (P13): placed, lifted and recorded by staff with the legal scope
only, each audited; a hold is what erasure and retention ask about (``held_subjects``); a
disclosure shows in its subject's export once they may be told, never before."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from tortoise import Tortoise

from auth.principal import ANONYMOUS
from auth.scopes import ROLE_SCOPES, Scope
from models import (
    AuditEvent,
    Job,
    JobState,
    LegalDisclosure,
    LegalHold,
    Notice,
    PrivacyRequest,
    PrivacyRequestStatus,
    Role,
    User,
    UserStatus,
)
from privacy import erasure, jobs, legal
from schema.relay import from_global_id, to_global_id
from tests.helpers import user_by_email
from tests.test_exports import export_json, ready_export
from tests.test_privacy_workflow import (
    ADMIN,
    AGENT,
    CUSTOMER,
    CUSTOMER2,
    OFFICER,
    AsUser,
    ok,
    submit,
)

LEAD = "lead@example.com"
DEMO_ROLES = {
    CUSTOMER: Role.CUSTOMER,
    AGENT: Role.AGENT,
    LEAD: Role.TEAM_LEAD,
    OFFICER: Role.PRIVACY_OFFICER,
    ADMIN: Role.ADMINISTRATOR,
}
ANSWER = """
  __typename
  ... on UserError { code message }
  ... on InvalidInputError { field }
  ... on NotFoundError { field }"""
PLACE = (
    """mutation($input: PlaceLegalHoldInput!) { placeLegalHold(input: $input) {
  ... on LegalHoldSuccess { hold { id authority reference reason reviewOn active liftedAt } }"""
    + ANSWER
    + "} }"
)
LIFT = (
    """mutation($id: ID!) { liftLegalHold(holdId: $id) {
  ... on LegalHoldSuccess { hold { id active liftedAt } }
  ... on IllegalTransitionError { field }"""
    + ANSWER
    + "} }"
)
RECORD = (
    """mutation($input: RecordLegalDisclosureInput!) { recordLegalDisclosure(input: $input) {
  ... on RecordLegalDisclosureSuccess { disclosure { id authority legalBasis dataCategories
    disclosedOn subjectMayBeToldOn } }"""
    + ANSWER
    + "} }"
)
HOLDS_OF = """query($u: ID!) { legalHoldsOf(userId: $u) { id authority reason active } }"""
DISCLOSURES_OF = """query($u: ID!) { legalDisclosuresOf(userId: $u) { id authority } }"""
REASON = "Tax inquiry canary-hold-reason-7f3"
REFERENCE = "HMRC-canary-ref-91a"


def hold_input(user: User, **changes: Any) -> dict[str, Any]:
    given = {
        "userId": to_global_id("User", user.id),
        "authority": "HM Revenue and Customs",
        "reference": REFERENCE,
        "reason": REASON,
        "reviewOn": (datetime.now(UTC).date() + timedelta(days=90)).isoformat(),
    }
    return given | changes


def disclosure_input(user: User, **changes: Any) -> dict[str, Any]:
    given = {
        "userId": to_global_id("User", user.id),
        "authority": "Metropolitan Police",
        "legalBasis": "Production order canary-basis-2d1",
        "dataCategories": ["tickets", "sign-in records"],
        "disclosedOn": datetime.now(UTC).date().isoformat(),
    }
    return given | changes


async def _audited(action: str) -> list[AuditEvent]:
    return await AuditEvent.filter(action=action).order_by("seq")


@pytest.mark.promise("P13")
async def test_the_privacy_officer_places_and_lifts_a_hold_each_audited_and_sealed(
    as_user: AsUser,
) -> None:
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    placed = (await officer.gql(PLACE, {"input": hold_input(customer)}))["data"]["placeLegalHold"]
    assert placed["__typename"] == "LegalHoldSuccess", placed
    hold = placed["hold"]
    assert (hold["reason"], hold["reference"], hold["active"]) == (REASON, REFERENCE, True)
    assert await legal.held_subjects() == {customer.id}
    assert await legal.is_held(customer.id)
    listed = (await officer.gql(HOLDS_OF, {"u": to_global_id("User", customer.id)}))["data"]
    assert listed["legalHoldsOf"] == [
        {"id": hold["id"], "authority": "HM Revenue and Customs", "reason": REASON, "active": True}
    ]
    (event,) = await _audited("legal_hold.place")
    officer_user = await user_by_email(OFFICER)
    assert (event.actor_id, event.subject_id, event.entity_id) == (
        officer_user.id,
        customer.id,
        str(from_global_id(hold["id"])[1]),
    )
    raw = await Tortoise.get_connection("default").execute_query_dict('SELECT * FROM "legal_holds"')
    assert REASON not in repr(raw)
    assert REFERENCE not in repr(raw)
    events = await Tortoise.get_connection("default").execute_query_dict(
        'SELECT * FROM "audit_events"'
    )
    assert REASON not in repr(events)

    lifted = (await officer.gql(LIFT, {"id": hold["id"]}))["data"]["liftLegalHold"]
    assert lifted["__typename"] == "LegalHoldSuccess", lifted
    assert lifted["hold"]["active"] is False
    assert await legal.held_subjects() == set()
    assert not await legal.is_held(customer.id)
    assert len(await _audited("legal_hold.lift")) == 1
    again = (await officer.gql(LIFT, {"id": hold["id"]}))["data"]["liftLegalHold"]
    assert (again["__typename"], again["field"]) == ("IllegalTransitionError", "holdId")
    assert len(await _audited("legal_hold.lift")) == 1


@pytest.mark.promise("P13")
async def test_held_subjects_answers_the_subjects_asked_about_at_a_moment(demo: None) -> None:
    held, lifted, free = [await user_by_email(email) for email in (CUSTOMER, CUSTOMER2, AGENT)]
    for user in (held, lifted):
        await legal.place_hold(
            ANONYMOUS, user.id, authority="Court", reference="r", reason="x", review_on=date.max
        )
    (lifted_hold,) = await LegalHold.filter(subject_id=lifted.id)
    before_lift = datetime.now(UTC)
    await legal.lift_hold(ANONYMOUS, lifted_hold)
    assert await legal.held_subjects() == {held.id}
    assert await legal.held_subjects([lifted.id, free.id]) == set()
    assert await legal.held_subjects([held.id, free.id]) == {held.id}
    assert await legal.held_subjects([]) == set()
    assert await legal.held_subjects(now=before_lift) == {held.id, lifted.id}
    assert await legal.held_subjects(now=datetime(2000, 1, 1, tzinfo=UTC)) == set()


LEGAL_CASES = sorted(DEMO_ROLES, key=lambda email: DEMO_ROLES[email].value)


@pytest.mark.promise("P13")
@pytest.mark.parametrize("caller", LEGAL_CASES)
async def test_only_roles_with_the_legal_scope_touch_holds_and_disclosures(
    as_user: AsUser, caller: str
) -> None:
    allowed = Scope.LEGAL_HOLDS in ROLE_SCOPES[DEMO_ROLES[caller]]
    api = await as_user(caller)
    subject = await user_by_email(CUSTOMER2)
    placed = (await api.gql(PLACE, {"input": hold_input(subject)}))["data"]["placeLegalHold"]
    recorded = (await api.gql(RECORD, {"input": disclosure_input(subject)}))["data"][
        "recordLegalDisclosure"
    ]
    holds = await api.gql(HOLDS_OF, {"u": to_global_id("User", subject.id)})
    disclosures = await api.gql(DISCLOSURES_OF, {"u": to_global_id("User", subject.id)})
    if allowed:
        assert placed["__typename"] == "LegalHoldSuccess"
        assert recorded["__typename"] == "RecordLegalDisclosureSuccess"
        assert len(holds["data"]["legalHoldsOf"]) == 1
        assert len(disclosures["data"]["legalDisclosuresOf"]) == 1
        return
    assert (placed["code"], recorded["code"]) == ("FORBIDDEN", "FORBIDDEN")
    for body, name in ((holds, "legalHoldsOf"), (disclosures, "legalDisclosuresOf")):
        assert body["data"][name] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert await LegalHold.all().count() == 0
    assert await LegalDisclosure.all().count() == 0
    assert await AuditEvent.filter(action__startswith="legal_").count() == 0


async def test_a_hold_needs_a_review_date_ahead_and_a_disclosure_a_date_not_ahead(
    as_user: AsUser,
) -> None:
    officer = await as_user(OFFICER)
    subject = await user_by_email(CUSTOMER)
    today = datetime.now(UTC).date()
    past = hold_input(subject, reviewOn=today.isoformat())
    refused = (await officer.gql(PLACE, {"input": past}))["data"]["placeLegalHold"]
    assert (refused["code"], refused["field"]) == ("INVALID_INPUT", "reviewOn")
    ahead = disclosure_input(subject, disclosedOn=(today + timedelta(days=1)).isoformat())
    refused = (await officer.gql(RECORD, {"input": ahead}))["data"]["recordLegalDisclosure"]
    assert (refused["code"], refused["field"]) == ("INVALID_INPUT", "disclosedOn")
    early = disclosure_input(subject, subjectMayBeToldOn=(today - timedelta(days=1)).isoformat())
    refused = (await officer.gql(RECORD, {"input": early}))["data"]["recordLegalDisclosure"]
    assert (refused["code"], refused["field"]) == ("INVALID_INPUT", "subjectMayBeToldOn")
    assert await LegalHold.all().count() == await LegalDisclosure.all().count() == 0


@pytest.mark.promise("P13")
async def test_a_disclosure_shows_in_the_export_once_its_subject_may_be_told(
    as_user: AsUser,
) -> None:
    officer = await as_user(OFFICER)
    subject = await user_by_email(CUSTOMER)
    today = datetime.now(UTC).date()
    told_on = {"now": None, "today": today, "later": today + timedelta(days=1)}
    ids: dict[str, UUID] = {}
    for name, day in told_on.items():
        given = disclosure_input(
            subject,
            authority=f"Authority {name}",
            subjectMayBeToldOn=day.isoformat() if day else None,
        )
        answer = (await officer.gql(RECORD, {"input": given}))["data"]["recordLegalDisclosure"]
        assert answer["__typename"] == "RecordLegalDisclosureSuccess", answer
        ids[name] = from_global_id(answer["disclosure"]["id"])[1]
    assert len(await _audited("legal_disclosure.record")) == 3

    export, _ = await ready_export(subject)
    document = await export_json(export)
    shown = sorted(entry["authority"] for entry in document["legalDisclosures"])
    assert shown == ["Authority now", "Authority today"]
    assert "Authority later" not in json.dumps(document)
    # The day it may be told, it is.
    tomorrow = await legal.told_disclosures(subject.id, today + timedelta(days=1))
    assert {row.id for row in tomorrow} == set(ids.values())


# --- a hold blocks erasure (P13 with P24) -----------------------------------------------

COMPLETE = """mutation($input: CompletePrivacyRequestInput!) {
  completePrivacyRequest(input: $input) { __typename
  ... on PrivacyRequestSuccess { request { id status history { action note } } }
  ... on UserError { code message } } }"""
MY_REQUESTS = "{ myPrivacyRequests { id kind status history { action note } } }"


async def _erasure_in_progress(as_user: AsUser) -> tuple[Any, Any, str]:
    customer_api, officer = await as_user(CUSTOMER), await as_user(OFFICER)
    request = await submit(customer_api, "ERASURE", "Erase me")
    await ok(officer, "verifyIdentity", {"requestId": request["id"], "method": "EMAIL_LINK"})
    await ok(officer, "startPrivacyRequest", {"requestId": request["id"]})
    return customer_api, officer, str(request["id"])


@pytest.mark.promise("P13")
@pytest.mark.promise("P24")
async def test_an_erasure_under_a_hold_is_blocked_with_its_reason_then_completes_once_lifted(
    app: Any, as_user: AsUser
) -> None:
    customer_api, officer, request_id = await _erasure_in_progress(as_user)
    customer = await user_by_email(CUSTOMER)
    placed = (await officer.gql(PLACE, {"input": hold_input(customer)}))["data"]["placeLegalHold"]
    given = {"requestId": request_id, "outcome": "Your data is erased."}
    blocked = (await officer.gql(COMPLETE, {"input": given}))["data"]["completePrivacyRequest"]
    assert blocked["__typename"] == "PrivacyRequestSuccess", blocked
    assert blocked["request"]["status"] == "IN_PROGRESS"
    last = blocked["request"]["history"][-1]
    assert last["action"] == "ERASURE_BLOCKED"
    assert REASON in last["note"]
    # The subject sees why, in the request's history and a notice.
    mine = (await customer_api.gql(MY_REQUESTS))["data"]["myPrivacyRequests"]
    (erasure_request,) = [row for row in mine if row["kind"] == "ERASURE"]
    assert erasure_request["history"][-1]["action"] == "ERASURE_BLOCKED"
    assert await Notice.filter(user_id=customer.id, kind="privacy_request.erasure_blocked").exists()
    assert await Job.filter(kind=erasure.KIND).count() == 0
    again = (await officer.gql(COMPLETE, {"input": given}))["data"]["completePrivacyRequest"]
    assert again["code"] == "ILLEGAL_TRANSITION"
    assert (await User.get(id=customer.id)).status == UserStatus.ACTIVE

    lifted = (await officer.gql(LIFT, {"id": placed["hold"]["id"]}))["data"]["liftLegalHold"]
    assert lifted["__typename"] == "LegalHoldSuccess", lifted
    request = await PrivacyRequest.get(id=from_global_id(request_id)[1])
    assert request.status == PrivacyRequestStatus.COMPLETED
    assert (await jobs.runner(app.state.settings, app.state.store).run_due()).done == 1
    assert (await User.get(id=customer.id)).status == UserStatus.ERASED
    assert await AuditEvent.filter(action="erasure.complete", subject_id=customer.id).count() == 1


@pytest.mark.promise("P13")
async def test_a_hold_placed_after_the_erasure_was_ordered_parks_it_until_lifted(
    app: Any, as_user: AsUser
) -> None:
    _, officer, request_id = await _erasure_in_progress(as_user)
    customer = await user_by_email(CUSTOMER)
    given = {"requestId": request_id, "outcome": "Your data is erased."}
    done = (await officer.gql(COMPLETE, {"input": given}))["data"]["completePrivacyRequest"]
    assert done["request"]["status"] == "COMPLETED"
    placed = (await officer.gql(PLACE, {"input": hold_input(customer)}))["data"]["placeLegalHold"]
    runner = jobs.runner(app.state.settings, app.state.store)
    assert (await runner.run_due()).parked == 1
    (job,) = await Job.filter(kind=erasure.KIND)
    assert job.state == JobState.PARKED
    assert (await User.get(id=customer.id)).status == UserStatus.ACTIVE
    await officer.gql(LIFT, {"id": placed["hold"]["id"]})
    assert (await runner.run_due()).done == 1
    assert (await User.get(id=customer.id)).status == UserStatus.ERASED


LEGAL_TEXT = [
    ("placeLegalHold", PLACE, hold_input, field) for field in ("authority", "reference", "reason")
] + [
    ("recordLegalDisclosure", RECORD, disclosure_input, field)
    for field in ("authority", "legalBasis", "dataCategories")
]


@pytest.mark.parametrize(("mutation", "document", "base", "field"), LEGAL_TEXT)
async def test_legal_texts_refuse_the_characters_every_text_refuses(
    as_user: AsUser, mutation: str, document: str, base: Any, field: str
) -> None:
    officer = await as_user(OFFICER)
    subject = await user_by_email(CUSTOMER)
    bad = "Court \u202e order"
    given = base(subject, **{field: [bad] if field == "dataCategories" else bad})
    refused = (await officer.gql(document, {"input": given}))["data"][mutation]
    assert (refused["code"], refused["field"]) == ("INVALID_INPUT", field)
    assert await LegalHold.all().count() == await LegalDisclosure.all().count() == 0


async def test_a_childs_flag_reason_refuses_the_characters_every_text_refuses(
    as_user: AsUser,
) -> None:
    admin = await as_user(ADMIN)
    subject = await user_by_email(CUSTOMER)
    refused = (
        await admin.gql(
            """mutation($input: FlagChildAccountInput!) { flagChildAccount(input: $input) {
              __typename ... on InvalidInputError { code field } } }""",
            {"input": {"userId": to_global_id("User", subject.id), "reason": "12 \x1b years"}},
        )
    )["data"]["flagChildAccount"]
    assert refused == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "field": "reason",
    }
    assert (await User.get(id=subject.id)).status == UserStatus.ACTIVE
