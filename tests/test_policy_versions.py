"""Privacy policy versions (P31) and notices to every user (P16): published, fanned out in
batches by a job, mailed, accepted into the consent ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import settings as config
from models import (
    SIGN_IN_STATUSES,
    Announcement,
    AuditEvent,
    ConsentEntry,
    ConsentPurpose,
    MailStatus,
    Notice,
    NoticeFanout,
    PolicyVersion,
    User,
    UserStatus,
    crypto,
)
from privacy import fanout, mail, notices
from resolvers import policy
from tests.helpers import Api, StatementCounter, table_counts, user_by_email
from tests.smtp_server import Mailbox

AsUser = Callable[[str | None], Awaitable[Api]]

ADMIN = "admin@example.com"
CUSTOMER = "customer@example.com"
DEMO_PEOPLE = 7

PUBLISH = """
mutation Publish($input: PublishPolicyVersionInput!) {
  publishPolicyVersion(input: $input) {
    __typename
    ... on PublishPolicyVersionSuccess {
      policyVersion { version effectiveAt url text significant }
    }
    ... on UserError { code message }
    ... on InvalidInputError { field }
  }
}
"""
ACCEPT = """
mutation Accept($version: String!) {
  acceptPolicyVersion(version: $version) {
    __typename
    ... on AcceptPolicyVersionSuccess { consent { purpose granted policyVersion source } }
    ... on UserError { code message }
    ... on InvalidInputError { field }
    ... on NotFoundError { field }
  }
}
"""
ANNOUNCE = """
mutation Announce($input: SendNoticeToAllUsersInput!) {
  sendNoticeToAllUsers(input: $input) {
    __typename
    ... on SendNoticeToAllUsersSuccess { announcement { id title body } }
    ... on UserError { code message }
    ... on InvalidInputError { field }
  }
}
"""
POLICY = "{ privacyPolicy { version effectiveAt url text summary significant } }"
PENDING = "{ me { pendingPolicyAcceptance } }"
URL = "https://ocis.example.com/privacy/2026-03"


def draft(version: str = "2026-03", **overrides: Any) -> dict[str, Any]:
    return {"version": version, "url": URL, "significant": True, **overrides}


async def publish(api: Api, **input: Any) -> dict[str, Any]:
    body = await api.gql(PUBLISH, {"input": input})
    result: dict[str, Any] = body["data"]["publishPolicyVersion"]
    return result


async def more_people(count: int) -> None:
    """Accounts besides the demo ones (without a findable address: they get no mail)."""
    await User.bulk_create(
        [User(name=f"Person {n}", email=f"person-{n}@example.com") for n in range(count)]
    )


async def fan_out_everything() -> int:
    total = 0
    while written := await fanout.fan_out_due():
        total += written
    return total


async def open_accounts() -> list[User]:
    return await User.filter(status__in=SIGN_IN_STATUSES).only("id", "created_at")


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


async def test_the_policy_in_effect_is_public_and_is_the_built_in_one_at_first(
    as_user: AsUser,
) -> None:
    anonymous = await as_user(None)
    assert await anonymous.gql(POLICY) == {
        "data": {
            "privacyPolicy": {
                "version": "2026-01",
                "effectiveAt": None,
                "url": None,
                "text": None,
                "summary": None,
                "significant": False,
            }
        }
    }


@pytest.mark.promise("P31")
async def test_a_significant_version_is_pending_for_every_user_until_they_accept_it(
    as_user: AsUser,
) -> None:
    await more_people(300)
    admin = await as_user(ADMIN)
    published = await publish(admin, **draft(summary="Support replies are kept longer."))
    assert published["__typename"] == "PublishPolicyVersionSuccess"
    assert published["policyVersion"]["version"] == "2026-03"
    # The request only promised the notices: none was written in it.
    assert await Notice.filter(kind="policy.changed").count() == 0
    assert await fan_out_everything() == 300 + DEMO_PEOPLE

    accounts = await open_accounts()
    assert len(accounts) == 300 + DEMO_PEOPLE
    owed = await Notice.filter(kind="policy.changed").values_list("user_id", flat=True)
    assert sorted(owed, key=str) == sorted((a.id for a in accounts), key=str)
    for account in accounts:
        assert await policy.pending_policy_acceptance(account.id, account.created_at)

    anonymous = await as_user(None)
    current = (await anonymous.gql(POLICY))["data"]["privacyPolicy"]
    assert current["version"] == "2026-03"
    assert current["url"] == URL
    assert current["summary"] == "Support replies are kept longer."
    assert current["significant"] is True

    customer = await as_user(CUSTOMER)
    assert await customer.gql(PENDING) == {"data": {"me": {"pendingPolicyAcceptance": True}}}
    accepted = (await customer.gql(ACCEPT, {"version": "2026-03"}))["data"]
    assert accepted["acceptPolicyVersion"] == {
        "__typename": "AcceptPolicyVersionSuccess",
        "consent": {
            "purpose": "PRIVACY_POLICY",
            "granted": True,
            "policyVersion": "2026-03",
            "source": "WEB",
        },
    }
    assert await customer.gql(PENDING) == {"data": {"me": {"pendingPolicyAcceptance": False}}}
    me = await user_by_email(CUSTOMER)
    (entry,) = await ConsentEntry.filter(user_id=me.id)
    assert (entry.purpose, entry.granted, entry.policy_version) == (
        ConsentPurpose.PRIVACY_POLICY,
        True,
        "2026-03",
    )
    accept_audit = await AuditEvent.filter(action="policy.accept")
    assert [(e.subject_id, e.entity_id) for e in accept_audit] == [(me.id, str(entry.id))]
    # Everyone else still has to.
    still = [a for a in accounts if a.id != me.id]
    for account in still:
        assert await policy.pending_policy_acceptance(account.id, account.created_at)
    # And the consents recorded from now on name the version in effect.
    await customer.gql(
        "mutation { grantConsent(input: {purpose: MARKETING_EMAIL}) { __typename } }"
    )
    marketing = await ConsentEntry.get(user_id=me.id, purpose=ConsentPurpose.MARKETING_EMAIL)
    assert marketing.policy_version == "2026-03"


@pytest.mark.promise("P31")
@pytest.mark.promise("P16")
async def test_asking_to_notify_everyone_costs_the_same_for_ten_or_ten_thousand_users(
    as_user: AsUser, count_statements: StatementCounter
) -> None:
    admin = await as_user(ADMIN)

    async def statements(call: Callable[[], Awaitable[dict[str, Any]]]) -> int:
        before = len(count_statements.statements)
        result = await call()
        assert result["__typename"].endswith("Success"), result
        return len(count_statements.statements) - before

    few = await statements(lambda: publish(admin, **draft("2026-03")))
    few_notice = await statements(lambda: _announce(admin, "One"))
    await more_people(400)
    many = await statements(lambda: publish(admin, **draft("2026-04")))
    many_notice = await statements(lambda: _announce(admin, "Two"))
    assert (many, many_notice) == (few, few_notice)
    assert many < 40
    assert await Notice.all().count() == 0
    # The job then writes them all, in batches: each to the accounts open when it was asked.
    assert await fan_out_everything() == 2 * DEMO_PEOPLE + 2 * (400 + DEMO_PEOPLE)


async def _announce(api: Api, title: str) -> dict[str, Any]:
    body = await api.gql(ANNOUNCE, {"input": {"title": title, "body": "Hello."}})
    result: dict[str, Any] = body["data"]["sendNoticeToAllUsers"]
    return result


@pytest.mark.promise("P31")
async def test_a_significant_version_is_mailed_to_each_user_through_the_outbox(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    admin = await as_user(ADMIN)
    effective = datetime.now(UTC) + timedelta(days=30)
    published = await publish(admin, **draft(effectiveAt=effective.isoformat()))
    assert published["__typename"] == "PublishPolicyVersionSuccess"
    await fan_out_everything()
    report = await mail.deliver_due(mail_settings)
    assert report == mail.Delivery(sent=DEMO_PEOPLE)
    assert len(smtp.received) == DEMO_PEOPLE
    assert sorted(got.recipients[0] for got in smtp.received) == sorted(
        [
            ADMIN,
            "privacy@example.com",
            "lead@example.com",
            "agent@example.com",
            "agent2@example.com",
            CUSTOMER,
            "customer2@example.com",
        ]
    )
    for got in smtp.received:
        assert got.message["Subject"] == "The OCIS privacy policy is changing"
        text = got.message.get_content()
        assert "version 2026-03 of the OCIS privacy policy" in text
        assert effective.strftime("%Y-%m-%d %H:%M UTC") in text
        assert URL in text
    statuses = [row.mail_status for row in await Notice.filter(kind="policy.changed")]
    assert statuses == [MailStatus.SENT] * DEMO_PEOPLE
    # In the platform too, with the same words.
    customer = await as_user(CUSTOMER)
    shown = await customer.gql("{ myNotices { kind subject emailedAt } }")
    (notice,) = shown["data"]["myNotices"]
    assert notice["kind"] == "policy.changed"
    assert notice["subject"] == "The OCIS privacy policy is changing"
    assert notice["emailedAt"] is not None


@pytest.mark.promise("P31")
async def test_a_version_that_is_not_significant_notifies_nobody_and_asks_nothing(
    as_user: AsUser,
) -> None:
    admin = await as_user(ADMIN)
    result = await publish(admin, **draft(significant=False, url=None, text="Typo fixes."))
    assert result["policyVersion"]["text"] == "Typo fixes."
    assert await NoticeFanout.all().count() == 0
    assert await fan_out_everything() == 0
    customer = await as_user(CUSTOMER)
    assert await customer.gql(PENDING) == {"data": {"me": {"pendingPolicyAcceptance": False}}}
    anonymous = await as_user(None)
    assert (await anonymous.gql(POLICY))["data"]["privacyPolicy"]["version"] == "2026-03"


@pytest.mark.promise("P31")
async def test_a_scheduled_version_asks_for_acceptance_only_once_it_takes_effect(
    as_user: AsUser,
) -> None:
    admin = await as_user(ADMIN)
    # An account of long standing (the demo's was opened a moment ago, maybe after "the day").
    await User.filter(email_index=crypto.blind_index(CUSTOMER)).update(
        created_at=datetime.now(UTC) - timedelta(days=30)
    )
    later = datetime.now(UTC) + timedelta(days=14)
    await publish(admin, **draft(effectiveAt=later.isoformat()))
    anonymous = await as_user(None)
    assert (await anonymous.gql(POLICY))["data"]["privacyPolicy"]["version"] == "2026-01"
    customer = await as_user(CUSTOMER)
    assert await customer.gql(PENDING) == {"data": {"me": {"pendingPolicyAcceptance": False}}}
    await customer.gql("mutation { grantConsent(input: {purpose: STATISTICS}) { __typename } }")
    me = await user_by_email(CUSTOMER)
    assert (await ConsentEntry.get(user_id=me.id)).policy_version == "2026-01"
    # The day comes.
    await PolicyVersion.filter(version="2026-03").update(
        effective_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert (await anonymous.gql(POLICY))["data"]["privacyPolicy"]["version"] == "2026-03"
    assert await customer.gql(PENDING) == {"data": {"me": {"pendingPolicyAcceptance": True}}}


async def test_an_account_opened_after_a_change_took_effect_signed_up_under_it(
    as_user: AsUser,
) -> None:
    admin = await as_user(ADMIN)
    await publish(admin, **draft())
    newcomer = User(name="New Person", email="new@example.com")
    await newcomer.save()
    assert not await policy.pending_policy_acceptance(newcomer.id, newcomer.created_at)
    await fan_out_everything()
    assert not await Notice.exists(user_id=newcomer.id)


@pytest.mark.promise("P31")
async def test_accepting_an_unknown_or_superseded_version_is_refused_and_records_nothing(
    as_user: AsUser,
) -> None:
    admin = await as_user(ADMIN)
    await publish(admin, **draft("2026-03"))
    await publish(admin, **draft("2026-04", significant=False))
    customer = await as_user(CUSTOMER)
    unknown = (await customer.gql(ACCEPT, {"version": "1999-01"}))["data"]
    assert unknown["acceptPolicyVersion"] == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "message": "No such version of the privacy policy.",
        "field": "version",
    }
    old = (await customer.gql(ACCEPT, {"version": "2026-03"}))["data"]["acceptPolicyVersion"]
    assert (old["__typename"], old["code"], old["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        "version",
    )
    assert "accept version 2026-04" in old["message"]
    anonymous = await as_user(None)
    refused = (await anonymous.gql(ACCEPT, {"version": "2026-04"}))["data"]
    assert refused["acceptPolicyVersion"]["code"] == "UNAUTHENTICATED"
    assert await ConsentEntry.all().count() == 0
    # Accepting the version in effect settles the significant change before it.
    assert await customer.gql(PENDING) == {"data": {"me": {"pendingPolicyAcceptance": True}}}
    ok = (await customer.gql(ACCEPT, {"version": "2026-04"}))["data"]["acceptPolicyVersion"]
    assert ok["__typename"] == "AcceptPolicyVersionSuccess"
    assert await customer.gql(PENDING) == {"data": {"me": {"pendingPolicyAcceptance": False}}}


@pytest.mark.parametrize("mutation", ["grantConsent", "withdrawConsent"])
async def test_the_policy_is_accepted_by_version_not_granted_like_a_cookie(
    as_user: AsUser, mutation: str
) -> None:
    customer = await as_user(CUSTOMER)
    body = await customer.gql(
        f"mutation {{ {mutation}(input: {{purpose: PRIVACY_POLICY}})"
        " { __typename ... on InvalidInputError { code field } } }"
    )
    assert body["data"][mutation] == {
        "__typename": "InvalidInputError",
        "code": "INVALID_INPUT",
        "field": "purpose",
    }
    assert await ConsentEntry.all().count() == 0


@pytest.mark.promise("P31")
@pytest.mark.promise("P16")
@pytest.mark.parametrize(
    "email",
    ["customer@example.com", "agent@example.com", "lead@example.com", "privacy@example.com", None],
)
async def test_only_administrators_publish_policies_and_notify_everyone(
    as_user: AsUser, email: str | None
) -> None:
    caller = await as_user(email)
    before = await table_counts()
    published = await publish(caller, **draft())
    announced = await _announce(caller, "Sold")
    expected = "UNAUTHENTICATED" if email is None else "FORBIDDEN"
    assert (published["code"], announced["code"]) == (expected, expected)
    assert published["__typename"] == announced["__typename"]
    assert published["__typename"] == (
        "AuthenticationRequiredError" if email is None else "ForbiddenError"
    )
    assert await table_counts() == before


def _past() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).isoformat()


@pytest.mark.promise("P31")
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"version": "2026-02"}, "version"),  # published already (below)
        ({"version": "   "}, "version"),
        ({"version": "2026 03"}, "version"),
        ({"version": "v" * 31}, "version"),
        ({"url": "http://ocis.example.com/privacy"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "//evil.example/privacy"}, "url"),
        ({"url": "https://user:pw@ocis.example.com/p"}, "url"),
        ({"url": "https://ocis.example.com/a b"}, "url"),
        ({"url": None}, "url"),
        ({"url": "", "text": "  "}, "url"),
        ({"effectiveAt": "past"}, "effectiveAt"),
        ({"effectiveAt": "2030-01-01T00:00:00"}, "effectiveAt"),
        ({"effectiveAt": "before-scheduled"}, "effectiveAt"),
    ],
    ids=[
        "duplicate",
        "blank-version",
        "space-in-version",
        "long-version",
        "plain-http",
        "javascript",
        "protocol-relative",
        "credentials",
        "space-in-url",
        "no-url-no-text",
        "empty-url-blank-text",
        "past",
        "no-offset",
        "before-a-scheduled-one",
    ],
)
async def test_bad_versions_are_refused_with_a_typed_error_and_change_nothing(
    as_user: AsUser, overrides: dict[str, Any], field: str
) -> None:
    admin = await as_user(ADMIN)
    scheduled = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    first = await publish(admin, **draft("2026-02", significant=False, effectiveAt=scheduled))
    assert first["__typename"] == "PublishPolicyVersionSuccess"
    if overrides.get("effectiveAt") == "past":
        overrides = {**overrides, "effectiveAt": _past()}
    elif overrides.get("effectiveAt") == "before-scheduled":
        overrides = {
            **overrides,
            "effectiveAt": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        }
    before = await table_counts()
    result = await publish(admin, **{**draft("2026-03"), **overrides})
    assert (result["__typename"], result["code"], result["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        field,
    ), result
    assert await table_counts() == before


async def test_a_path_of_ours_is_a_valid_url_and_the_notice_points_into_ocis(
    as_user: AsUser,
) -> None:
    admin = await as_user(ADMIN)
    result = await publish(admin, **draft(url="/privacy/2026-03"))
    assert result["policyVersion"]["url"] == "/privacy/2026-03"
    (owed,) = await NoticeFanout.all()
    assert owed.params["where"] == "in OCIS, under Privacy"
    audit = await AuditEvent.filter(action="policy.publish")
    assert [(e.entity, e.subject_id) for e in audit] == [("PolicyVersion", None)]


@pytest.mark.promise("P16")
async def test_a_notice_to_everyone_is_recorded_and_mailed_per_user(
    as_user: AsUser, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    await more_people(20)
    admin = await as_user(ADMIN)
    text = "OCIS is joining Example Group on 1 March. Your data moves with it: {nothing} changes."
    sent = await _announce_text(admin, "OCIS has a new owner", text)
    assert sent["__typename"] == "SendNoticeToAllUsersSuccess"
    (announcement,) = await Announcement.all()
    admin_account = await user_by_email(ADMIN)
    assert announcement.created_by_id == admin_account.id
    assert await Notice.all().count() == 0
    assert await fan_out_everything() == 20 + DEMO_PEOPLE
    rows = await Notice.filter(kind=notices.ANNOUNCEMENT)
    assert len(rows) == 20 + DEMO_PEOPLE
    # Each notice names the announcement only: no copy of its words, no personal data.
    assert {tuple(sorted(row.params)) for row in rows} == {("announcement", "at")}
    assert {row.params["announcement"] for row in rows} == {str(announcement.id)}

    report = await mail.deliver_due(mail_settings)
    # The demo accounts are mailed; the others have no address the account owns.
    assert report == mail.Delivery(sent=DEMO_PEOPLE, cancelled=20)
    for got in smtp.received:
        assert got.message["Subject"] == "OCIS has a new owner"
        assert text in got.message.get_content()
    delivered = [row.mail_status for row in await Notice.filter(kind=notices.ANNOUNCEMENT)]
    assert sorted(delivered) == sorted(
        [MailStatus.SENT] * DEMO_PEOPLE + [MailStatus.CANCELLED] * 20
    )
    customer = await as_user(CUSTOMER)
    shown = await customer.gql("{ myNotices { kind subject body } }")
    (notice,) = shown["data"]["myNotices"]
    assert notice["kind"] == "platform.announcement"
    assert notice["subject"] == "OCIS has a new owner"
    assert notice["body"].startswith(text)
    audit = await AuditEvent.filter(action="announcement.send")
    assert [(e.entity, e.entity_id, e.actor_id) for e in audit] == [
        ("Announcement", str(announcement.id), admin_account.id)
    ]


async def _announce_text(api: Api, title: str, body: str) -> dict[str, Any]:
    result = await api.gql(ANNOUNCE, {"input": {"title": title, "body": body}})
    answer: dict[str, Any] = result["data"]["sendNoticeToAllUsers"]
    return answer


@pytest.mark.promise("P16")
@pytest.mark.parametrize(
    ("title", "body", "field"),
    [
        ("", "Hello.", "title"),
        ("Two\nlines", "Hello.", "title"),
        ("t" * 151, "Hello.", "title"),
        ("Sold", "   ", "body"),
        ("Sold", "b" * 20_001, "body"),
        ("Sold", "bell\x07", "body"),
    ],
    ids=["empty-title", "multi-line-title", "long-title", "blank-body", "long-body", "control"],
)
async def test_a_bad_notice_to_everyone_is_refused_and_sends_nothing(
    as_user: AsUser, title: str, body: str, field: str
) -> None:
    admin = await as_user(ADMIN)
    before = await table_counts()
    result = await _announce_text(admin, title, body)
    assert (result["__typename"], result["code"], result["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        field,
    )
    assert await table_counts() == before


@pytest.mark.promise("P16")
async def test_two_workers_in_small_batches_write_each_notice_once(
    as_user: AsUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "BATCH", 7)
    await more_people(40)
    disabled = User(name="Gone Away", email="gone@example.com", status=UserStatus.DISABLED)
    await disabled.save()
    admin = await as_user(ADMIN)
    await _announce(admin, "News")
    first, second = await asyncio.gather(fan_out_everything(), fan_out_everything())
    assert first + second == 40 + DEMO_PEOPLE
    owed = await Notice.all().values_list("user_id", flat=True)
    assert len(owed) == len(set(owed)) == 40 + DEMO_PEOPLE
    assert disabled.id not in owed
    (job,) = await NoticeFanout.all()
    assert job.done_at is not None
    assert job.notified == 40 + DEMO_PEOPLE


@pytest.mark.promise("P16")
async def test_the_job_loop_of_each_process_works_through_what_is_owed(
    as_user: AsUser, app: Any
) -> None:
    admin = await as_user(ADMIN)
    await _announce(admin, "News")
    settings = replace(app.state.settings, fanout_poll_seconds=0.01)
    job = asyncio.create_task(fanout.run_forever(settings))
    try:
        for _ in range(500):
            if await NoticeFanout.filter(done_at__isnull=False).exists():
                break
            await asyncio.sleep(0.01)
    finally:
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    assert await Notice.all().count() == DEMO_PEOPLE
