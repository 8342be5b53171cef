"""Rectification (P23) end to end: the subject (or staff for them, P28) proposes corrections,
the officer accepts or refuses each with a reason, the accepted ones are applied and audited
by field name, the outcome is recorded and told; and every refused input changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from tortoise import Tortoise

import settings as config
from models import AuditEvent, Notice, PrivacyRequest, PrivacyRequestStep, User
from privacy import mail
from schema.relay import from_global_id, to_global_id
from tests.helpers import Api, user_by_email
from tests.smtp_server import Mailbox

AsUser = Callable[[str | None], Awaitable[Api]]

CUSTOMER = "customer@example.com"
OFFICER = "privacy@example.com"
AGENT = "agent@example.com"
ADMIN = "admin@example.com"

NEW_NAME = "Carla Corrected-canary"
NEW_PHONE = "+44 20 7946 0123"
REQUEST = """id kind status outcome closedAt
  corrections { field value accepted reason }
  history { action toStatus note }"""
RESULT = (
    "__typename ... on PrivacyRequestSuccess { request { "
    + REQUEST
    + " } } ... on UserError { code message } ... on InvalidInputError { field }"
)


def _mutation(name: str, input_type: str) -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {RESULT} }} }}"


SUBMIT = _mutation("submitPrivacyRequest", "SubmitPrivacyRequestInput")
REGISTER = _mutation("registerPrivacyRequest", "RegisterPrivacyRequestInput")
DECIDE = _mutation("decideCorrections", "DecideCorrectionsInput")
VERIFY = """mutation($id: ID!) { verifyIdentity(input: {requestId: $id, method: SIGNED_IN_SESSION})
  { __typename ... on PrivacyRequestSuccess { request { status } } } }"""
START = """mutation($id: ID!) { startPrivacyRequest(input: {requestId: $id})
  { __typename ... on PrivacyRequestSuccess { request { status } } } }"""
COMPLETE = """mutation($id: ID!) { completePrivacyRequest(input: {requestId: $id, outcome: "done"})
  { __typename ... on UserError { code } } }"""
PROPOSED = [
    {"field": "NAME", "value": f"  {NEW_NAME} "},
    {"field": "PHONE", "value": NEW_PHONE},
    {"field": "DATE_OF_BIRTH", "value": "1991-02-03"},
]


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


def result(body: dict[str, Any], name: str) -> dict[str, Any]:
    assert "errors" not in body, body
    answer: dict[str, Any] = body["data"][name]
    return answer


async def submit(api: Api, corrections: list[dict[str, Any]] | None = PROPOSED) -> dict[str, Any]:
    body = await api.gql(SUBMIT, {"input": {"kind": "RECTIFICATION", "corrections": corrections}})
    answer = result(body, "submitPrivacyRequest")
    assert answer["__typename"] == "PrivacyRequestSuccess", answer
    request: dict[str, Any] = answer["request"]
    return request


async def in_progress(officer: Api, gid: str, *, verify: bool = True) -> None:
    if verify:
        verified = await officer.gql(VERIFY, {"id": gid})
        assert verified["data"]["verifyIdentity"]["request"]["status"] == "IDENTITY_VERIFIED"
    started = await officer.gql(START, {"id": gid})
    assert started["data"]["startPrivacyRequest"]["request"]["status"] == "IN_PROGRESS"


async def decide(api: Api, gid: str, decisions: list[dict[str, Any]]) -> dict[str, Any]:
    body = await api.gql(DECIDE, {"input": {"requestId": gid, "decisions": decisions}})
    return result(body, "decideCorrections")


async def profile() -> tuple[Any, ...]:
    user = await user_by_email(CUSTOMER)
    return (user.name, user.phone, user.date_of_birth)


async def state() -> tuple[Any, ...]:
    """What a refused input must leave as it was."""
    requests = (
        await PrivacyRequest.all()
        .order_by("id")
        .values_list("id", "status", "outcome", "corrections", "closed_at")
    )
    return (
        requests,
        await profile(),
        await PrivacyRequestStep.all().count(),
        await AuditEvent.all().count(),
        await Notice.all().count(),
    )


async def notice_kinds(user: User) -> list[str]:
    rows = await Notice.filter(user_id=user.id).order_by("created_at", "id")
    return [row.kind for row in rows if row.kind.startswith("privacy_request.")]


async def dump(table: str) -> str:
    rows = await Tortoise.get_connection("default").execute_query_dict(f'SELECT * FROM "{table}"')
    return repr(rows)


DECISIONS = [
    {"field": "NAME", "accept": True},
    {"field": "PHONE", "accept": True, "reason": "Matches the number on your last ticket"},
    {"field": "DATE_OF_BIRTH", "accept": False, "reason": "Your ID document shows another date"},
]
OUTCOME = (
    "We corrected your name, phone number.\n"
    "- phone number: Matches the number on your last ticket\n"
    "We did not correct your date of birth:\n"
    "- date of birth: Your ID document shows another date"
)


# --- submitted by the subject ------------------------------------------------------------


@pytest.mark.promise("P23")
async def test_the_officer_decides_each_correction_and_the_accepted_ones_are_applied(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    birth_before = customer.date_of_birth
    submitted = await submit(customer_api)
    assert (submitted["kind"], submitted["status"]) == ("RECTIFICATION", "RECEIVED")
    assert submitted["corrections"] == [
        {"field": "NAME", "value": NEW_NAME, "accepted": None, "reason": None},
        {"field": "PHONE", "value": NEW_PHONE, "accepted": None, "reason": None},
        {"field": "DATE_OF_BIRTH", "value": "1991-02-03", "accepted": None, "reason": None},
    ]
    # The proposed values are sealed at rest, and the audit names fields only.
    assert NEW_NAME not in await dump("privacy_requests")
    submitted_audit = await AuditEvent.get(action="privacy_request.submit")
    assert submitted_audit.field_names == ["PrivacyRequest.corrections", "PrivacyRequest.kind"]
    gid = submitted["id"]
    queue = await officer.gql(
        "{ privacyRequestQueue { edges { node { id corrections { field value } } } } }"
    )
    assert queue["data"]["privacyRequestQueue"]["edges"] == [
        {
            "node": {
                "id": gid,
                "corrections": [
                    {"field": "NAME", "value": NEW_NAME},
                    {"field": "PHONE", "value": NEW_PHONE},
                    {"field": "DATE_OF_BIRTH", "value": "1991-02-03"},
                ],
            }
        }
    ]
    await in_progress(officer, gid)
    audit_before = await AuditEvent.all().count()

    answer = await decide(officer, gid, DECISIONS)

    assert answer["__typename"] == "PrivacyRequestSuccess", answer
    done = answer["request"]
    assert (done["status"], done["outcome"]) == ("COMPLETED", OUTCOME)
    assert done["closedAt"] is not None
    assert done["corrections"] == [
        {"field": "NAME", "value": NEW_NAME, "accepted": True, "reason": None},
        {
            "field": "PHONE",
            "value": NEW_PHONE,
            "accepted": True,
            "reason": "Matches the number on your last ticket",
        },
        {
            "field": "DATE_OF_BIRTH",
            "value": "1991-02-03",
            "accepted": False,
            "reason": "Your ID document shows another date",
        },
    ]
    assert [(s["action"], s["toStatus"]) for s in done["history"]] == [
        ("SUBMITTED", "RECEIVED"),
        ("IDENTITY_VERIFIED", "IDENTITY_VERIFIED"),
        ("STARTED", "IN_PROGRESS"),
        ("COMPLETED", "COMPLETED"),
    ]
    assert done["history"][-1]["note"] == OUTCOME
    assert await profile() == (NEW_NAME, NEW_PHONE, birth_before)
    me = await customer_api.gql("{ me { name phone dateOfBirth } }")
    assert me["data"]["me"] == {"name": NEW_NAME, "phone": NEW_PHONE, "dateOfBirth": birth_before}

    officer_user = await user_by_email(OFFICER)
    events = [
        e
        for e in (await AuditEvent.filter(seq__gt=0).order_by("seq"))[audit_before:]
        if e.action != "personal_data.read"
    ]
    changes = [(e.action, e.entity, e.field_names) for e in events]
    assert changes == [
        ("profile.rectify", "User", ["User.name", "User.phone"]),
        (
            "privacy_request.complete",
            "PrivacyRequest",
            [
                "PrivacyRequest.corrections",
                "PrivacyRequest.outcome",
                "PrivacyRequest.status",
                "PrivacyRequestStep.note",
            ],
        ),
    ]
    assert {(e.actor_id, e.subject_id) for e in events} == {(officer_user.id, customer.id)}
    audit_rows = await dump("audit_events")
    for value in (NEW_NAME, NEW_PHONE, "1991-02-03", "ID document"):
        assert value not in audit_rows
    assert "ID document" not in await dump("privacy_request_steps")

    assert await notice_kinds(customer) == [
        "privacy_request.received",
        "privacy_request.identity_verified",
        "privacy_request.started",
        "privacy_request.completed",
    ]
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=4)
    (answered,) = [
        got for got in smtp.received if got.message["Subject"] == "Your privacy request is answered"
    ]
    assert tuple(answered.recipients) == (CUSTOMER,)
    assert OUTCOME in answered.message.get_content().replace("\r\n", "\n")

    # Decided once: a second decision is refused and changes nothing.
    before = await state()
    again = await decide(officer, gid, [{**d, "accept": False, "reason": "no"} for d in DECISIONS])
    assert (again["__typename"], again["code"]) == ("IllegalTransitionError", "ILLEGAL_TRANSITION")
    assert await state() == before


# --- a duplicate's corrections --------------------------------------------------------------

LATER_PHONE = "+44 20 7946 0999"


@pytest.mark.promise("P23")
@pytest.mark.parametrize("by_staff", [False, True], ids=["submitted", "registered_by_staff"])
async def test_a_duplicate_rectifications_corrections_join_the_open_one_and_are_decided_there(
    as_user: AsUser, by_staff: bool
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    birth_before = customer.date_of_birth
    first = await submit(customer_api, PROPOSED[:2])
    later = [{"field": "PHONE", "value": LATER_PHONE}, {"field": "DATE_OF_BIRTH", "value": ""}]
    if by_staff:
        body = await officer.gql(
            REGISTER,
            {
                "input": {
                    "kind": "RECTIFICATION",
                    "subjectEmail": CUSTOMER,
                    "receivedAt": datetime.now(UTC).isoformat(),
                    "verificationMethod": "STAFF_KNOWN_CONTACT",
                    "corrections": [later[0]],
                }
            },
        )
        later = later[:1]
    else:
        later[1]["value"] = "1992-03-04"
        body = await customer_api.gql(
            SUBMIT, {"input": {"kind": "RECTIFICATION", "corrections": later}}
        )
    name = "registerPrivacyRequest" if by_staff else "submitPrivacyRequest"
    duplicate = result(body, name)["request"]

    assert duplicate["status"] == "DUPLICATE"
    # The duplicate keeps what it proposed, for the record; nothing of it is decided there.
    assert [(c["field"], c["value"], c["accepted"]) for c in duplicate["corrections"]] == [
        (c["field"], c["value"], None) for c in later
    ]
    body = await customer_api.gql("{ myPrivacyRequests { " + REQUEST + " } }")
    assert "errors" not in body, body
    mine: list[dict[str, Any]] = body["data"]["myPrivacyRequests"]
    (open_one,) = [r for r in mine if r["id"] == first["id"]]
    # Joined to the open request: a field proposed again takes the later value.
    expected = [("NAME", NEW_NAME), ("PHONE", LATER_PHONE)]
    if not by_staff:
        expected.append(("DATE_OF_BIRTH", "1992-03-04"))
    assert [(c["field"], c["value"], c["accepted"]) for c in open_one["corrections"]] == [
        (field, value, None) for field, value in expected
    ]
    labels = "phone number" if by_staff else "phone number, date of birth"
    assert open_one["history"][-1] == {
        "action": "CORRECTIONS_MERGED",
        "toStatus": "RECEIVED",
        "note": f"Corrections added from a later request: {labels}.",
    }
    (merge,) = await AuditEvent.filter(action="privacy_request.merge_corrections")
    assert (merge.entity_id, merge.subject_id) == (
        str(from_global_id(first["id"], "PrivacyRequest", "id")[1]),
        customer.id,
    )
    assert merge.field_names == ["PrivacyRequest.corrections", "PrivacyRequestStep.note"]
    assert LATER_PHONE not in await dump("privacy_requests")
    assert LATER_PHONE not in await dump("audit_events")
    # Told that the corrections joined the open request, not that nothing new was asked.
    duplicate_id = from_global_id(duplicate["id"], "PrivacyRequest", "id")[1]
    (opening,) = await PrivacyRequestStep.filter(request_id=duplicate_id)
    told = [
        notice.kind
        for notice in await Notice.filter(user_id=customer.id)
        if notice.params.get("step") == str(opening.id)
    ]
    assert told == ["privacy_request.corrections_added"]

    # The officer decides the joined corrections once, on the open request.
    await in_progress(officer, first["id"])
    decisions = [{"field": field, "accept": True} for field, _ in expected]
    done = (await decide(officer, first["id"], decisions))["request"]
    assert done["status"] == "COMPLETED"
    assert [c["accepted"] for c in done["corrections"]] == [True] * len(expected)
    birth = birth_before if by_staff else "1992-03-04"
    assert await profile() == (NEW_NAME, LATER_PHONE, birth)


@pytest.mark.promise("P23")
async def test_corrections_proposed_again_join_a_rectification_written_in_its_details_alone(
    as_user: AsUser,
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    first = await submit(customer_api, None)
    assert first["corrections"] == []
    await submit(customer_api, PROPOSED[1:2])
    await in_progress(officer, first["id"])
    # It now proposes a correction: it is completed by deciding it, as any other.
    refused = await officer.gql(COMPLETE, {"id": first["id"]})
    assert refused["data"]["completePrivacyRequest"]["code"] == "ILLEGAL_TRANSITION"
    done = await decide(officer, first["id"], [{"field": "PHONE", "accept": True}])
    assert done["request"]["corrections"] == [
        {"field": "PHONE", "value": NEW_PHONE, "accepted": True, "reason": None}
    ]
    assert (await profile())[1] == NEW_PHONE


# --- registered by staff (P28) -------------------------------------------------------------


@pytest.mark.promise("P23")
@pytest.mark.promise("P28")
async def test_staff_register_a_rectification_and_a_refusal_changes_nothing_but_is_told(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    before = await profile()
    received = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    body = await officer.gql(
        REGISTER,
        {
            "input": {
                "kind": "RECTIFICATION",
                "subjectEmail": CUSTOMER,
                "receivedAt": received.isoformat(),
                "verificationMethod": "STAFF_KNOWN_CONTACT",
                "details": "Mail of 3 May: my phone number is wrong",
                "corrections": [{"field": "PHONE", "value": ""}],
            }
        },
    )
    registered = result(body, "registerPrivacyRequest")["request"]
    assert registered["status"] == "IDENTITY_VERIFIED"
    # An empty value proposes removing the phone number, as the profile's clearPhone does.
    assert registered["corrections"] == [
        {"field": "PHONE", "value": None, "accepted": None, "reason": None}
    ]
    await in_progress(officer, registered["id"], verify=False)
    reason = "A phone number is needed for the card on your account"

    answer = await decide(
        officer, registered["id"], [{"field": "PHONE", "accept": False, "reason": reason}]
    )

    done = answer["request"]
    assert done["status"] == "COMPLETED"
    assert done["outcome"] == f"We did not correct your phone number:\n- phone number: {reason}"
    assert await profile() == before
    assert await AuditEvent.filter(action="profile.rectify").count() == 0
    assert await notice_kinds(customer) == [
        "privacy_request.registered",
        "privacy_request.identity_verified",
        "privacy_request.started",
        "privacy_request.completed",
    ]
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=4)
    assert reason in smtp.received[-1].message.get_content()


@pytest.mark.promise("P23")
async def test_an_accepted_removal_clears_the_phone_and_a_date_of_birth_is_stored_as_a_date(
    as_user: AsUser,
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    gid = (
        await submit(
            customer_api,
            [{"field": "PHONE", "value": None}, {"field": "DATE_OF_BIRTH", "value": "1991-02-03"}],
        )
    )["id"]
    await in_progress(officer, gid)

    answer = await decide(
        officer,
        gid,
        [{"field": "DATE_OF_BIRTH", "accept": True}, {"field": "PHONE", "accept": True}],
    )

    assert answer["request"]["outcome"] == "We corrected your phone number, date of birth."
    name = (await profile())[0]
    assert await profile() == (name, None, "1991-02-03")
    me = await customer_api.gql("{ me { dateOfBirth } }")
    assert date.fromisoformat(me["data"]["me"]["dateOfBirth"]) == date(1991, 2, 3)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "corrections", "message"),
    [
        ("RECTIFICATION", [{"field": "NAME", "value": "  "}], "This field is required."),
        ("RECTIFICATION", [{"field": "NAME", "value": "x" * 201}], "Use at most 200 characters."),
        (
            "RECTIFICATION",
            [{"field": "PHONE", "value": "call me maybe"}],
            "Enter a phone number of digits, spaces and an optional +.",
        ),
        (
            "RECTIFICATION",
            [{"field": "DATE_OF_BIRTH", "value": "yesterday"}],
            "Give a date of birth as YYYY-MM-DD.",
        ),
        (
            "RECTIFICATION",
            [{"field": "DATE_OF_BIRTH", "value": "2999-01-01"}],
            "Enter a real date of birth.",
        ),
        (
            "RECTIFICATION",
            [{"field": "NAME", "value": "A"}, {"field": "NAME", "value": "B"}],
            "Propose one correction per field.",
        ),
        (
            "ACCESS",
            [{"field": "NAME", "value": "A"}],
            "Only a rectification request proposes corrections.",
        ),
    ],
)
@pytest.mark.parametrize("how", ["submit", "register"])
async def test_a_proposal_that_is_not_valid_is_refused_and_nothing_is_stored(
    as_user: AsUser, kind: str, corrections: list[dict[str, Any]] | None, message: str, how: str
) -> None:
    customer = await user_by_email(CUSTOMER)
    before = await state()
    if how == "submit":
        api = await as_user(CUSTOMER)
        given = {"kind": kind, "corrections": corrections}
        body = await api.gql(SUBMIT, {"input": given})
        answer = result(body, "submitPrivacyRequest")
    else:
        api = await as_user(OFFICER)
        given = {
            "kind": kind,
            "corrections": corrections,
            "subjectId": to_global_id("User", customer.id),
            "receivedAt": datetime.now(UTC).isoformat(),
            "verificationMethod": "DOCUMENT_CHECK",
        }
        answer = result(await api.gql(REGISTER, {"input": given}), "registerPrivacyRequest")
    assert answer == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "message": message,
        "field": "corrections",
    }
    assert await state() == before


async def test_an_unknown_field_is_refused_by_the_schema(as_user: AsUser) -> None:
    api = await as_user(CUSTOMER)
    before = await state()
    body = await api.gql(
        SUBMIT,
        {"input": {"kind": "RECTIFICATION", "corrections": [{"field": "EMAIL", "value": "a"}]}},
    )
    assert body.get("data") is None
    assert "EMAIL" in body["errors"][0]["message"]
    decided = await api.gql(
        DECIDE,
        {"input": {"requestId": "x", "decisions": [{"field": "ROLES", "accept": True}]}},
    )
    assert decided.get("data") is None
    assert await state() == before


@pytest.mark.parametrize(
    ("decisions", "field", "message"),
    [
        (
            [*DECISIONS[:2], {"field": "DATE_OF_BIRTH", "accept": False}],
            "reason",
            "Give the reason for refusing a correction.",
        ),
        (
            [*DECISIONS[:2], {"field": "DATE_OF_BIRTH", "accept": False, "reason": "   "}],
            "reason",
            "Give the reason for refusing a correction.",
        ),
        (DECISIONS[:2], "decisions", "Decide every proposed correction."),
        ([*DECISIONS, DECISIONS[0]], "decisions", "Decide each correction once."),
        ([], "decisions", "Decide every proposed correction."),
    ],
)
async def test_decisions_that_do_not_decide_each_proposal_once_are_refused(
    as_user: AsUser, decisions: list[dict[str, Any]], field: str, message: str
) -> None:
    officer = await as_user(OFFICER)
    gid = (await submit(await as_user(CUSTOMER)))["id"]
    await in_progress(officer, gid)
    before = await state()

    answer = await decide(officer, gid, decisions)

    assert answer == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "message": message,
        "field": field,
    }
    assert await state() == before


async def test_a_decision_for_a_field_not_proposed_is_refused(as_user: AsUser) -> None:
    officer = await as_user(OFFICER)
    gid = (await submit(await as_user(CUSTOMER), [{"field": "NAME", "value": NEW_NAME}]))["id"]
    await in_progress(officer, gid)
    before = await state()

    answer = await decide(
        officer, gid, [{"field": "NAME", "accept": True}, {"field": "PHONE", "accept": True}]
    )

    assert answer == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "message": "A decision names a field the request does not propose.",
        "field": "decisions",
    }
    assert await state() == before


async def test_corrections_are_decided_only_on_a_rectification_in_progress(
    as_user: AsUser,
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    gid = (await submit(customer_api))["id"]
    access = result(
        await customer_api.gql(SUBMIT, {"input": {"kind": "ACCESS"}}), "submitPrivacyRequest"
    )["request"]["id"]
    await in_progress(officer, access)
    before = await state()

    # Not yet verified nor started.
    early = await decide(officer, gid, DECISIONS)
    assert (early["__typename"], early["code"]) == ("IllegalTransitionError", "ILLEGAL_TRANSITION")
    # Another kind has no corrections to decide.
    other = await decide(officer, access, DECISIONS)
    assert (other["__typename"], other["code"], other["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        "requestId",
    )
    assert await state() == before

    # A rectification is completed by its decisions, never by a bare outcome.
    await in_progress(officer, gid)
    before = await state()
    bare = await officer.gql(COMPLETE, {"id": gid})
    assert bare["data"]["completePrivacyRequest"] == {
        "__typename": "IllegalTransitionError",
        "code": "ILLEGAL_TRANSITION",
    }
    assert await state() == before


@pytest.mark.parametrize("who", [CUSTOMER, AGENT, ADMIN, None])
async def test_only_the_privacy_officer_decides_corrections(
    as_user: AsUser, who: str | None
) -> None:
    officer = await as_user(OFFICER)
    gid = (await submit(await as_user(CUSTOMER)))["id"]
    await in_progress(officer, gid)
    before = await state()

    answer = await decide(await as_user(who), gid, DECISIONS)

    expected = "UNAUTHENTICATED" if who is None else "FORBIDDEN"
    assert answer["code"] == expected, answer
    assert await state() == before
    request = await PrivacyRequest.get(id=from_global_id(gid, "PrivacyRequest")[1])
    assert request.status == "in_progress"
