"""Marketing (P12): campaigns go only to accounts that consent, each mail carries a signed
one-click unsubscribe (RFC 8058) that works without a session and lands in the ledger."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

import settings as config
from models import (
    AuditEvent,
    Campaign,
    CampaignState,
    ConsentEntry,
    ConsentPurpose,
    ConsentSource,
    MailStatus,
    Notice,
    NoticeFanout,
    NoticePreference,
    Role,
    User,
    UserStatus,
)
from privacy import consent, fanout, mail, marketing, notices
from schema.relay import to_global_id
from tests.helpers import (
    ORIGIN,
    Api,
    StatementCounter,
    database_rows,
    table_counts,
    unique_email,
    user_by_email,
)
from tests.smtp_server import Mailbox

AsUser = Callable[[str | None], Awaitable[Api]]

ADMIN = "admin@example.com"
CUSTOMER = "customer@example.com"
CUSTOMER2 = "customer2@example.com"
AGENT = "agent@example.com"

pytestmark = pytest.mark.promise("P12")

CREATE = """
mutation Create($subject: String!, $body: String!) {
  createCampaign(subject: $subject, body: $body) {
    __typename
    ... on CampaignSuccess { campaign { id subject body state eligible queued sentAt } }
    ... on UserError { code message }
    ... on InvalidInputError { field }
  }
}
"""
SEND = """
mutation Send($id: ID!) {
  sendCampaign(id: $id) {
    __typename
    ... on CampaignSuccess { campaign { id state eligible queued sentAt } }
    ... on UserError { code message }
    ... on InvalidInputError { field }
    ... on NotFoundError { field }
  }
}
"""
CAMPAIGNS = "{ campaigns(first: 10) { id subject state eligible queued } }"
GRANT = """
mutation { grantConsent(input: {purpose: MARKETING_EMAIL}) {
  __typename ... on ConsentSuccess { consent { purpose granted } } } }
"""


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


@pytest.fixture
async def mail_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A mail client's HTTP: no cookies, no Origin, another address than the browser's."""
    transport = httpx.ASGITransport(app=app, client=("198.51.100.25", 41000))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        yield http


async def _create(api: Api, subject: str = "Spring news", body: str = "New: dark mode.") -> Any:
    answer = await api.gql(CREATE, {"subject": subject, "body": body})
    return answer["data"]["createCampaign"]


async def _send(api: Api, campaign_id: str) -> Any:
    return (await api.gql(SEND, {"id": campaign_id}))["data"]["sendCampaign"]


async def _campaign(api: Api, subject: str = "Spring news", body: str = "New: dark mode.") -> Any:
    created = await _create(api, subject, body)
    assert created["__typename"] == "CampaignSuccess", created
    sent = await _send(api, created["campaign"]["id"])
    assert sent["__typename"] == "CampaignSuccess", sent
    return sent["campaign"]


async def _fan_out_everything() -> int:
    total = 0
    while written := await fanout.fan_out_due():
        total += written
    return total


async def _consenting(*, granted: bool = True, **overrides: Any) -> User:
    """A verified customer account whose latest marketing-email decision is `granted`."""
    fields: dict[str, Any] = {"email_verified_at": datetime.now(UTC), **overrides}
    user = User(name="Mia Marketing", roles=[Role.CUSTOMER.value], **fields)
    user.set_email(unique_email())
    await user.save()
    await consent.append(
        user.id,
        ConsentPurpose.MARKETING_EMAIL,
        granted=granted,
        source=ConsentSource.WEB,
        ip_address=None,
        user_agent=None,
    )
    return user


def _unsubscribe_path(url: str) -> str:
    assert url.startswith(f"{ORIGIN}/unsubscribe/"), url
    return url.removeprefix(ORIGIN)


async def _one_click(http: httpx.AsyncClient, path: str) -> httpx.Response:
    """The POST of RFC 8058 section 3.2, as a mail client sends it."""
    return await http.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


async def _latest_marketing_decision(user_id: UUID) -> ConsentEntry | None:
    return (
        await ConsentEntry.filter(user_id=user_id, purpose=ConsentPurpose.MARKETING_EMAIL)
        .order_by("-created_at")
        .first()
    )


async def test_only_the_consenting_customer_gets_it_and_one_click_unsubscribes_for_good(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings, mail_client: httpx.AsyncClient
) -> None:
    """The issue's done-when: delivered through the real SMTP server, unsubscribed with no
    session exactly as a mail client would, recorded in the ledger, skipped next time."""
    customer = await as_user(CUSTOMER)
    assert (await customer.gql(GRANT))["data"]["grantConsent"]["consent"] == {
        "purpose": "MARKETING_EMAIL",
        "granted": True,
    }
    consenting, other = await user_by_email(CUSTOMER), await user_by_email(CUSTOMER2)
    admin = await as_user(ADMIN)
    sent = await _campaign(admin, "Spring news", "Dark mode is here.\n\nTry it today.")
    assert (sent["state"], sent["eligible"], sent["queued"]) == ("SENDING", 1, 0)
    assert await Notice.all().count() == 0  # written by the job, not the request

    assert await _fan_out_everything() == 1
    (owed,) = await Notice.filter(kind=marketing.CAMPAIGN_KIND)
    assert owed.user_id == consenting.id
    assert owed.user_id != other.id
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1)

    (got,) = smtp.received
    assert got.recipients == [CUSTOMER]
    assert got.message["Subject"] == "Spring news"
    body = got.message.get_content().replace("\r\n", "\n")
    assert body.startswith("Dark mode is here.\n\nTry it today.\n")
    header = got.message["List-Unsubscribe"]
    assert got.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.fullmatch(r"<(https?://[^<>\s]+)>", str(header))
    assert match, header
    url = match.group(1)
    assert url in body  # the link in the text too
    assert CUSTOMER not in url
    assert consenting.email not in url

    answer = await _one_click(mail_client, _unsubscribe_path(url))
    assert answer.status_code == 200, answer.text
    assert "You are unsubscribed" in answer.text
    assert "set-cookie" not in answer.headers
    latest = await _latest_marketing_decision(consenting.id)
    assert latest is not None
    assert (latest.granted, latest.source) == (False, "email_link")
    audit = await AuditEvent.filter(action="consent.withdraw", subject_id=consenting.id)
    assert [(e.entity, e.entity_id, e.actor_id) for e in audit] == [
        ("ConsentEntry", str(latest.id), consenting.id)
    ]
    ledger = (await customer.gql("{ myConsentLedger { purpose granted source } }"))["data"]
    assert ledger["myConsentLedger"][0] == {
        "purpose": "MARKETING_EMAIL",
        "granted": False,
        "source": "EMAIL_LINK",
    }

    second = await _campaign(admin, "Summer news", "Nothing for you.")
    assert second["eligible"] == 0
    assert await _fan_out_everything() == 0
    assert await mail.deliver_due(mail_settings) == mail.Delivery()
    assert len(smtp.received) == 1
    states = await Campaign.all().order_by("created_at").values_list("state", "queued")
    assert states == [(CampaignState.SENT, 1), (CampaignState.SENT, 0)]


async def test_a_second_click_changes_nothing_and_answers_the_same(
    app: Any, mail_client: httpx.AsyncClient
) -> None:
    user = await _consenting()
    path = f"/unsubscribe/{marketing.unsubscribe_token(app.state.settings, user.id)}"
    first = await _one_click(mail_client, path)
    assert first.status_code == 200
    before = await table_counts()
    again = await _one_click(mail_client, path)
    assert (again.status_code, again.text) == (200, first.text)
    assert await table_counts() == before
    withdrawals = await ConsentEntry.filter(user_id=user.id, granted=False).count()
    assert withdrawals == 1


async def test_the_page_changes_nothing_loads_nothing_and_its_form_unsubscribes(
    app: Any, mail_client: httpx.AsyncClient
) -> None:
    user = await _consenting()
    path = f"/unsubscribe/{marketing.unsubscribe_token(app.state.settings, user.id)}"
    before = await table_counts()
    page = await mail_client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers.get_list("content-security-policy")[0]
    assert page.headers["cache-control"] == "no-store"
    assert '<form method="post">' in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert "http" not in page.text.lower().replace("http-equiv", "")  # nothing external
    assert await table_counts() == before
    assert await marketing.still_eligible(user.id)
    # The page's own form: a plain form post, from nowhere in particular.
    posted = await mail_client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert posted.status_code == 200
    assert not await marketing.still_eligible(user.id)


def _tampered(token: str) -> str:
    payload, _, mac = token.rpartition(".")
    version, user_hex, purpose, expires = payload.split(".")
    return f"{version}.{user_hex}.{purpose}.{int(expires) + 1}.{mac}"


@pytest.mark.parametrize(
    "kind", ["forged", "tampered", "expired", "other-user", "other-purpose", "garbage", "long"]
)
async def test_a_bad_link_is_refused_with_a_clear_page_and_changes_nothing(
    app: Any, mail_client: httpx.AsyncClient, kind: str
) -> None:
    settings: config.Settings = app.state.settings
    user = await _consenting()
    genuine = marketing.unsubscribe_token(settings, user.id)
    other = await _consenting()
    tokens = {
        "forged": marketing.unsubscribe_token(replace(settings, master_key=b"f" * 32), user.id),
        "tampered": _tampered(genuine),
        "expired": marketing.unsubscribe_token(
            settings, user.id, now=time.time() - marketing.TOKEN_LIFETIME_SECONDS - 1
        ),
        "other-user": genuine.replace(user.id.hex, other.id.hex),
        "other-purpose": genuine.replace("marketing_email", "statistics"),
        "garbage": "not-a-token",
        "long": "u1." + "a" * 300,
    }
    before = await table_counts()
    for method in ("GET", "POST"):
        answer = await mail_client.request(
            method,
            f"/unsubscribe/{tokens[kind]}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 400, (method, answer.text)
        assert "This unsubscribe link is not valid" in answer.text
        assert "Nothing was changed." in answer.text
    assert await table_counts() == before
    assert await marketing.still_eligible(user.id)
    assert await marketing.still_eligible(other.id)


@pytest.mark.parametrize(
    "body",
    [b"", b"List-Unsubscribe=Yes", b"unsubscribe=One-Click"],
    ids=["empty", "other-value", "other-field"],
)
async def test_a_post_without_the_one_click_field_changes_nothing(
    app: Any, mail_client: httpx.AsyncClient, body: bytes
) -> None:
    user = await _consenting()
    path = f"/unsubscribe/{marketing.unsubscribe_token(app.state.settings, user.id)}"
    before = await table_counts()
    answer = await mail_client.post(
        path, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 400
    assert "Nothing was changed" in answer.text
    assert await table_counts() == before


async def test_an_erased_accounts_link_changes_nothing(
    app: Any, mail_client: httpx.AsyncClient
) -> None:
    user = await _consenting()
    await User.filter(id=user.id).update(status=UserStatus.ERASED)
    path = f"/unsubscribe/{marketing.unsubscribe_token(app.state.settings, user.id)}"
    before = await table_counts()
    assert (await _one_click(mail_client, path)).status_code == 400
    assert await table_counts() == before


async def test_a_link_signed_before_a_key_rotation_still_works(
    app: Any, mail_client: httpx.AsyncClient
) -> None:
    settings: config.Settings = app.state.settings
    user = await _consenting()
    old = replace(settings, master_key=b"o" * 32)
    token = marketing.unsubscribe_token(old, user.id)
    assert marketing.read_unsubscribe_token(settings, token) is None
    rotated = replace(settings, previous_master_keys=(old.master_key,))
    assert marketing.read_unsubscribe_token(rotated, token) == user.id


async def test_forged_links_from_one_address_are_rate_limited(
    app: Any, mail_client: httpx.AsyncClient
) -> None:
    for _ in range(60):
        assert (await mail_client.get("/unsubscribe/u1.forged")).status_code == 400
    refused = await mail_client.get("/unsubscribe/u1.forged")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    # A genuine link is counted per account, never refused for others' forgeries.
    user = await _consenting()
    path = f"/unsubscribe/{marketing.unsubscribe_token(app.state.settings, user.id)}"
    assert (await _one_click(mail_client, path)).status_code == 200


@pytest.mark.parametrize("email", [CUSTOMER, AGENT, None])
async def test_no_one_but_marketing_staff_writes_sends_or_lists_campaigns(
    as_user: AsUser, email: str | None
) -> None:
    admin = await as_user(ADMIN)
    draft = await _create(admin)
    caller = await as_user(email)
    before = await table_counts()
    created = await _create(caller)
    sent = await _send(caller, draft["campaign"]["id"])
    expected = "ForbiddenError" if email else "AuthenticationRequiredError"
    assert (created["__typename"], sent["__typename"]) == (expected, expected)
    listed = await caller.gql(CAMPAIGNS)
    assert listed["data"] == {"campaigns": None}
    assert listed["errors"][0]["extensions"]["code"] == (
        "FORBIDDEN" if email else "UNAUTHENTICATED"
    )
    assert "Spring news" not in str(listed)
    assert await table_counts() == before
    assert (await Campaign.get()).state == CampaignState.DRAFT


@pytest.mark.parametrize(
    ("subject", "body", "field"),
    [
        ("", "Hello.", "subject"),
        ("   ", "Hello.", "subject"),
        ("s" * 151, "Hello.", "subject"),
        ("Two\nlines", "Hello.", "subject"),
        ("bell\x07", "Hello.", "subject"),
        ("News", "  \n ", "body"),
        ("News", "b" * 20_001, "body"),
        ("News", "null\x00byte", "body"),
        ("News", "flip\u202eit", "body"),
    ],
    ids=[
        "empty-subject",
        "blank-subject",
        "long-subject",
        "multi-line-subject",
        "control-subject",
        "blank-body",
        "long-body",
        "control-body",
        "bidi-body",
    ],
)
async def test_a_bad_campaign_is_refused_with_a_typed_error_and_changes_nothing(
    as_user: AsUser, subject: str, body: str, field: str
) -> None:
    admin = await as_user(ADMIN)
    before = await table_counts()
    answer = await _create(admin, subject, body)
    assert (answer["__typename"], answer["code"], answer["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        field,
    ), answer
    assert await table_counts() == before


@pytest.mark.parametrize(
    ("campaign_id", "typename"),
    [
        ("not-an-id", "InvalidInputError"),
        (to_global_id("Announcement", uuid4()), "InvalidInputError"),
        (to_global_id("Campaign", uuid4()), "NotFoundError"),
    ],
    ids=["malformed", "another-type", "unknown"],
)
async def test_sending_a_bad_id_is_refused_and_changes_nothing(
    as_user: AsUser, campaign_id: str, typename: str
) -> None:
    admin = await as_user(ADMIN)
    await _create(admin)
    before = await table_counts()
    answer = await _send(admin, campaign_id)
    assert (answer["__typename"], answer["field"]) == (typename, "id"), answer
    assert await table_counts() == before
    assert (await Campaign.get()).state == CampaignState.DRAFT


async def test_listing_asks_for_a_sane_page(as_user: AsUser) -> None:
    admin = await as_user(ADMIN)
    for first in (0, 101):
        answer = await admin.gql(f"{{ campaigns(first: {first}) {{ id }} }}")
        assert answer["data"] == {"campaigns": None}
        assert answer["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_a_campaign_is_sent_once_and_audited_with_counts_never_addresses(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    people = [await _consenting() for _ in range(3)]
    await _consenting(granted=False)
    admin = await as_user(ADMIN)
    created = await _create(admin)
    first = await _send(admin, created["campaign"]["id"])
    again = await _send(admin, created["campaign"]["id"])
    assert first["campaign"]["eligible"] == again["campaign"]["eligible"] == 3
    assert first["campaign"]["sentAt"] == again["campaign"]["sentAt"]
    assert await NoticeFanout.all().count() == 1
    assert await _fan_out_everything() == 3
    assert await _send(admin, created["campaign"]["id"]) == {
        "__typename": "CampaignSuccess",
        "campaign": {**first["campaign"], "state": "SENT", "queued": 3},
    }
    assert await _fan_out_everything() == 0
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=3)
    assert sorted(got.recipients[0] for got in smtp.received) == sorted(
        person.email for person in people
    )
    listed = (await admin.gql(CAMPAIGNS))["data"]["campaigns"]
    assert [(c["subject"], c["state"], c["eligible"], c["queued"]) for c in listed] == [
        ("Spring news", "SENT", 3, 3)
    ]

    (campaign,) = await Campaign.all()
    admin_account = await user_by_email(ADMIN)
    sends = await AuditEvent.filter(action="campaign.send")
    assert [(e.entity, e.entity_id, e.actor_id, e.subject_id, e.purpose) for e in sends] == [
        (
            "Campaign",
            str(campaign.id),
            admin_account.id,
            None,
            "marketing email to 3 eligible accounts",
        )
    ]
    assert await AuditEvent.filter(action="campaign.create").count() == 1
    trail = repr(await AuditEvent.all().values())
    for person in people:
        assert person.email not in trail
        assert str(person.id) not in trail
    # The campaign row and its fan-out keep counts and ids of the campaign, never whom.
    rows = await database_rows()
    campaign_rows = [line for line in rows.splitlines() if str(campaign.id) in line]
    assert not any(person.email in line for line in campaign_rows for person in people)


async def test_eligible_is_the_latest_grant_of_an_open_verified_mailable_account(
    app: Any,
) -> None:
    yes = await _consenting()
    withdrew = await _consenting()
    await consent.append(
        withdrew.id,
        ConsentPurpose.MARKETING_EMAIL,
        granted=False,
        source=ConsentSource.WEB,
        ip_address=None,
        user_agent=None,
    )
    came_back = await _consenting(granted=False)
    await consent.append(
        came_back.id,
        ConsentPurpose.MARKETING_EMAIL,
        granted=True,
        source=ConsentSource.WEB,
        ip_address=None,
        user_agent=None,
    )
    never = User(name="Never Asked", email_verified_at=datetime.now(UTC))
    never.set_email(unique_email())
    await never.save()
    other_purpose = await _consenting(granted=False)
    for purpose in (ConsentPurpose.MARKETING_COOKIES, ConsentPurpose.STATISTICS):
        await consent.append(
            other_purpose.id,
            purpose,
            granted=True,
            source=ConsentSource.WEB,
            ip_address=None,
            user_agent=None,
        )
    disabled = await _consenting(status=UserStatus.DISABLED)
    erased = await _consenting(status=UserStatus.ERASED)
    restricted = await _consenting(status=UserStatus.RESTRICTED)
    unverified = await _consenting(email_verified_at=None)
    unfindable = await _consenting()
    await User.filter(id=unfindable.id).update(email_index=None)
    turned_off = await _consenting()
    await NoticePreference.create(
        user_id=turned_off.id, kind=marketing.CAMPAIGN_KIND, by_mail=False
    )

    expected = sorted([yes.id, came_back.id], key=lambda ident: ident.hex)
    assert await marketing.eligible_batch(None, 100) == expected
    assert await marketing.count_eligible() == 2
    assert await marketing.eligible_batch(expected[0], 100) == expected[1:]
    assert await marketing.eligible_batch(None, 1) == expected[:1]
    for person in (withdrew, never, other_purpose, disabled, erased, restricted, unverified):
        assert not await marketing.still_eligible(person.id)
    assert not await marketing.still_eligible(unfindable.id)
    assert not await marketing.still_eligible(turned_off.id)


async def test_the_eligibility_batch_is_one_statement_however_many_accounts(
    app: Any, count_statements: StatementCounter
) -> None:
    for _ in range(5):
        await _consenting()
    count_statements.statements.clear()
    small = await marketing.eligible_batch(None, 500)
    small_count = len(count_statements.statements)
    for _ in range(45):
        await _consenting()
    count_statements.statements.clear()
    large = await marketing.eligible_batch(None, 500)
    assert (len(small), len(large)) == (5, 50)
    assert small_count == len(count_statements.statements) == 1, count_statements.statements


async def test_a_withdrawal_after_the_batch_is_written_stops_the_mail(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    stays, leaves = await _consenting(), await _consenting()
    await _campaign(await as_user(ADMIN))
    assert await _fan_out_everything() == 2
    await consent.append(
        leaves.id,
        ConsentPurpose.MARKETING_EMAIL,
        granted=False,
        source=ConsentSource.WEB,
        ip_address=None,
        user_agent=None,
    )
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1, cancelled=1)
    assert [got.recipients for got in smtp.received] == [[stays.email]]
    cancelled = await Notice.get(user_id=leaves.id)
    assert cancelled.mail_status == MailStatus.CANCELLED


async def test_campaign_mail_is_mail_only_and_other_mail_has_no_unsubscribe_headers(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    customer = await as_user(CUSTOMER)
    await customer.gql(GRANT)
    await _campaign(await as_user(ADMIN))
    await _fan_out_everything()
    owner = await user_by_email(CUSTOMER)
    await notices.notify(owner.id, "identity.linked", provider="Google")
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=2)
    by_subject = {got.message["Subject"]: got.message for got in smtp.received}
    assert by_subject["Spring news"]["List-Unsubscribe"] is not None
    linked = by_subject[notices.TEMPLATES["identity.linked"].subject]
    assert linked["List-Unsubscribe"] is None
    assert linked["List-Unsubscribe-Post"] is None
    shown = (await customer.gql("{ myNotices { kind } }"))["data"]["myNotices"]
    assert shown == [{"kind": "identity.linked"}]
