"""Objection (P27): an objection to marketing or analytics takes effect at submission, without
the officer, recorded in the consent ledger; the request still goes through the workflow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from models import AuditEvent, ConsentEntry, Notice, PrivacyRequest, UsageCount
from privacy import marketing
from tests.helpers import Api, user_by_email
from tests.test_privacy_workflow import CUSTOMER, NOTICES, OFFICER, AsUser, notice_kinds, ok

SUBMIT = """mutation($input: SubmitPrivacyRequestInput!) { submitPrivacyRequest(input: $input) {
  __typename
  ... on PrivacyRequestSuccess { request { id kind status duplicateOf { id } } }
  ... on UserError { code message }
  ... on InvalidInputError { field } } }"""
CONSENT = """mutation($p: ConsentPurpose!) { grantConsent(input: {purpose: $p}) { __typename } }"""
MY_CONSENTS = "{ myConsents { purpose granted objected } }"
USAGE = """mutation($at: DateTime!) { recordUsage(input: {feature: "tickets.list", at: $at}) {
  ... on RecordUsageSuccess { counted } } }"""


async def _object(api: Api, targets: list[str] | None, kind: str = "OBJECTION") -> dict[str, Any]:
    given: dict[str, Any] = {"kind": kind, "details": "I object"}
    if targets is not None:
        given["objectTo"] = targets
    answer: dict[str, Any] = (await api.gql(SUBMIT, {"input": given}))["data"][
        "submitPrivacyRequest"
    ]
    return answer


async def _consents(api: Api) -> dict[str, tuple[bool, bool]]:
    states = (await api.gql(MY_CONSENTS))["data"]["myConsents"]
    return {s["purpose"]: (s["granted"], s["objected"]) for s in states}


async def _counted(api: Api) -> bool:
    at = datetime.now(UTC).isoformat()
    counted: bool = (await api.gql(USAGE, {"at": at}))["data"]["recordUsage"]["counted"]
    return counted


@pytest.mark.promise("P27")
async def test_an_objection_stops_marketing_and_analytics_at_once_and_is_in_the_ledger(
    as_user: AsUser,
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    for purpose in ("MARKETING_EMAIL", "MARKETING_COOKIES", "STATISTICS"):
        await customer_api.gql(CONSENT, {"p": purpose})
    assert await marketing.still_eligible(customer.id)
    assert await _counted(customer_api) is True
    last = await AuditEvent.all().order_by("-seq").first()
    before = last.seq if last else 0

    answer = await _object(customer_api, ["MARKETING", "ANALYTICS"])

    assert answer["__typename"] == "PrivacyRequestSuccess", answer
    request = answer["request"]
    assert (request["kind"], request["status"]) == ("OBJECTION", "RECEIVED")
    # In effect at once, before any officer acted.
    assert not await marketing.still_eligible(customer.id)
    assert await _counted(customer_api) is False
    assert (await UsageCount.get(feature="tickets.list")).events == 1
    consents = await _consents(customer_api)
    for purpose in ("MARKETING_EMAIL", "MARKETING_COOKIES", "STATISTICS"):
        assert consents[purpose] == (False, True), purpose
    assert consents["PREFERENCES"] == (False, False)
    objections = await ConsentEntry.filter(user_id=customer.id, objection=True)
    assert sorted(e.purpose for e in objections) == [
        "marketing_cookies",
        "marketing_email",
        "statistics",
    ]
    assert all(not e.granted for e in objections)
    events = await AuditEvent.filter(seq__gt=before).order_by("seq")
    recorded = [(e.action, e.entity, e.subject_id) for e in events]
    assert sorted(recorded) == sorted(
        [("consent.object", "ConsentEntry", customer.id)] * 3
        + [("privacy_request.submit", "PrivacyRequest", customer.id)]
    )
    assert {e.entity_id for e in events if e.action == "consent.object"} == {
        str(e.id) for e in objections
    }

    # The request still goes through the workflow, for the record, with the subject told.
    gid = request["id"]
    await ok(officer, "verifyIdentity", {"requestId": gid, "method": "SIGNED_IN_SESSION"})
    await ok(officer, "startPrivacyRequest", {"requestId": gid})
    done = await ok(
        officer,
        "completePrivacyRequest",
        {"requestId": gid, "outcome": "Your objection is recorded and in effect."},
    )
    assert done["status"] == "COMPLETED"
    assert await notice_kinds(customer) == [
        "privacy_request.received",
        "privacy_request.identity_verified",
        "privacy_request.started",
        "privacy_request.completed",
    ]
    shown = [n["kind"] for n in (await customer_api.gql(NOTICES))["data"]["myNotices"]]
    assert shown[0] == "privacy_request.completed"
    assert (await _consents(customer_api))["STATISTICS"] == (False, True)


@pytest.mark.promise("P27")
async def test_objecting_again_writes_no_second_entry_and_links_the_duplicate(
    as_user: AsUser,
) -> None:
    customer_api = await as_user(CUSTOMER)
    customer = await user_by_email(CUSTOMER)
    first = await _object(customer_api, ["ANALYTICS"])
    second = await _object(customer_api, ["ANALYTICS", "ANALYTICS"])
    assert second["request"]["status"] == "DUPLICATE"
    assert second["request"]["duplicateOf"] == {"id": first["request"]["id"]}
    assert await ConsentEntry.filter(user_id=customer.id, objection=True).count() == 1
    assert await AuditEvent.filter(action="consent.object").count() == 1


async def test_an_objection_request_without_object_to_waits_for_the_officer(
    as_user: AsUser,
) -> None:
    customer_api = await as_user(CUSTOMER)
    answer = await _object(customer_api, None)
    assert answer["__typename"] == "PrivacyRequestSuccess"
    assert await ConsentEntry.filter(objection=True).count() == 0


async def _state() -> tuple[Any, ...]:
    return (
        await PrivacyRequest.all().count(),
        await ConsentEntry.all().count(),
        await Notice.all().count(),
        await AuditEvent.all().count(),
    )


@pytest.mark.parametrize(
    ("kind", "targets", "error"),
    [
        ("ACCESS", ["MARKETING"], "objectTo"),
        ("RESTRICTION", ["ANALYTICS"], "objectTo"),
        ("OBJECTION", [], "objectTo"),
    ],
    ids=["access", "restriction", "empty"],
)
async def test_object_to_outside_an_objection_or_empty_is_refused_and_changes_nothing(
    as_user: AsUser, kind: str, targets: list[str], error: str
) -> None:
    customer_api = await as_user(CUSTOMER)
    before = await _state()
    answer = await _object(customer_api, targets, kind)
    assert (answer["__typename"], answer["code"], answer["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        error,
    )
    assert await _state() == before


async def test_an_unknown_objection_target_is_refused_by_the_schema(as_user: AsUser) -> None:
    customer_api = await as_user(CUSTOMER)
    before = await _state()
    body = await customer_api.gql(
        SUBMIT, {"input": {"kind": "OBJECTION", "objectTo": ["PROFILING_FOR_ADS"]}}
    )
    assert body.get("data") is None
    assert len(body["errors"]) == 1
    assert await _state() == before


async def test_an_anonymous_caller_cannot_object_through_a_request(as_user: AsUser) -> None:
    before = await _state()
    answer = await _object(await as_user(None), ["MARKETING"])
    assert answer["__typename"] == "AuthenticationRequiredError"
    assert await _state() == before


REGISTER = """mutation($input: RegisterPrivacyRequestInput!) {
  registerPrivacyRequest(input: $input) {
  __typename
  ... on PrivacyRequestSuccess { request { kind status channel } }
  ... on UserError { code }
  ... on InvalidInputError { field } } }"""


@pytest.mark.promise("P27")
@pytest.mark.promise("P28")
async def test_an_objection_written_to_the_contact_address_takes_effect_at_registration(
    as_user: AsUser,
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    await customer_api.gql(CONSENT, {"p": "MARKETING_EMAIL"})
    assert await marketing.still_eligible(customer.id)
    given = {
        "kind": "OBJECTION",
        "subjectEmail": CUSTOMER,
        "receivedAt": datetime.now(UTC).isoformat(),
        "verificationMethod": "STAFF_KNOWN_CONTACT",
        "objectTo": ["MARKETING"],
    }
    answer = (await officer.gql(REGISTER, {"input": given}))["data"]["registerPrivacyRequest"]
    assert answer == {
        "__typename": "PrivacyRequestSuccess",
        "request": {
            "kind": "OBJECTION",
            "status": "IDENTITY_VERIFIED",
            "channel": "CONTACT_ADDRESS",
        },
    }
    assert not await marketing.still_eligible(customer.id)
    entries = await ConsentEntry.filter(user_id=customer.id, objection=True)
    assert sorted((e.purpose, e.source) for e in entries) == [
        ("marketing_cookies", "staff_on_behalf"),
        ("marketing_email", "staff_on_behalf"),
    ]
    officer_user = await user_by_email(OFFICER)
    objected = await AuditEvent.filter(action="consent.object")
    assert {(e.actor_id, e.subject_id) for e in objected} == {(officer_user.id, customer.id)}

    before = await _state()
    wrong = (await officer.gql(REGISTER, {"input": given | {"kind": "ERASURE"}}))["data"]
    assert wrong["registerPrivacyRequest"] == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "field": "objectTo",
    }
    assert await _state() == before
