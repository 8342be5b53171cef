"""Every right, at the workflow level: for each kind of request, one submitted by its subject and
one registered by staff from the contact address (P28) are each carried received → identity
verified → in progress → completed through GraphQL, the subject told at every step.

The effects of completing some kinds (the export, restriction, erasure) are other modules';
here a rectification completes by its decisions and every other kind by its outcome."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import settings as config
from models import Notice, PrivacyRequestKind, User
from privacy import mail
from tests.helpers import Api, user_by_email
from tests.smtp_server import Mailbox

AsUser = Callable[[str | None], Awaitable[Api]]

CUSTOMER = "customer@example.com"
OFFICER = "privacy@example.com"

RESULT = """__typename
  ... on UserError { code message }
  ... on PrivacyRequestSuccess { request { id kind status outcome channel
    history { action fromStatus toStatus } } }"""
SUBMIT = (
    "mutation($input: SubmitPrivacyRequestInput!) { step: submitPrivacyRequest(input: $input) {"
    + RESULT
    + "} }"
)
REGISTER = (
    "mutation($input: RegisterPrivacyRequestInput!) { step: registerPrivacyRequest(input: $input)"
    " {" + RESULT + "} }"
)
STEPS = {
    name: f"mutation($input: {name[0].upper()}{name[1:]}Input!) {{ step: {name}(input: $input)"
    " {" + RESULT + "} }"
    for name in (
        "verifyIdentity",
        "startPrivacyRequest",
        "completePrivacyRequest",
        "decideCorrections",
    )
}
CORRECTIONS = [{"field": "NAME", "value": "Carla Rights"}]
KINDS = [kind.name for kind in PrivacyRequestKind]


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


async def run(api: Api, document: str, given: dict[str, Any]) -> dict[str, Any]:
    body = await api.gql(document, {"input": given})
    assert "errors" not in body, body
    answer = body["data"]["step"]
    assert answer["__typename"] == "PrivacyRequestSuccess", answer
    request: dict[str, Any] = answer["request"]
    return request


async def notice_kinds(user: User) -> list[str]:
    rows = await Notice.filter(user_id=user.id).order_by("created_at", "id")
    return [row.kind.removeprefix("privacy_request.") for row in rows]


def test_every_kind_is_covered() -> None:
    assert KINDS == ["ACCESS", "RECTIFICATION", "ERASURE", "RESTRICTION", "PORTABILITY"] + [
        "OBJECTION"
    ]


@pytest.mark.promise("P11")
@pytest.mark.promise("P28")
@pytest.mark.parametrize("channel", ["SELF_SERVICE", "CONTACT_ADDRESS"])
@pytest.mark.parametrize("kind", KINDS)
async def test_each_right_is_carried_from_received_to_completed_with_a_notice_at_each_step(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings, kind: str, channel: str
) -> None:
    officer = await as_user(OFFICER)
    customer = await user_by_email(CUSTOMER)
    extra = {"corrections": CORRECTIONS} if kind == "RECTIFICATION" else {}
    if channel == "SELF_SERVICE":
        request = await run(await as_user(CUSTOMER), SUBMIT, {"kind": kind, **extra})
        assert (request["status"], await notice_kinds(customer)) == ("RECEIVED", ["received"])
        request = await run(
            officer,
            STEPS["verifyIdentity"],
            {"requestId": request["id"], "method": "SIGNED_IN_SESSION"},
        )
        opened = ["received", "identity_verified"]
    else:
        received = datetime.now(UTC) - timedelta(days=1)
        request = await run(
            officer,
            REGISTER,
            {
                "kind": kind,
                "subjectEmail": CUSTOMER,
                "receivedAt": received.isoformat(),
                "verificationMethod": "STAFF_KNOWN_CONTACT",
                **extra,
            },
        )
        opened = ["registered", "identity_verified"]
    gid = request["id"]
    assert (request["kind"], request["channel"]) == (kind, channel)
    assert (request["status"], await notice_kinds(customer)) == ("IDENTITY_VERIFIED", opened)

    request = await run(officer, STEPS["startPrivacyRequest"], {"requestId": gid})
    assert (request["status"], await notice_kinds(customer)) == (
        "IN_PROGRESS",
        [*opened, "started"],
    )

    if kind == "RECTIFICATION":
        decisions = [{"field": "NAME", "accept": True}]
        request = await run(
            officer, STEPS["decideCorrections"], {"requestId": gid, "decisions": decisions}
        )
        assert request["outcome"] == "We corrected your name."
    else:
        outcome = f"Your {kind.lower()} request is answered."
        request = await run(
            officer, STEPS["completePrivacyRequest"], {"requestId": gid, "outcome": outcome}
        )
        assert request["outcome"] == outcome
    told = [*opened, "started", "completed"]
    assert (request["status"], await notice_kinds(customer)) == ("COMPLETED", told)
    first = "SUBMITTED" if channel == "SELF_SERVICE" else "REGISTERED"
    assert [(s["action"], s["fromStatus"], s["toStatus"]) for s in request["history"]] == [
        (first, None, "RECEIVED"),
        ("IDENTITY_VERIFIED", "RECEIVED", "IDENTITY_VERIFIED"),
        ("STARTED", "IDENTITY_VERIFIED", "IN_PROGRESS"),
        ("COMPLETED", "IN_PROGRESS", "COMPLETED"),
    ]

    # The subject follows it in-platform and by mail.
    mine = await (await as_user(CUSTOMER)).gql(
        "{ myPrivacyRequests { id status } myNotices(first: 10) { kind } }"
    )
    assert mine["data"]["myPrivacyRequests"] == [{"id": gid, "status": "COMPLETED"}]
    assert sorted(n["kind"] for n in mine["data"]["myNotices"]) == sorted(
        f"privacy_request.{step}" for step in told
    )
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=4)
    assert {tuple(got.recipients) for got in smtp.received} == {(CUSTOMER,)}
