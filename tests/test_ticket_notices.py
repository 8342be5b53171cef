"""Customers are told what happens to their tickets (issue #10, item 4).

A staff member's public reply or status change reaches the requester: a notice in `myNotices`
for an account, and a mail (through the outbox, over a real SMTP server) with a link back; to
the address on the ticket for an email-only requester. An internal note reaches nobody, and
nobody is told of their own change. Each person chooses which of these come by mail;
security notices cannot be turned off.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from uuid import UUID

import pytest
from tortoise import Tortoise

import settings as config
from models import (
    AuditEvent,
    MailStatus,
    Notice,
    NoticePreference,
    Ticket,
    TicketMessage,
    TicketStatus,
    User,
)
from privacy import audit, mail, notices
from schema.relay import to_global_id
from tests.helpers import ORIGIN, Api, table_counts, user_by_email
from tests.smtp_server import Mailbox

AsUser = Callable[[str | None], Awaitable[Api]]

AGENT = "agent@example.com"
CUSTOMER = "customer@example.com"
WALK_IN = "walk-in.writer@example.org"
DEMO_NOTE = "Internal: customer verified by phone."
REPLY_TEXT = "We reset your password; please try again now."
NOTE_TEXT = "Internal: the customer sounded annoyed, be careful."
SECURITY_KINDS = (
    "identity.linked",
    "identity.unlinked",
    "account.signed_out_everywhere",
    "account.disabled",
    "account.enabled",
)

ADD = """mutation($id: ID!, $body: String!, $internal: Boolean!) {
  addMessage(input: {ticketId: $id, body: $body, internal: $internal}) {
    __typename ... on UserError { code message } } }"""
STATUS = """mutation($id: ID!, $status: TicketStatus!) {
  changeTicketStatus(input: {ticketId: $id, status: $status}) {
    __typename ... on UserError { code message } } }"""
OPEN_FOR = """mutation($email: String!) {
  createTicket(input: {subject: "Wrote in by mail", body: "My order never came.",
                       requesterEmail: $email, requesterName: "Wanda Walk-In"}) {
    __typename ... on TicketSuccess { ticket { id } } ... on UserError { message } } }"""
NOTICES = "{ myNotices { kind subject body emailedAt } }"
PREFERENCES = "{ myNoticePreferences { kind byMail alwaysByMail } }"
SET_PREFERENCE = """mutation($kind: String!, $byMail: Boolean!) {
  setNoticePreference(kind: $kind, byMail: $byMail) {
    __typename
    ... on SetNoticePreferenceSuccess { preference { kind byMail alwaysByMail } }
    ... on InvalidInputError { code message field }
    ... on UserError { code message } } }"""


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


async def _customers_open_ticket() -> Ticket:
    """The demo ticket of customer@ that agent@ works, still open (it holds a note too)."""
    customer = await user_by_email(CUSTOMER)
    agent = await user_by_email(AGENT)
    ticket = await Ticket.filter(
        requester_id=customer.id, assignee_id=agent.id, status=TicketStatus.OPEN
    ).first()
    assert ticket is not None
    return ticket


def _link(ticket_id: UUID) -> str:
    return f"{ORIGIN}/tickets/{to_global_id('Ticket', ticket_id)}"


async def _reply(api: Api, ticket_id: UUID, body: str, *, internal: bool = False) -> str:
    variables = {"id": to_global_id("Ticket", ticket_id), "body": body, "internal": internal}
    answer = (await api.gql(ADD, variables))["data"]["addMessage"]
    return str(answer["__typename"])


async def _set_status(api: Api, ticket_id: UUID, status: str) -> str:
    variables = {"id": to_global_id("Ticket", ticket_id), "status": status}
    answer = (await api.gql(STATUS, variables))["data"]["changeTicketStatus"]
    return str(answer["__typename"])


async def _raw_notices() -> list[dict[str, Any]]:
    connection = Tortoise.get_connection("default")
    return await connection.execute_query_dict('SELECT * FROM "notices"')


def _every_mail(smtp: Mailbox) -> str:
    return "\n".join(got.message.as_string() for got in smtp.received)


async def test_an_agents_public_reply_reaches_the_customer_in_platform_and_by_mail(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    ticket = await _customers_open_ticket()
    agent = await as_user(AGENT)
    assert await _reply(agent, ticket.id, REPLY_TEXT) == "AddMessageSuccess"

    customer = await as_user(CUSTOMER)
    (shown,) = (await customer.gql(NOTICES))["data"]["myNotices"]
    assert shown["kind"] == "ticket.replied"
    assert shown["subject"] == "There is a new reply on your OCIS ticket"
    assert _link(ticket.id) in shown["body"]
    # In-platform the notice points at the ticket; the reply itself is read there.
    assert REPLY_TEXT not in shown["body"]
    assert notices.REPLY_ON_THE_TICKET in shown["body"]
    assert shown["emailedAt"] is None

    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1)
    (got,) = smtp.received
    assert got.recipients == [CUSTOMER]
    assert got.message["Subject"] == "There is a new reply on your OCIS ticket"
    body = got.message.get_content()
    assert REPLY_TEXT in body
    assert _link(ticket.id) in body
    assert DEMO_NOTE not in _every_mail(smtp)
    (emailed,) = (await customer.gql(NOTICES))["data"]["myNotices"]
    assert emailed["emailedAt"] is not None
    # Told once: a second round sends nothing.
    assert await mail.deliver_due(mail_settings) == mail.Delivery()


@pytest.mark.promise("P19")
async def test_an_internal_note_tells_nobody_anything(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    ticket = await _customers_open_ticket()
    agent = await as_user(AGENT)
    assert await _reply(agent, ticket.id, NOTE_TEXT, internal=True) == "AddMessageSuccess"
    assert await Notice.all().count() == 0
    customer = await as_user(CUSTOMER)
    assert (await customer.gql(NOTICES))["data"]["myNotices"] == []
    assert await mail.deliver_due(mail_settings) == mail.Delivery()
    assert smtp.received == []


@pytest.mark.promise("P19")
async def test_a_notice_naming_an_internal_note_never_mails_it(
    demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    """Defence in depth: the mail reads only public replies, whatever a notice names."""
    ticket = await _customers_open_ticket()
    note = await TicketMessage.get(ticket_id=ticket.id, internal=True)
    assert ticket.requester_id is not None
    await notices.notify(
        ticket.requester_id,
        "ticket.replied",
        ticket=to_global_id("Ticket", ticket.id),
        message=str(note.id),
    )
    assert await mail.deliver_due(mail_settings) == mail.Delivery(cancelled=1)
    assert smtp.received == []


async def test_a_reply_erased_before_its_mail_went_out_is_not_sent(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    ticket = await _customers_open_ticket()
    agent = await as_user(AGENT)
    assert await _reply(agent, ticket.id, REPLY_TEXT) == "AddMessageSuccess"
    notice = await Notice.get(kind="ticket.replied")
    await TicketMessage.filter(id=notice.params["message"]).delete()
    assert await mail.deliver_due(mail_settings) == mail.Delivery(cancelled=1)
    assert smtp.received == []
    assert (await Notice.get(id=notice.id)).mail_status == MailStatus.CANCELLED


async def test_a_status_change_by_staff_tells_the_customer(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    ticket = await _customers_open_ticket()
    agent = await as_user(AGENT)
    assert await _set_status(agent, ticket.id, "SOLVED") == "TicketSuccess"
    customer = await as_user(CUSTOMER)
    (shown,) = (await customer.gql(NOTICES))["data"]["myNotices"]
    assert shown["kind"] == "ticket.status_changed"
    assert shown["subject"] == "Your OCIS ticket is now solved"
    assert "The status of your ticket changed to solved on " in shown["body"]
    assert _link(ticket.id) in shown["body"]
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1)
    (got,) = smtp.received
    assert got.recipients == [CUSTOMER]
    assert got.message["Subject"] == "Your OCIS ticket is now solved"
    assert _link(ticket.id) in got.message.get_content()


async def test_an_email_only_requester_is_mailed_at_the_address_on_the_ticket(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    agent = await as_user(AGENT)
    opened = (await agent.gql(OPEN_FOR, {"email": WALK_IN}))["data"]["createTicket"]
    assert opened["__typename"] == "TicketSuccess", opened
    ticket_gid = opened["ticket"]["id"]
    ticket = await Ticket.get(requester_email_index__isnull=False)
    assert ticket.requester_id is None
    assert await Notice.all().count() == 0  # opening it is not news to anyone

    assert await _reply(agent, ticket.id, REPLY_TEXT) == "AddMessageSuccess"
    assert await _set_status(agent, ticket.id, "PENDING") == "TicketSuccess"
    rows = await Notice.all().order_by("created_at")
    assert [(row.kind, row.user_id, row.address) for row in rows] == [
        ("ticket.replied", None, WALK_IN),
        ("ticket.status_changed", None, WALK_IN),
    ]
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=2)
    assert [got.recipients for got in smtp.received] == [[WALK_IN], [WALK_IN]]
    reply_mail, status_mail = (got.message.get_content() for got in smtp.received)
    assert REPLY_TEXT in reply_mail
    assert f"{ORIGIN}/tickets/{ticket_gid}" in reply_mail
    assert "changed to pending" in status_mail
    # Nobody's account lists them.
    assert all(row.user_id is None for row in rows)


async def test_nobody_is_told_of_their_own_change(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    ticket = await _customers_open_ticket()
    customer = await as_user(CUSTOMER)
    assert await _reply(customer, ticket.id, "Thanks, that worked.") == "AddMessageSuccess"
    assert await _set_status(customer, ticket.id, "CLOSED") == "TicketSuccess"
    assert await Notice.all().count() == 0
    assert (await customer.gql(NOTICES))["data"]["myNotices"] == []
    assert await mail.deliver_due(mail_settings) == mail.Delivery()
    assert smtp.received == []


async def test_a_refused_reply_or_status_change_tells_nobody(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    ticket = await _customers_open_ticket()
    agent = await as_user(AGENT)
    assert await _reply(agent, ticket.id, "   ") == "InvalidInputError"
    assert await _set_status(agent, ticket.id, "OPEN") == "InvalidInputError"  # already open
    other = await as_user("customer2@example.com")
    assert await _reply(other, ticket.id, "Let me in.") == "NotFoundError"
    assert await Notice.all().count() == 0
    assert await mail.deliver_due(mail_settings) == mail.Delivery()


async def test_the_notice_is_written_in_the_transaction_of_the_reply(
    as_user: AsUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = await _customers_open_ticket()
    agent = await as_user(AGENT)
    before = await table_counts()

    async def failing_record(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the audit trail is unavailable")

    monkeypatch.setattr(audit, "record", failing_record)
    response = await agent.post(
        ADD,
        {"id": to_global_id("Ticket", ticket.id), "body": REPLY_TEXT, "internal": False},
    )
    assert response.json()["data"] is None
    assert await table_counts() == before


@pytest.mark.promise("P10")
async def test_notice_rows_hold_no_personal_data(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    ticket = await _customers_open_ticket()
    agent = await as_user(AGENT)
    assert await _reply(agent, ticket.id, REPLY_TEXT) == "AddMessageSuccess"
    assert await _set_status(agent, ticket.id, "PENDING") == "TicketSuccess"
    assert (await agent.gql(OPEN_FOR, {"email": WALK_IN}))["data"]["createTicket"]
    walk_in = await Ticket.get(requester_email_index__isnull=False)
    assert await _reply(agent, walk_in.id, REPLY_TEXT) == "AddMessageSuccess"
    customer = await User.get(id=ticket.requester_id)
    rows = await _raw_notices()
    assert len(rows) == 3
    assert {row["kind"] for row in rows} == {"ticket.replied", "ticket.status_changed"}
    secrets = [
        REPLY_TEXT,
        ticket.subject,
        "Wrote in by mail",
        customer.name,
        CUSTOMER,
        WALK_IN,
        "Wanda Walk-In",
        "Alex Agent",
        AGENT,
    ]
    raw = repr(rows)
    for secret in secrets:
        assert secret not in raw
    # The params are exactly a time, the ticket's id and the message's id or the new status.
    for row in rows:
        params = row["params"] if isinstance(row["params"], str) else repr(row["params"])
        assert "ticket" in params
    replied = await Notice.filter(kind="ticket.replied").order_by("created_at")
    assert [sorted(notice.params) for notice in replied] == [["at", "message", "ticket"]] * 2
    status = await Notice.get(kind="ticket.status_changed")
    assert status.params["status"] == "pending"
    assert sorted(status.params) == ["at", "status", "ticket"]
    # After sending, the rows still hold nothing of what the mails said.
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=3)
    after = repr(await _raw_notices())
    for secret in secrets:
        assert secret not in after


async def test_a_kind_turned_off_is_kept_in_platform_but_not_mailed(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    ticket = await _customers_open_ticket()
    customer = await as_user(CUSTOMER)
    chosen = await customer.gql(SET_PREFERENCE, {"kind": "ticket.replied", "byMail": False})
    assert chosen["data"]["setNoticePreference"] == {
        "__typename": "SetNoticePreferenceSuccess",
        "preference": {"kind": "ticket.replied", "byMail": False, "alwaysByMail": False},
    }
    preferences = (await customer.gql(PREFERENCES))["data"]["myNoticePreferences"]
    by_kind = {each["kind"]: each for each in preferences}
    assert by_kind["ticket.replied"]["byMail"] is False
    assert by_kind["ticket.status_changed"]["byMail"] is True
    event = await AuditEvent.get(action="notice_preference.set")
    assert event.subject_id == ticket.requester_id
    assert event.entity_id == "ticket.replied"

    agent = await as_user(AGENT)
    assert await _reply(agent, ticket.id, REPLY_TEXT) == "AddMessageSuccess"
    (shown,) = (await customer.gql(NOTICES))["data"]["myNotices"]
    assert shown["kind"] == "ticket.replied"
    assert shown["emailedAt"] is None
    assert (await Notice.get(kind="ticket.replied")).mail_status == MailStatus.CANCELLED
    assert await mail.deliver_due(mail_settings) == mail.Delivery()
    assert smtp.received == []

    # The other kind still comes by mail; turned on again, replies do too.
    assert await _set_status(agent, ticket.id, "PENDING") == "TicketSuccess"
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1)
    again = await customer.gql(SET_PREFERENCE, {"kind": "ticket.replied", "byMail": True})
    assert again["data"]["setNoticePreference"]["preference"]["byMail"] is True
    assert await _reply(agent, ticket.id, "One more thing.") == "AddMessageSuccess"
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1)
    assert [got.message["Subject"] for got in smtp.received] == [
        "Your OCIS ticket is now pending",
        "There is a new reply on your OCIS ticket",
    ]
    assert await AuditEvent.filter(action="notice_preference.set").count() == 2


async def test_choosing_what_one_already_has_changes_and_audits_nothing(
    as_user: AsUser,
) -> None:
    customer = await as_user(CUSTOMER)
    before = await table_counts()
    for kind in ("ticket.replied", "account.disabled"):
        answer = await customer.gql(SET_PREFERENCE, {"kind": kind, "byMail": True})
        assert answer["data"]["setNoticePreference"]["__typename"] == "SetNoticePreferenceSuccess"
    assert await table_counts() == before


async def test_every_kind_is_listed_and_security_notices_are_always_mailed(
    as_user: AsUser,
) -> None:
    customer = await as_user(CUSTOMER)
    preferences = (await customer.gql(PREFERENCES))["data"]["myNoticePreferences"]
    assert [each["kind"] for each in preferences] == list(notices.TEMPLATES)
    assert all(each["byMail"] for each in preferences)
    always = {each["kind"] for each in preferences if each["alwaysByMail"]}
    assert always >= set(SECURITY_KINDS)
    assert "ticket.replied" not in always
    assert "ticket.status_changed" not in always


@pytest.mark.parametrize("kind", SECURITY_KINDS)
async def test_a_security_notice_cannot_be_turned_off(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings, kind: str
) -> None:
    customer = await as_user(CUSTOMER)
    before = await table_counts()
    answer = (await customer.gql(SET_PREFERENCE, {"kind": kind, "byMail": False}))["data"]
    assert answer["setNoticePreference"] == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "message": "Security notices, and mails that carry a link, are always sent by email.",
        "field": "kind",
    }
    assert await table_counts() == before
    # A row written behind the API's back changes nothing either.
    user = await user_by_email(CUSTOMER)
    await NoticePreference.create(user_id=user.id, kind=kind, by_mail=False)
    await notices.notify(user.id, kind, provider="Google")
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1)


async def test_a_mail_that_carries_a_link_cannot_be_turned_off(
    as_user: AsUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a kind marked optional by mistake: its mail is the only copy of its link."""
    kind = "test.linked_but_optional"
    monkeypatch.setitem(
        notices.TEMPLATES,
        kind,
        notices.Template(subject="A link", body="Open {link}.", optional=True),
    )
    customer = await as_user(CUSTOMER)
    answer = (await customer.gql(SET_PREFERENCE, {"kind": kind, "byMail": False}))["data"]
    assert answer["setNoticePreference"]["__typename"] == "InvalidInputError"
    assert await NoticePreference.all().count() == 0


@pytest.mark.parametrize(
    "kind",
    ["no.such.kind", "", "TICKET.REPLIED", " ticket.replied", "x" * 5000],
    ids=["unknown", "empty", "case", "space", "long"],
)
async def test_an_unknown_kind_is_a_typed_error_and_changes_nothing(
    as_user: AsUser, kind: str
) -> None:
    customer = await as_user(CUSTOMER)
    before = await table_counts()
    answer = (await customer.gql(SET_PREFERENCE, {"kind": kind, "byMail": False}))["data"]
    assert answer["setNoticePreference"] == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "message": "There is no notice of this kind.",
        "field": "kind",
    }
    assert await table_counts() == before


async def test_preferences_need_a_signed_in_caller(as_user: AsUser) -> None:
    anonymous = await as_user(None)
    before = await table_counts()
    answer = await anonymous.gql(SET_PREFERENCE, {"kind": "ticket.replied", "byMail": False})
    assert answer["data"]["setNoticePreference"]["__typename"] == "AuthenticationRequiredError"
    listed = await anonymous.gql(PREFERENCES)
    assert listed["data"] == {"myNoticePreferences": None}
    assert listed["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await table_counts() == before


async def test_one_persons_choice_is_not_anothers(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    customer = await as_user(CUSTOMER)
    await customer.gql(SET_PREFERENCE, {"kind": "ticket.status_changed", "byMail": False})
    other = await user_by_email("customer2@example.com")
    agent = await user_by_email(AGENT)
    theirs = await Ticket.filter(requester_id=other.id, assignee_id=agent.id).first()
    assert theirs is not None
    staff = await as_user(AGENT)
    assert await _set_status(staff, theirs.id, "SOLVED") == "TicketSuccess"
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1)
    assert smtp.received[0].recipients == ["customer2@example.com"]
    # Each sees their own choices only.
    mine = (await customer.gql(PREFERENCES))["data"]["myNoticePreferences"]
    seen = await (await as_user("customer2@example.com")).gql(PREFERENCES)
    assert {e["kind"]: e["byMail"] for e in mine}["ticket.status_changed"] is False
    assert all(each["byMail"] for each in seen["data"]["myNoticePreferences"])
