"""The privacy-request workflow end to end: the officer's steps, history, notices and mail,
rejection, extension, illegal steps, duplicates, the queue, and requests staff register (P28)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from tortoise import Tortoise

import settings as config
from models import (
    AuditEvent,
    Notice,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    PrivacyRequestStep,
    User,
)
from privacy import mail
from privacy.requests import transitions
from schema.relay import from_global_id, to_global_id
from tests.helpers import Api, StatementCounter, user_by_email
from tests.smtp_server import Mailbox

AsUser = Callable[[str | None], Awaitable[Api]]

CUSTOMER = "customer@example.com"
CUSTOMER2 = "customer2@example.com"
OFFICER = "privacy@example.com"
AGENT = "agent@example.com"
ADMIN = "admin@example.com"
DAY = timedelta(days=1)

REQUEST = """
  id kind status details receivedAt dueAt closedAt outcome overdue channel verificationMethod
  extensionMonths
  subject { name email } assignee { name } registeredBy { name }
  duplicateOf { id status }
  history { action fromStatus toStatus note actor { name } }
"""
SUBMIT = (
    """mutation($input: SubmitPrivacyRequestInput!) { submitPrivacyRequest(input: $input) {
  __typename ... on UserError { code message } ... on PrivacyRequestSuccess { request {"""
    + REQUEST
    + "} } } }"
)
STEP = """mutation($input: %sInput!) { %s(input: $input) {
  __typename
  ... on PrivacyRequestSuccess { request { %s } }
  ... on UserError { code message }
  ... on InvalidInputError { field }
  ... on IllegalTransitionError { field }
  ... on NotFoundError { field } } }"""
QUEUE = """query($status: PrivacyRequestStatus, $first: Int, $after: String) {
  privacyRequestQueue(status: $status, first: $first, after: $after) {
    edges { cursor node { id status dueAt overdue kind subject { name email }
      assignee { name } history { action } } }
    pageInfo { hasNextPage endCursor } } }"""
NOTICES = "{ myNotices(first: 50) { kind subject body } }"
MUTATIONS = {
    "assignPrivacyRequest": "AssignPrivacyRequest",
    "verifyIdentity": "VerifyIdentity",
    "startPrivacyRequest": "StartPrivacyRequest",
    "completePrivacyRequest": "CompletePrivacyRequest",
    "rejectPrivacyRequest": "RejectPrivacyRequest",
    "extendPrivacyRequest": "ExtendPrivacyRequest",
    "registerPrivacyRequest": "RegisterPrivacyRequest",
}


async def step_body(api: Api, name: str, given: dict[str, Any]) -> dict[str, Any]:
    document = STEP % (MUTATIONS[name], name, REQUEST)
    if name == "registerPrivacyRequest":  # registering is no step of a request's workflow
        document = document.replace("... on IllegalTransitionError { field }", "")
    return await api.gql(document, {"input": given})


async def step(api: Api, name: str, given: dict[str, Any]) -> dict[str, Any]:
    body = await step_body(api, name, given)
    # Only need-to-know may withhold a field (the subject's details once a request closes).
    assert {code for code, _ in error_paths(body)} <= {"FORBIDDEN"}, body
    result: dict[str, Any] = body["data"][name]
    return result


def error_paths(body: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    return sorted(
        (e.get("extensions", {}).get("code", e["message"]), e.get("path"))
        for e in body.get("errors", [])
    )


async def ok(api: Api, name: str, given: dict[str, Any]) -> dict[str, Any]:
    result = await step(api, name, given)
    assert result["__typename"] == "PrivacyRequestSuccess", result
    request: dict[str, Any] = result["request"]
    return request


async def submit(api: Api, kind: str = "ACCESS", details: str | None = None) -> dict[str, Any]:
    body = await api.gql(SUBMIT, {"input": {"kind": kind, "details": details}})
    result = body["data"]["submitPrivacyRequest"]
    assert result["__typename"] == "PrivacyRequestSuccess", body
    request: dict[str, Any] = result["request"]
    return request


def pk(gid: str) -> UUID:
    return from_global_id(gid, "PrivacyRequest")[1]


async def notice_kinds(user: User) -> list[str]:
    rows = await Notice.filter(user_id=user.id).order_by("created_at", "id")
    return [row.kind for row in rows if row.kind.startswith("privacy_request.")]


async def state() -> tuple[Any, ...]:
    """What a refused step must leave as it was."""
    requests = (
        await PrivacyRequest.all()
        .order_by("id")
        .values_list(
            "id", "status", "assignee_id", "due_at", "outcome", "extension_months", "closed_at"
        )
    )
    return (
        requests,
        await PrivacyRequestStep.all().count(),
        await AuditEvent.all().count(),
        await Notice.all().count(),
    )


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


# --- the full path ----------------------------------------------------------------------


async def test_a_request_goes_received_verified_in_progress_completed_and_its_subject_is_told(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    officer_user = await user_by_email(OFFICER)
    submitted = await submit(customer_api, "ACCESS", "Everything you hold about me")
    gid = submitted["id"]
    assert submitted["history"] == [
        {
            "action": "SUBMITTED",
            "fromStatus": None,
            "toStatus": "RECEIVED",
            "note": None,
            "actor": {"name": "Carla Customer"},
        }
    ]
    assert submitted["channel"] == "SELF_SERVICE"
    audit_before = await AuditEvent.all().count()

    assigned = await ok(officer, "assignPrivacyRequest", {"requestId": gid})
    assert (assigned["status"], assigned["assignee"]) == ("RECEIVED", {"name": "Priya Privacy"})
    verified = await ok(
        officer,
        "verifyIdentity",
        {"requestId": gid, "method": "SIGNED_IN_SESSION", "note": "Asked while signed in"},
    )
    assert (verified["status"], verified["verificationMethod"]) == (
        "IDENTITY_VERIFIED",
        "SIGNED_IN_SESSION",
    )
    started = await ok(officer, "startPrivacyRequest", {"requestId": gid})
    assert started["status"] == "IN_PROGRESS"
    assert started["closedAt"] is None
    assert started["subject"] == {"name": "Carla Customer", "email": CUSTOMER}
    outcome = "Your export is ready: 3 tickets, 2 consents, canary-outcome-7a1"
    body = await step_body(
        officer, "completePrivacyRequest", {"requestId": gid, "outcome": outcome}
    )

    # Closed, the request no longer gives the officer a reason to read the subject's details.
    where = ["completePrivacyRequest", "request"]
    assert error_paths(body) == [
        ("FORBIDDEN", [*where, "history", 0, "actor", "name"]),
        ("FORBIDDEN", [*where, "subject", "email"]),
        ("FORBIDDEN", [*where, "subject", "name"]),
    ]
    done = body["data"]["completePrivacyRequest"]["request"]
    assert done["status"] == "COMPLETED"
    assert done["outcome"] == outcome
    assert done["closedAt"] is not None
    assert done["overdue"] is False
    assert done["subject"] == {"name": None, "email": None}
    officer_step = {"actor": {"name": "Priya Privacy"}}
    assert done["history"] == [
        submitted["history"][0] | {"actor": {"name": None}},
        {"action": "ASSIGNED", "fromStatus": "RECEIVED", "toStatus": "RECEIVED", "note": None}
        | officer_step,
        {
            "action": "IDENTITY_VERIFIED",
            "fromStatus": "RECEIVED",
            "toStatus": "IDENTITY_VERIFIED",
            "note": "Asked while signed in",
        }
        | officer_step,
        {"action": "STARTED", "fromStatus": "IDENTITY_VERIFIED", "toStatus": "IN_PROGRESS"}
        | {"note": None}
        | officer_step,
        {"action": "COMPLETED", "fromStatus": "IN_PROGRESS", "toStatus": "COMPLETED"}
        | {"note": outcome}
        | officer_step,
    ]
    # The subject reads the same request, history and outcome included.
    mine = await customer_api.gql("{ myPrivacyRequests { id status outcome history { action } } }")
    assert mine["data"]["myPrivacyRequests"] == [
        {
            "id": gid,
            "status": "COMPLETED",
            "outcome": outcome,
            "history": [
                {"action": action}
                for action in ("SUBMITTED", "ASSIGNED", "IDENTITY_VERIFIED", "STARTED", "COMPLETED")
            ],
        }
    ]

    assert await notice_kinds(customer) == [
        "privacy_request.received",
        "privacy_request.assigned",
        "privacy_request.identity_verified",
        "privacy_request.started",
        "privacy_request.completed",
    ]
    shown = (await customer_api.gql(NOTICES))["data"]["myNotices"]
    completed = next(n for n in shown if n["kind"] == "privacy_request.completed")
    assert completed["subject"] == "Your privacy request is answered"
    # In-platform the notice points at the request; only the mail quotes the outcome.
    assert outcome not in completed["body"]
    assert "(read it in the history of your request)" in completed["body"]
    raw = await Tortoise.get_connection("default").execute_query_dict('SELECT * FROM "notices"')
    assert outcome not in repr(raw)

    events = await AuditEvent.filter(seq__gt=0).order_by("seq")
    steps = [(e.action, e.field_names) for e in events][audit_before:]
    steps = [entry for entry in steps if entry[0] != "personal_data.read"]
    assert steps == [
        ("privacy_request.assign", ["PrivacyRequest.assignee"]),
        (
            "privacy_request.verify_identity",
            [
                "PrivacyRequest.status",
                "PrivacyRequest.verificationMethod",
                "PrivacyRequestStep.note",
            ],
        ),
        ("privacy_request.start", ["PrivacyRequest.status"]),
        (
            "privacy_request.complete",
            ["PrivacyRequest.outcome", "PrivacyRequest.status", "PrivacyRequestStep.note"],
        ),
    ]
    assert all(e.subject_id == customer.id for e in events[audit_before:] if e.action != "x")
    assert {e.actor_id for e in events[audit_before:] if e.action.startswith("privacy_")} == {
        officer_user.id
    }
    audit_rows = await Tortoise.get_connection("default").execute_query_dict(
        'SELECT * FROM "audit_events"'
    )
    assert outcome not in repr(audit_rows)
    assert "Asked while signed in" not in repr(audit_rows)

    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=5)
    assert {tuple(got.recipients) for got in smtp.received} == {(CUSTOMER,)}
    subjects = [got.message["Subject"] for got in smtp.received]
    assert "Your privacy request is answered" in subjects
    (answer,) = [got for got in smtp.received if got.message["Subject"] == subjects[-1]]
    assert outcome in answer.message.get_content()


@pytest.mark.parametrize("steps", [0, 1, 2])
async def test_an_open_request_is_rejected_with_its_reason_from_any_open_status(
    as_user: AsUser, steps: int, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    gid = (await submit(customer_api, "ERASURE"))["id"]
    walk = [
        ("verifyIdentity", {"method": "EMAIL_LINK"}),
        ("startPrivacyRequest", {}),
    ][:steps]
    for name, extra in walk:
        await ok(officer, name, {"requestId": gid, **extra})
    before = ["RECEIVED", "IDENTITY_VERIFIED", "IN_PROGRESS"][steps]
    reason = "Tickets under a legal hold cannot be erased yet (case 17)"

    rejected = await ok(officer, "rejectPrivacyRequest", {"requestId": gid, "reason": reason})

    assert (rejected["status"], rejected["outcome"]) == ("REJECTED", reason)
    assert rejected["closedAt"] is not None
    assert rejected["history"][-1] == {
        "action": "REJECTED",
        "fromStatus": before,
        "toStatus": "REJECTED",
        "note": reason,
        "actor": {"name": "Priya Privacy"},
    }
    customer = await user_by_email(CUSTOMER)
    assert (await notice_kinds(customer))[-1] == "privacy_request.rejected"
    await mail.deliver_due(mail_settings)
    (got,) = [m for m in smtp.received if "could not grant" in str(m.message["Subject"])]
    assert reason in got.message.get_content()
    # Closed: no further step, not even a second rejection.
    again = await step(officer, "rejectPrivacyRequest", {"requestId": gid, "reason": "again"})
    assert (again["__typename"], again["code"]) == ("IllegalTransitionError", "ILLEGAL_TRANSITION")


# --- extension --------------------------------------------------------------------------


@pytest.mark.parametrize("months", [1, 2])
async def test_an_extension_moves_the_deadline_once_and_tells_the_subject_why(
    as_user: AsUser, months: int
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    submitted = await submit(customer_api, "PORTABILITY")
    gid = submitted["id"]
    received = datetime.fromisoformat(submitted["receivedAt"])
    reason = "The archive of old tickets is restored from backup first"

    extended = await ok(
        officer, "extendPrivacyRequest", {"requestId": gid, "months": months, "reason": reason}
    )

    due = datetime.fromisoformat(extended["dueAt"])
    assert due - received == timedelta(days=30 * (1 + months))
    assert extended["extensionMonths"] == months
    assert extended["status"] == "RECEIVED"
    assert extended["history"][-1]["action"] == "EXTENDED"
    assert extended["history"][-1]["note"] == reason
    customer = await user_by_email(CUSTOMER)
    assert (await notice_kinds(customer))[-1] == "privacy_request.extended"
    shown = (await customer_api.gql(NOTICES))["data"]["myNotices"][0]
    assert shown["subject"] == "We need more time for your privacy request"
    assert due.strftime("%Y-%m-%d") in shown["body"]

    # Once only: never past three months from receipt.
    before = await state()
    again = await step(
        officer, "extendPrivacyRequest", {"requestId": gid, "months": 1, "reason": "more"}
    )
    assert again == {
        "__typename": "IllegalTransitionError",
        "code": "ILLEGAL_TRANSITION",
        "message": "This request's deadline was extended already.",
        "field": "requestId",
    }
    assert await state() == before
    stored = await PrivacyRequest.get(id=pk(gid))
    assert stored.due_at - stored.received_at <= timedelta(days=90)


@pytest.mark.parametrize("months", [0, 3, -1])
async def test_an_extension_is_one_or_two_months(as_user: AsUser, months: int) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    gid = (await submit(customer_api))["id"]
    before = await state()

    refused = await step(
        officer, "extendPrivacyRequest", {"requestId": gid, "months": months, "reason": "why"}
    )

    assert (refused["__typename"], refused["field"]) == ("InvalidInputError", "months")
    assert await state() == before


# --- illegal transitions ----------------------------------------------------------------


def test_the_transition_table_is_the_workflow() -> None:
    s = PrivacyRequestStatus
    assert transitions() == {
        s.RECEIVED: {s.IDENTITY_VERIFIED, s.REJECTED},
        s.IDENTITY_VERIFIED: {s.IN_PROGRESS, s.REJECTED},
        s.IN_PROGRESS: {s.COMPLETED, s.REJECTED},
        s.COMPLETED: frozenset(),
        s.REJECTED: frozenset(),
        s.DUPLICATE: frozenset(),
    }


ILLEGAL = [
    # (steps taken first, the refused step)
    ([], ("startPrivacyRequest", {})),
    ([], ("completePrivacyRequest", {"outcome": "done"})),
    ([("verifyIdentity", {"method": "EMAIL_LINK"})], ("verifyIdentity", {"method": "EMAIL_LINK"})),
    ([("verifyIdentity", {"method": "EMAIL_LINK"})], ("completePrivacyRequest", {"outcome": "x"})),
    (
        [("verifyIdentity", {"method": "DOCUMENT_CHECK"}), ("startPrivacyRequest", {})],
        ("startPrivacyRequest", {}),
    ),
    (
        [
            ("verifyIdentity", {"method": "DOCUMENT_CHECK"}),
            ("startPrivacyRequest", {}),
            ("completePrivacyRequest", {"outcome": "done"}),
        ],
        ("rejectPrivacyRequest", {"reason": "late"}),
    ),
    (
        [("rejectPrivacyRequest", {"reason": "not yours"})],
        ("extendPrivacyRequest", {"months": 1, "reason": "more"}),
    ),
    ([("rejectPrivacyRequest", {"reason": "not yours"})], ("assignPrivacyRequest", {})),
]


@pytest.mark.parametrize(("first", "refused"), ILLEGAL)
async def test_an_illegal_step_is_a_typed_error_and_changes_nothing(
    as_user: AsUser, first: list[tuple[str, dict[str, Any]]], refused: tuple[str, dict[str, Any]]
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    gid = (await submit(customer_api))["id"]
    for name, extra in first:
        await ok(officer, name, {"requestId": gid, **extra})
    before = await state()

    name, extra = refused
    answer = await step(officer, name, {"requestId": gid, **extra})

    assert answer["__typename"] == "IllegalTransitionError", answer
    assert (answer["code"], answer["field"]) == ("ILLEGAL_TRANSITION", "requestId")
    assert await state() == before


# --- duplicates -------------------------------------------------------------------------


async def test_a_second_open_request_of_a_kind_is_linked_to_the_first_and_closed(
    as_user: AsUser,
) -> None:
    customer_api = await as_user(CUSTOMER)
    officer = await as_user(OFFICER)
    first = await submit(customer_api, "ACCESS", "first")

    second = await submit(customer_api, "ACCESS", "second")

    assert second["id"] != first["id"]
    assert second["status"] == "DUPLICATE"
    assert second["duplicateOf"] == {"id": first["id"], "status": "RECEIVED"}
    assert second["closedAt"] is not None
    assert second["dueAt"] == first["dueAt"]
    assert [s["action"] for s in second["history"]] == ["LINKED_AS_DUPLICATE"]
    customer = await user_by_email(CUSTOMER)
    assert await notice_kinds(customer) == [
        "privacy_request.received",
        "privacy_request.duplicate",
    ]
    # Not processed twice: the queue holds the first only; a duplicate takes no step.
    queue = (await officer.gql(QUEUE))["data"]["privacyRequestQueue"]["edges"]
    assert [edge["node"]["id"] for edge in queue] == [first["id"]]
    refused = await step(
        officer, "verifyIdentity", {"requestId": second["id"], "method": "EMAIL_LINK"}
    )
    assert refused["__typename"] == "IllegalTransitionError"
    # Another kind is another request; once the first is closed, the kind is free again.
    other_kind = await submit(customer_api, "OBJECTION")
    assert other_kind["status"] == "RECEIVED"
    await ok(officer, "rejectPrivacyRequest", {"requestId": first["id"], "reason": "unclear"})
    third = await submit(customer_api, "ACCESS")
    assert (third["status"], third["duplicateOf"]) == ("RECEIVED", None)
    # Another person's request of the same kind is theirs alone.
    other = await submit(await as_user(CUSTOMER2), "ACCESS")
    assert other["status"] == "RECEIVED"


# --- the queue --------------------------------------------------------------------------


async def _request_due(subject: User, due_in: timedelta, kind: PrivacyRequestKind) -> UUID:
    received = datetime.now(UTC) + due_in - timedelta(days=30)
    request = await PrivacyRequest.create(
        subject=subject, kind=kind, received_at=received, due_at=received + timedelta(days=30)
    )
    return request.id


async def test_the_queue_lists_open_requests_overdue_first_then_by_due_date(
    as_user: AsUser,
) -> None:
    officer = await as_user(OFFICER)
    carla = await user_by_email(CUSTOMER)
    cody = await user_by_email(CUSTOMER2)
    later = await _request_due(carla, 20 * DAY, PrivacyRequestKind.ACCESS)
    overdue = await _request_due(cody, -2 * DAY, PrivacyRequestKind.ERASURE)
    soon = await _request_due(cody, 3 * DAY, PrivacyRequestKind.ACCESS)
    closed = await _request_due(carla, -5 * DAY, PrivacyRequestKind.OBJECTION)
    await PrivacyRequest.filter(id=closed).update(status=PrivacyRequestStatus.COMPLETED)

    body = await officer.gql(QUEUE, {"first": 2})

    page = body["data"]["privacyRequestQueue"]
    nodes = [edge["node"] for edge in page["edges"]]
    assert [(n["id"], n["overdue"]) for n in nodes] == [
        (to_global_id("PrivacyRequest", overdue), True),
        (to_global_id("PrivacyRequest", soon), False),
    ]
    # The officer handles these: the subject's contact details follow (need-to-know).
    assert nodes[0]["subject"] == {"name": "Chris Customer", "email": CUSTOMER2}
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await officer.gql(QUEUE, {"first": 2, "after": page["pageInfo"]["endCursor"]})
    rest_page = rest["data"]["privacyRequestQueue"]
    assert [e["node"]["id"] for e in rest_page["edges"]] == [to_global_id("PrivacyRequest", later)]
    assert rest_page["pageInfo"]["hasNextPage"] is False
    done = await officer.gql(QUEUE, {"status": "COMPLETED"})
    assert [e["node"]["id"] for e in done["data"]["privacyRequestQueue"]["edges"]] == [
        to_global_id("PrivacyRequest", closed)
    ]
    assert done["data"]["privacyRequestQueue"]["edges"][0]["node"]["overdue"] is False


async def test_the_queue_costs_the_same_statements_for_five_rows_as_for_thirty(
    as_user: AsUser, count_statements: StatementCounter
) -> None:
    officer = await as_user(OFFICER)
    officer_user = await user_by_email(OFFICER)
    for n in range(30):
        person = User(name=f"Queued {n:02d}", roles=["customer"])
        person.set_email(f"queued-{n:02d}@example.com")
        await person.save()
        ident = await _request_due(person, (n - 0.5) * DAY, PrivacyRequestKind.ACCESS)
        await PrivacyRequest.filter(id=ident).update(assignee_id=officer_user.id)
        await PrivacyRequestStep.create(
            request_id=ident,
            subject=person,
            action="submitted",
            to_status=PrivacyRequestStatus.RECEIVED,
            actor=person,
            at=datetime.now(UTC),
        )

    async def measure(first: int) -> tuple[int, list[dict[str, Any]]]:
        count_statements.statements.clear()
        body = await officer.gql(QUEUE, {"first": first})
        assert "errors" not in body, body
        assert any('FROM "privacy_requests"' in sql for sql in count_statements.statements)
        return len(count_statements.statements), [
            e["node"] for e in body["data"]["privacyRequestQueue"]["edges"]
        ]

    small_count, small = await measure(5)
    large_count, large = await measure(30)

    assert len(small) == 5
    assert len(large) == 30
    assert [n["subject"]["name"] for n in large] == [f"Queued {n:02d}" for n in range(30)]
    assert all(n["assignee"] == {"name": "Priya Privacy"} for n in large)
    assert all(n["history"] == [{"action": "SUBMITTED"}] for n in large)
    assert [n["overdue"] for n in large[:2]] == [True, False]
    assert small_count == large_count, count_statements.statements
    assert large_count <= 10, count_statements.statements


# --- who may ----------------------------------------------------------------------------


OFFICER_STEPS = [
    ("assignPrivacyRequest", {}),
    ("verifyIdentity", {"method": "EMAIL_LINK"}),
    ("startPrivacyRequest", {}),
    ("completePrivacyRequest", {"outcome": "done"}),
    ("rejectPrivacyRequest", {"reason": "no"}),
    ("extendPrivacyRequest", {"months": 1, "reason": "later"}),
]


@pytest.mark.parametrize("caller", [CUSTOMER, AGENT, ADMIN])
@pytest.mark.parametrize(("name", "extra"), OFFICER_STEPS)
async def test_only_the_privacy_officer_takes_a_step(
    as_user: AsUser, caller: str, name: str, extra: dict[str, Any]
) -> None:
    customer_api = await as_user(CUSTOMER)
    gid = (await submit(customer_api))["id"]
    api = customer_api if caller == CUSTOMER else await as_user(caller)
    before = await state()

    refused = await step(api, name, {"requestId": gid, **extra})

    assert (refused["__typename"], refused["code"]) == ("ForbiddenError", "FORBIDDEN")
    assert await state() == before


@pytest.mark.parametrize("caller", [CUSTOMER, AGENT, ADMIN, None])
async def test_only_the_privacy_officer_reads_the_queue(
    as_user: AsUser, caller: str | None
) -> None:
    await submit(await as_user(CUSTOMER), "ERASURE", "my canary details 55")
    api = await as_user(caller)

    body = await api.gql(QUEUE)

    # The queue is nullable: a refusal nulls that field only.
    assert body["data"] == {"privacyRequestQueue": None}
    code = "UNAUTHENTICATED" if caller is None else "FORBIDDEN"
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [
        (code, ["privacyRequestQueue"])
    ]
    assert "canary details" not in str(body)


# --- registered by staff (P28) ----------------------------------------------------------

REGISTER_DEFAULTS = {"kind": "ERASURE", "verificationMethod": "STAFF_KNOWN_CONTACT"}


@pytest.mark.promise("P28")
@pytest.mark.parametrize("by", ["email", "id"])
async def test_staff_register_a_request_received_at_the_contact_address(
    as_user: AsUser, by: str
) -> None:
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    officer_user = await user_by_email(OFFICER)
    received = (datetime.now(UTC) - timedelta(days=4)).replace(microsecond=0)
    subject = (
        {"subjectEmail": "  Customer@Example.com "}
        if by == "email"
        else {"subjectId": to_global_id("User", customer.id)}
    )
    contact = (await officer.gql("{ privacyContact }"))["data"]["privacyContact"]
    assert contact == "contact@ocis.app"

    registered = await ok(
        officer,
        "registerPrivacyRequest",
        REGISTER_DEFAULTS
        | subject
        | {
            "details": "Mail of 12 May: erase my account",
            "receivedAt": received.isoformat(),
            "verificationNote": "Replied from the address on the account",
        },
    )

    assert registered["status"] == "IDENTITY_VERIFIED"
    assert registered["channel"] == "CONTACT_ADDRESS"
    assert registered["verificationMethod"] == "STAFF_KNOWN_CONTACT"
    assert registered["registeredBy"] == {"name": "Priya Privacy"}
    assert registered["subject"] == {"name": "Carla Customer", "email": CUSTOMER}
    assert datetime.fromisoformat(registered["receivedAt"]) == received
    assert datetime.fromisoformat(registered["dueAt"]) == received + timedelta(days=30)
    assert [(s["action"], s["toStatus"], s["note"]) for s in registered["history"]] == [
        ("REGISTERED", "RECEIVED", None),
        ("IDENTITY_VERIFIED", "IDENTITY_VERIFIED", "Replied from the address on the account"),
    ]
    stored = await PrivacyRequest.get(id=pk(registered["id"]))
    assert (stored.subject_id, stored.registered_by_id) == (customer.id, officer_user.id)
    assert await notice_kinds(customer) == [
        "privacy_request.registered",
        "privacy_request.identity_verified",
    ]
    mine = (await (await as_user(CUSTOMER)).gql("{ myPrivacyRequests { id status } }"))["data"]
    assert mine["myPrivacyRequests"] == [{"id": registered["id"], "status": "IDENTITY_VERIFIED"}]
    events = await AuditEvent.filter(action="privacy_request.register")
    assert [(e.actor_id, e.subject_id, e.field_names) for e in events] == [
        (
            officer_user.id,
            customer.id,
            [
                "PrivacyRequest.channel",
                "PrivacyRequest.details",
                "PrivacyRequest.kind",
                "PrivacyRequest.receivedAt",
            ],
        )
    ]
    # It is worked like any other: straight on to work.
    started = await ok(officer, "startPrivacyRequest", {"requestId": registered["id"]})
    assert started["status"] == "IN_PROGRESS"


@pytest.mark.promise("P28")
async def test_a_registered_request_the_subject_already_made_is_a_duplicate(
    as_user: AsUser,
) -> None:
    first = await submit(await as_user(CUSTOMER), "ERASURE")
    officer = await as_user(OFFICER)

    registered = await ok(
        officer,
        "registerPrivacyRequest",
        REGISTER_DEFAULTS | {"subjectEmail": CUSTOMER, "receivedAt": datetime.now(UTC).isoformat()},
    )

    assert registered["status"] == "DUPLICATE"
    assert registered["duplicateOf"] == {"id": first["id"], "status": "RECEIVED"}
    assert registered["registeredBy"] == {"name": "Priya Privacy"}


@pytest.mark.parametrize("caller", [CUSTOMER, AGENT, ADMIN])
async def test_only_the_privacy_officer_registers_a_request(as_user: AsUser, caller: str) -> None:
    api = await as_user(caller)
    before = await state()

    refused = await step(
        api,
        "registerPrivacyRequest",
        REGISTER_DEFAULTS
        | {"subjectEmail": CUSTOMER2, "receivedAt": datetime.now(UTC).isoformat()},
    )

    assert (refused["__typename"], refused["code"]) == ("ForbiddenError", "FORBIDDEN")
    assert await state() == before


# --- bad input --------------------------------------------------------------------------


def _now(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


REGISTER_BAD = [
    ({"receivedAt": _now()}, "InvalidInputError", None),
    (
        {
            "subjectEmail": CUSTOMER,
            "subjectId": str(to_global_id("User", UUID(int=1))),
            "receivedAt": _now(),
        },
        "InvalidInputError",
        None,
    ),
    ({"subjectEmail": "not an address", "receivedAt": _now()}, "InvalidInputError", "subjectEmail"),
    ({"subjectEmail": "nobody@example.com", "receivedAt": _now()}, "NotFoundError", "subjectEmail"),
    ({"subjectId": "garbage", "receivedAt": _now()}, "InvalidInputError", "subjectId"),
    (
        {"subjectId": str(to_global_id("Ticket", UUID(int=1))), "receivedAt": _now()},
        "InvalidInputError",
        "subjectId",
    ),
    (
        {"subjectId": str(to_global_id("User", UUID(int=1))), "receivedAt": _now()},
        "NotFoundError",
        "subjectId",
    ),
    ({"subjectEmail": CUSTOMER, "receivedAt": _now(DAY)}, "InvalidInputError", "receivedAt"),
    (
        {"subjectEmail": CUSTOMER, "receivedAt": _now(-400 * DAY)},
        "InvalidInputError",
        "receivedAt",
    ),
    (
        {"subjectEmail": CUSTOMER, "receivedAt": _now(), "details": "x" * 5001},
        "InvalidInputError",
        "details",
    ),
    (
        {"subjectEmail": CUSTOMER, "receivedAt": _now(), "verificationNote": "n" * 2001},
        "InvalidInputError",
        "verificationNote",
    ),
]


@pytest.mark.parametrize(("given", "typename", "field"), REGISTER_BAD)
async def test_bad_input_to_register_is_refused_and_changes_nothing(
    as_user: AsUser, given: dict[str, Any], typename: str, field: str | None
) -> None:
    officer = await as_user(OFFICER)
    before = await state()

    refused = await step(officer, "registerPrivacyRequest", REGISTER_DEFAULTS | given)

    assert refused["__typename"] == typename, refused
    assert refused.get("field") == field
    assert await state() == before


BAD_STEPS = [
    ("assignPrivacyRequest", {"assigneeId": "nonsense"}, "InvalidInputError", "assigneeId"),
    ("assignPrivacyRequest", {"assigneeId": "@agent"}, "InvalidInputError", "assigneeId"),
    ("verifyIdentity", {"method": "EMAIL_LINK", "note": "n" * 2001}, "InvalidInputError", "note"),
    ("verifyIdentity", {"method": "EMAIL_LINK", "note": "a\x00b"}, "InvalidInputError", "note"),
    ("startPrivacyRequest", {"note": "n" * 2001}, "InvalidInputError", "note"),
    ("completePrivacyRequest", {"outcome": "   "}, "InvalidInputError", "outcome"),
    ("completePrivacyRequest", {"outcome": "o" * 5001}, "InvalidInputError", "outcome"),
    ("rejectPrivacyRequest", {"reason": ""}, "InvalidInputError", "reason"),
    ("rejectPrivacyRequest", {"reason": "r" * 5001}, "InvalidInputError", "reason"),
    ("extendPrivacyRequest", {"months": 1, "reason": " "}, "InvalidInputError", "reason"),
]


@pytest.mark.parametrize(("name", "extra", "typename", "field"), BAD_STEPS)
async def test_bad_input_to_a_step_is_refused_and_changes_nothing(
    as_user: AsUser, name: str, extra: dict[str, Any], typename: str, field: str
) -> None:
    gid = (await submit(await as_user(CUSTOMER)))["id"]
    officer = await as_user(OFFICER)
    if extra.get("assigneeId") == "@agent":
        extra = {"assigneeId": to_global_id("User", (await user_by_email(AGENT)).id)}
    before = await state()

    refused = await step(officer, name, {"requestId": gid, **extra})

    assert (refused["__typename"], refused.get("field")) == (typename, field), refused
    assert await state() == before


@pytest.mark.parametrize(("name", "extra"), OFFICER_STEPS)
@pytest.mark.parametrize("request_id", ["garbage", "@ticket", "@unknown", "@others"])
async def test_a_step_on_a_request_that_is_not_one_changes_nothing(
    as_user: AsUser, name: str, extra: dict[str, Any], request_id: str
) -> None:
    await submit(await as_user(CUSTOMER))
    officer = await as_user(OFFICER)
    expected = ("InvalidInputError", "requestId")
    if request_id == "@ticket":
        request_id = str(to_global_id("Ticket", UUID(int=5)))
    elif request_id in ("@unknown", "@others"):
        request_id = str(to_global_id("PrivacyRequest", UUID(int=5)))
        expected = ("NotFoundError", "requestId")
    before = await state()

    refused = await step(officer, name, {"requestId": request_id, **extra})

    assert (refused["__typename"], refused.get("field")) == expected, refused
    assert await state() == before


async def test_a_bad_queue_cursor_or_page_size_is_refused(as_user: AsUser) -> None:
    officer = await as_user(OFFICER)

    for variables, field in (({"first": 0}, "first"), ({"after": "bogus"}, "after")):
        body = await officer.gql(QUEUE, variables)
        assert body["data"] == {"privacyRequestQueue": None}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"], field
