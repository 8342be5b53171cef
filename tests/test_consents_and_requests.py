"""Consent grants and withdrawals, privacy requests, and the audit rows they leave."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from tortoise import Tortoise

from models import AuditEvent, ConsentEntry, PrivacyRequest, User, crypto
from privacy import audit_verify
from schema.relay import from_global_id
from tests.helpers import Api, letters_canary

AsUser = Callable[[str | None], Awaitable[Api]]

POLICY_VERSION = "2026-01"
PURPOSES = [
    "NECESSARY",
    "PREFERENCES",
    "STATISTICS",
    "MARKETING_COOKIES",
    "MARKETING_EMAIL",
    "TERMS",
    "PRIVACY_POLICY",
]
# Always on: recorded as information, shown granted, never a choice.
ALWAYS_ON = {"NECESSARY"}

MY_CONSENTS = "{ myConsents { purpose granted policyVersion updatedAt } }"
MY_LEDGER = "{ myConsentLedger { id purpose granted policyVersion source createdAt } }"
SET_CONSENT = """
mutation Set($input: ConsentInput!) {
  %s(input: $input) {
    __typename
    ... on ConsentSuccess { consent { purpose granted policyVersion updatedAt } }
    ... on AuthenticationRequiredError { code message }
  }
}
"""
SUBMIT = """
mutation Submit($input: SubmitPrivacyRequestInput!) {
  submitPrivacyRequest(input: $input) {
    __typename
    ... on PrivacyRequestSuccess {
      request { id kind status details receivedAt dueAt closedAt outcome }
    }
    ... on InvalidInputError { code field }
    ... on AuthenticationRequiredError { code }
  }
}
"""
MY_REQUESTS = "{ myPrivacyRequests { id kind status details receivedAt dueAt } }"
REQUEST_NODE = """
query Node($id: ID!) {
  node(id: $id) { __typename ... on PrivacyRequest { id kind status details dueAt } }
}
"""


async def user_id(email: str) -> uuid.UUID:
    user = await User.get(email_index=crypto.blind_index(email))
    return user.id


async def audit_events() -> list[AuditEvent]:
    return await AuditEvent.all().order_by("seq")


async def raw_audit_rows() -> list[str]:
    """The audit table as stored, one text per row, to search for values that must not be there."""
    _, rows = await Tortoise.get_connection("default").execute_query(
        'SELECT * FROM "audit_events" ORDER BY "seq"'
    )
    return [" | ".join(str(value) for value in dict(row).values()) for row in rows]


async def post(api: Api, query: str, variables: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The JSON body and the request id the server gave this request."""
    response = await api.post(query, variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body, response.headers["x-request-id"]


async def assert_chain_intact(expected_records: int) -> None:
    report = await audit_verify.verify_chain()
    assert report.intact, report.reason
    assert report.checked == expected_records


# --- consents ----------------------------------------------------------------------------


async def test_nothing_is_granted_until_the_person_decides(as_user: AsUser) -> None:
    customer = await as_user("customer@example.com")

    states = await customer.gql(MY_CONSENTS)
    ledger = await customer.gql(MY_LEDGER)

    assert states == {
        "data": {
            "myConsents": [
                {
                    "purpose": purpose,
                    "granted": purpose in ALWAYS_ON,
                    "policyVersion": None,
                    "updatedAt": None,
                }
                for purpose in PURPOSES
            ]
        }
    }
    assert ledger == {"data": {"myConsentLedger": []}}


@pytest.mark.parametrize("purpose", ["MARKETING_EMAIL", "STATISTICS"])
async def test_grants_and_withdrawals_apply_at_once_and_the_ledger_only_grows(
    as_user: AsUser, client: httpx.AsyncClient, purpose: str
) -> None:
    customer = await as_user("customer@example.com")
    customer_id = await user_id("customer@example.com")
    agent_canary = f"consent-agent-{letters_canary()}"
    client.headers["user-agent"] = agent_canary
    ledger: list[dict[str, Any]] = []
    audit_before = len(await audit_events())

    for step, granted in enumerate([True, False, True, False], start=1):
        mutation = "grantConsent" if granted else "withdrawConsent"
        body, request_id = await post(
            customer, SET_CONSENT % mutation, {"input": {"purpose": purpose}}
        )

        consent = body["data"][mutation]
        assert consent["__typename"] == "ConsentSuccess"
        assert {k: v for k, v in consent["consent"].items() if k != "updatedAt"} == {
            "purpose": purpose,
            "granted": granted,
            "policyVersion": POLICY_VERSION,
        }
        states = (await customer.gql(MY_CONSENTS))["data"]["myConsents"]
        assert {s["purpose"]: s["granted"] for s in states} == {
            p: (granted if p == purpose else p in ALWAYS_ON) for p in PURPOSES
        }
        assert [s["updatedAt"] for s in states if s["purpose"] == purpose] == [
            consent["consent"]["updatedAt"]
        ]
        entries = (await customer.gql(MY_LEDGER))["data"]["myConsentLedger"]
        assert len(entries) == step
        assert entries[1:] == ledger, "earlier ledger lines must never change"
        newest = entries[0]
        assert {k: v for k, v in newest.items() if k not in ("id", "createdAt")} == {
            "purpose": purpose,
            "granted": granted,
            "policyVersion": POLICY_VERSION,
            "source": "WEB",
        }
        assert newest["createdAt"] == consent["consent"]["updatedAt"]
        created = [datetime.fromisoformat(entry["createdAt"]) for entry in entries]
        assert created == sorted(created, reverse=True)
        ledger = entries
        assert await ConsentEntry.all().count() == step

        events = await audit_events()
        assert len(events) == audit_before + step
        event = events[-1]
        _, entry_id = from_global_id(newest["id"], "ConsentEntry")
        assert (event.action, event.entity, event.entity_id) == (
            f"consent.{'grant' if granted else 'withdraw'}",
            "ConsentEntry",
            str(entry_id),
        )
        assert (event.actor_id, event.subject_id) == (customer_id, customer_id)
        assert event.field_names == ["ConsentEntry.granted", "ConsentEntry.purpose"]
        assert (await ConsentEntry.get(id=entry_id)).purpose == purpose.lower()
        assert event.request_id == request_id

    stored = await ConsentEntry.all()
    assert {entry.user_agent for entry in stored} == {agent_canary}
    assert {entry.ip_address for entry in stored} == {"203.0.113.7"}
    for row in await raw_audit_rows():
        assert agent_canary not in row
        assert "203.0.113.7" not in row
    await assert_chain_intact(audit_before + 4)


@pytest.mark.parametrize("mutation", ["grantConsent", "withdrawConsent"])
async def test_an_anonymous_decision_is_a_visitors_never_an_accounts(
    as_user: AsUser, mutation: str
) -> None:
    anonymous = await as_user(None)

    body = await anonymous.gql(SET_CONSENT % mutation, {"input": {"purpose": "MARKETING_EMAIL"}})

    assert body["data"][mutation]["__typename"] == "ConsentSuccess"
    (entry,) = await ConsentEntry.all()
    assert entry.user_id is None
    assert entry.visitor_id is not None


@pytest.mark.parametrize("query", [MY_CONSENTS, MY_LEDGER, MY_REQUESTS])
async def test_anonymous_callers_have_no_consents_or_requests_to_read(
    as_user: AsUser, query: str
) -> None:
    anonymous = await as_user(None)

    body = await anonymous.gql(query)

    assert list(body["data"].values()) == [None]  # only the refused field is null
    assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAUTHENTICATED"]


async def test_one_persons_consent_is_not_anothers(as_user: AsUser) -> None:
    customer = await as_user("customer@example.com")
    other = await as_user("customer2@example.com")

    await customer.gql(SET_CONSENT % "grantConsent", {"input": {"purpose": "MARKETING_EMAIL"}})

    states = (await other.gql(MY_CONSENTS))["data"]["myConsents"]
    assert [s["granted"] for s in states] == [p in ALWAYS_ON for p in PURPOSES]
    assert await other.gql(MY_LEDGER) == {"data": {"myConsentLedger": []}}


# --- privacy requests --------------------------------------------------------------------

KINDS = ["ACCESS", "RECTIFICATION", "ERASURE", "RESTRICTION", "PORTABILITY", "OBJECTION"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_privacy_request_is_received_and_due_in_thirty_days(
    as_user: AsUser, kind: str
) -> None:
    customer = await as_user("customer@example.com")
    customer_id = await user_id("customer@example.com")
    details = f"Canary details {letters_canary()}: my old address was 1 Example Street"
    audit_before = len(await audit_events())

    body, request_id = await post(customer, SUBMIT, {"input": {"kind": kind, "details": details}})

    result = body["data"]["submitPrivacyRequest"]
    assert result["__typename"] == "PrivacyRequestSuccess"
    submitted = result["request"]
    assert {k: v for k, v in submitted.items() if k not in ("id", "receivedAt", "dueAt")} == {
        "kind": kind,
        "status": "RECEIVED",
        "details": details,
        "closedAt": None,
        "outcome": None,
    }
    received = datetime.fromisoformat(submitted["receivedAt"])
    assert received.utcoffset() == timedelta(0)
    assert datetime.fromisoformat(submitted["dueAt"]) - received == timedelta(days=30)

    listed = (await customer.gql(MY_REQUESTS))["data"]["myPrivacyRequests"]
    assert listed == [
        {
            "id": submitted["id"],
            "kind": kind,
            "status": "RECEIVED",
            "details": details,
            "receivedAt": submitted["receivedAt"],
            "dueAt": submitted["dueAt"],
        }
    ]
    _, stored_id = from_global_id(submitted["id"], "PrivacyRequest")
    stored = await PrivacyRequest.get(id=stored_id)
    assert stored.due_at - stored.received_at == timedelta(days=30)
    assert stored.subject_id == customer_id

    events = await audit_events()
    # Found by its action: an objection may record its ledger entries beside it (P27).
    (event,) = [e for e in events[audit_before:] if e.action == "privacy_request.submit"]
    assert (event.action, event.entity, event.entity_id) == (
        "privacy_request.submit",
        "PrivacyRequest",
        str(stored_id),
    )
    assert (event.actor_id, event.subject_id) == (customer_id, customer_id)
    assert event.field_names == ["PrivacyRequest.details", "PrivacyRequest.kind"]
    assert event.request_id == request_id
    rows = await raw_audit_rows()
    assert not any(details.split(":")[0] in row for row in rows)
    assert not any("Example Street" in row for row in rows)
    await assert_chain_intact(audit_before + 1)


async def test_a_privacy_request_without_details_audits_only_its_kind(as_user: AsUser) -> None:
    customer = await as_user("customer@example.com")

    body = await customer.gql(SUBMIT, {"input": {"kind": "OBJECTION", "details": "   "}})

    assert body["data"]["submitPrivacyRequest"]["request"]["details"] is None
    events = await audit_events()
    assert [e.field_names for e in events if e.action == "privacy_request.submit"] == [
        ["PrivacyRequest.kind"]
    ]
    await assert_chain_intact(len(events))


@pytest.mark.parametrize(
    "reader", ["customer2@example.com", "agent@example.com", "lead@example.com"]
)
async def test_others_cannot_reach_a_persons_privacy_request(as_user: AsUser, reader: str) -> None:
    customer = await as_user("customer@example.com")
    other = await as_user(reader)
    submitted = await customer.gql(SUBMIT, {"input": {"kind": "ERASURE", "details": "Erase me"}})
    request_id = submitted["data"]["submitPrivacyRequest"]["request"]["id"]

    body = await other.gql(REQUEST_NODE, {"id": request_id})

    assert body["data"] == {"node": None}
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [
        ("NOT_FOUND", ["node"])
    ]
    assert "Erase me" not in str(body)
    assert (await other.gql(MY_REQUESTS))["data"]["myPrivacyRequests"] == []


async def test_the_privacy_officer_reads_a_request_by_its_id(as_user: AsUser) -> None:
    customer = await as_user("customer@example.com")
    officer = await as_user("privacy@example.com")
    submitted = await customer.gql(SUBMIT, {"input": {"kind": "ACCESS", "details": "All of it"}})
    request = submitted["data"]["submitPrivacyRequest"]["request"]

    body = await officer.gql(REQUEST_NODE, {"id": request["id"]})

    assert body == {
        "data": {
            "node": {
                "__typename": "PrivacyRequest",
                "id": request["id"],
                "kind": "ACCESS",
                "status": "RECEIVED",
                "details": "All of it",
                "dueAt": request["dueAt"],
            }
        }
    }
    assert (await officer.gql(MY_REQUESTS))["data"]["myPrivacyRequests"] == []


async def test_anonymous_callers_cannot_submit_a_privacy_request(as_user: AsUser) -> None:
    anonymous = await as_user(None)
    audit_before = len(await audit_events())

    body = await anonymous.gql(SUBMIT, {"input": {"kind": "ACCESS", "details": "Who am I?"}})

    assert body["data"]["submitPrivacyRequest"] == {
        "__typename": "AuthenticationRequiredError",
        "code": "UNAUTHENTICATED",
    }
    assert await PrivacyRequest.all().count() == 0
    assert len(await audit_events()) == audit_before


async def test_details_over_five_thousand_characters_are_refused(as_user: AsUser) -> None:
    customer = await as_user("customer@example.com")
    audit_before = len(await audit_events())

    body = await customer.gql(SUBMIT, {"input": {"kind": "RECTIFICATION", "details": "x" * 5001}})

    assert body["data"]["submitPrivacyRequest"] == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "field": "details",
    }
    assert await PrivacyRequest.all().count() == 0
    assert len(await audit_events()) == audit_before
    assert (await customer.gql(MY_REQUESTS))["data"]["myPrivacyRequests"] == []


async def test_details_of_exactly_five_thousand_characters_are_accepted(
    as_user: AsUser,
) -> None:
    customer = await as_user("customer@example.com")

    body = await customer.gql(SUBMIT, {"input": {"kind": "RECTIFICATION", "details": "y" * 5000}})

    assert body["data"]["submitPrivacyRequest"]["request"]["details"] == "y" * 5000
    assert await PrivacyRequest.all().count() == 1
