"""Notice mail over a real SMTP server: delivered once, retried, given up, never leaked."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

import settings as config
from models import MailStatus, Notice, User, UserStatus, crypto
from privacy import mail, notices
from tests.smtp_server import Mailbox, free_port

CUSTOMER = "customer@example.com"


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


async def _customer() -> User:
    return await User.get(email_index=crypto.blind_index(CUSTOMER))


async def test_a_notice_reaches_its_owner_by_email_once(
    demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    user = await _customer()
    notice = await notices.notify(user.id, "identity.linked", provider="Google")
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1)
    (got,) = smtp.received
    assert got.recipients == [CUSTOMER]
    assert got.sender == "no-reply@ocis.test"
    assert got.message["To"] == CUSTOMER
    assert got.message["Subject"] == notices.TEMPLATES["identity.linked"].subject
    assert got.message["Auto-Submitted"] == "auto-generated"
    body = got.message.get_content()
    assert "Your Google account was linked to your OCIS account on " in body
    assert mail_settings.privacy_contact in body
    sent = await Notice.get(id=notice.id)
    assert sent.mail_status == MailStatus.SENT
    assert sent.mail_sent_at is not None
    # Nothing is due any more: a second round sends nothing.
    assert await mail.deliver_due(mail_settings) == mail.Delivery()
    assert len(smtp.received) == 1


async def test_a_refused_mail_is_retried_later_then_given_up_without_leaking(
    demo: None,
    smtp: Mailbox,
    mail_settings: config.Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ocis")
    smtp.refuse = True
    user = await _customer()
    notice = await notices.notify(user.id, "account.disabled")
    assert await mail.deliver_due(mail_settings) == mail.Delivery(retried=1)
    waiting = await Notice.get(id=notice.id)
    assert waiting.mail_status == MailStatus.PENDING
    assert waiting.mail_attempts == 1
    assert waiting.mail_due_at > datetime.now(UTC) + timedelta(seconds=20)
    # Not due yet: nothing is tried.
    assert await mail.deliver_due(mail_settings) == mail.Delivery()
    moment = waiting.mail_due_at
    for attempt in range(2, mail.MAX_ATTEMPTS + 1):
        report = await mail.deliver_due(mail_settings, now=moment)
        expected = (
            mail.Delivery(failed=1) if attempt == mail.MAX_ATTEMPTS else mail.Delivery(retried=1)
        )
        assert report == expected
        moment = (await Notice.get(id=notice.id)).mail_due_at
    given_up = await Notice.get(id=notice.id)
    assert given_up.mail_status == MailStatus.FAILED
    assert given_up.mail_attempts == mail.MAX_ATTEMPTS
    smtp.refuse = False
    assert await mail.deliver_due(mail_settings, now=moment + timedelta(days=1)) == mail.Delivery()
    assert smtp.received == []
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ocis"))
    assert str(notice.id) in ours
    assert CUSTOMER not in ours
    assert "disabled your OCIS account" not in ours


async def test_no_mail_server_listening_is_a_retry_not_a_crash(
    demo: None, mail_settings: config.Settings
) -> None:
    user = await _customer()
    await notices.notify(user.id, "identity.unlinked", provider="LinkedIn")
    nobody = replace(mail_settings, smtp_url=f"smtp://127.0.0.1:{free_port()}")
    assert await mail.deliver_due(nobody) == mail.Delivery(retried=1)


async def test_two_senders_at_once_send_each_notice_once(
    demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    user = await _customer()
    for provider in ("Google", "Microsoft", "LinkedIn", "Acme"):
        await notices.notify(user.id, "identity.linked", provider=provider)
    first, second = await asyncio.gather(
        mail.deliver_due(mail_settings), mail.deliver_due(mail_settings)
    )
    assert first.sent + second.sent == 4
    assert len(smtp.received) == 4
    bodies = sorted(got.message.get_content().split(" account")[0] for got in smtp.received)
    assert bodies == ["Your Acme", "Your Google", "Your LinkedIn", "Your Microsoft"]


async def test_a_claim_whose_sender_died_falls_due_again(
    demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    user = await _customer()
    notice = await notices.notify(user.id, "identity.linked", provider="Google")
    now = datetime.now(UTC)
    # A sender claimed it and vanished: until its lease runs out, nobody else sends it.
    await Notice.filter(id=notice.id).update(
        mail_status=MailStatus.SENDING, mail_attempts=1, mail_due_at=now + mail.LEASE
    )
    assert await mail.deliver_due(mail_settings) == mail.Delivery()
    later = now + mail.LEASE + timedelta(seconds=1)
    assert await mail.deliver_due(mail_settings, now=later) == mail.Delivery(sent=1)
    assert len(smtp.received) == 1


async def test_an_erased_account_is_not_mailed(
    demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    user = await _customer()
    notice = await notices.notify(user.id, "account.enabled")
    await User.filter(id=user.id).update(status=UserStatus.ERASED)
    assert await mail.deliver_due(mail_settings) == mail.Delivery(cancelled=1)
    assert (await Notice.get(id=notice.id)).mail_status == MailStatus.CANCELLED
    assert smtp.received == []


def test_smtp_urls_are_checked_and_production_needs_tls_beyond_loopback() -> None:
    base = {
        "OCIS_ENV": "production",
        "OCIS_MASTER_KEY": "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "PUBLIC_URL": "https://ocis.example.com",
        "OCIS_TRUSTED_PROXIES": "10.0.0.0/8",
    }
    with pytest.raises(config.ConfigurationError, match="SMTP_URL is required"):
        config.from_environ(base)
    with pytest.raises(config.ConfigurationError, match="must use TLS"):
        config.from_environ({**base, "SMTP_URL": "smtp://mail.example.com:25"})
    with pytest.raises(config.ConfigurationError, match=r"smtp\+starttls"):
        config.from_environ({"SMTP_URL": "http://mail.example.com"})
    with pytest.raises(config.ConfigurationError, match="SMTP_URL"):
        config.from_environ({"SMTP_URL": "smtps://mail.example.com:notaport"})
    tls = config.from_environ({**base, "SMTP_URL": "smtp+starttls://u:p%40ss@mail.example.com"})
    assert tls.smtp_url is not None
    target = mail.SmtpTarget.from_url(tls.smtp_url)
    assert (target.host, target.port, target.username, target.password) == (
        "mail.example.com",
        587,
        "u",
        "p@ss",
    )
    relay = config.from_environ({**base, "SMTP_URL": "smtp://127.0.0.1:25"})
    assert relay.sender == "OCIS <no-reply@ocis.example.com>"
    assert mail.SmtpTarget.from_url("smtps://mail.example.com").port == 465


@pytest.mark.parametrize(
    "problem", ["not indexed", "two recipients", "a newline"], ids=["unowned", "list", "header"]
)
async def test_an_address_the_account_does_not_own_or_that_is_no_single_address_is_not_mailed(
    demo: None, smtp: Mailbox, mail_settings: config.Settings, problem: str
) -> None:
    user = await _customer()
    if problem == "not indexed":
        # A provider's unvouched address: kept on the account, possibly someone else's.
        await User.filter(id=user.id).update(email_index=None)
    else:
        user.email = {
            "two recipients": "a@example.com, b@example.com",
            "a newline": "a@b\nBcc: c@d",
        }[problem]
        await user.save(update_fields=["email"])
    notice = await notices.notify(user.id, "identity.linked", provider="Google")
    assert await mail.deliver_due(mail_settings) == mail.Delivery(cancelled=1)
    assert (await Notice.get(id=notice.id)).mail_status == MailStatus.CANCELLED
    assert smtp.received == []


async def test_leases_and_retries_run_from_each_claim_not_from_the_round(
    demo: None, mail_settings: config.Settings
) -> None:
    """A round that looks far ahead (or runs long) must not hand out leases already over."""
    user = await _customer()
    notice = await notices.notify(user.id, "identity.linked", provider="Google")
    ahead = datetime.now(UTC) + timedelta(days=1)
    seen: list[datetime] = []

    def slow_refusal(target: mail.SmtpTarget, message: EmailMessage) -> None:
        time.sleep(0.3)
        raise smtplib.SMTPDataError(451, b"try again later")

    async def watch() -> None:
        await asyncio.sleep(0.15)
        seen.append((await Notice.get(id=notice.id)).mail_due_at)

    report, _ = await asyncio.gather(
        mail.deliver_due(mail_settings, now=ahead, send=slow_refusal), watch()
    )
    assert report == mail.Delivery(retried=1)
    (lease_end,) = seen
    assert lease_end <= datetime.now(UTC) + mail.LEASE
    retry = (await Notice.get(id=notice.id)).mail_due_at
    assert retry <= datetime.now(UTC) + mail.backoff(1)


async def test_a_notice_this_version_cannot_render_is_retried_and_the_round_goes_on(
    demo: None, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    user = await _customer()
    unknown = Notice(
        user_id=user.id, kind="from.a.newer.version", params={}, mail_due_at=datetime.now(UTC)
    )
    await unknown.save()
    await notices.notify(user.id, "identity.linked", provider="Google")
    report = await mail.deliver_due(mail_settings)
    assert report == mail.Delivery(sent=1, retried=1)
    (got,) = smtp.received
    assert got.message["Message-ID"].endswith("@ocis.test>")
    assert (await Notice.get(id=unknown.id)).mail_status == MailStatus.PENDING


WALK_IN = "walk-in.person@example.org"
SECRET_LINK = "https://ocis.test/accept/0123456789abcdef-the-secret"


@pytest.fixture
def linked_kind(monkeypatch: pytest.MonkeyPatch) -> str:
    """A notice kind whose mail carries a secret link (invitations and resets are such)."""
    kind = "test.link"
    monkeypatch.setitem(
        notices.TEMPLATES,
        kind,
        notices.Template(subject="A link for you", body="Open {link} within the hour."),
    )
    return kind


async def _raw_notice(notice_id: object) -> dict[str, Any]:
    from tortoise import Tortoise

    connection = Tortoise.get_connection("default")
    placeholder = "$1" if connection.capabilities.dialect == "postgres" else "?"
    rows = await connection.execute_query_dict(
        f"SELECT * FROM notices WHERE id = {placeholder}", [str(notice_id)]
    )
    return rows[0]


async def test_a_mail_to_an_address_without_account_carries_its_link_once(
    app: Any, smtp: Mailbox, mail_settings: config.Settings, linked_kind: str
) -> None:
    notice = await notices.notify_address(WALK_IN, linked_kind, link=SECRET_LINK)
    # At rest, neither the address nor the link is readable.
    stored = await _raw_notice(notice.id)
    assert stored["user_id"] is None
    assert WALK_IN not in str(stored)
    assert "the-secret" not in str(stored)
    # In-platform text never shows the link, only the mail does.
    shown = notices.render(await Notice.get(id=notice.id), contact="privacy@ocis.test")
    assert "the-secret" not in shown.body
    assert notices.LINK_SENT_BY_MAIL in shown.body
    assert await mail.deliver_due(mail_settings) == mail.Delivery(sent=1)
    (got,) = smtp.received
    assert got.recipients == [WALK_IN]
    assert SECRET_LINK in got.message.get_content()
    # Once sent, no copy of the link is left behind.
    sent = await Notice.get(id=notice.id)
    assert sent.mail_status == MailStatus.SENT
    assert sent.link is None
    assert (await _raw_notice(notice.id))["link"] is None


async def test_a_link_stays_for_a_retry_and_goes_when_the_mail_is_given_up(
    app: Any, smtp: Mailbox, mail_settings: config.Settings, linked_kind: str
) -> None:
    smtp.refuse = True
    notice = await notices.notify_address(WALK_IN, linked_kind, link=SECRET_LINK)
    assert await mail.deliver_due(mail_settings) == mail.Delivery(retried=1)
    assert (await Notice.get(id=notice.id)).link == SECRET_LINK
    await Notice.filter(id=notice.id).update(mail_attempts=mail.MAX_ATTEMPTS - 1)
    later = datetime.now(UTC) + timedelta(days=1)
    assert await mail.deliver_due(mail_settings, now=later) == mail.Delivery(failed=1)
    given_up = await Notice.get(id=notice.id)
    assert given_up.mail_status == MailStatus.FAILED
    assert given_up.link is None


async def test_a_mail_to_an_address_is_never_among_anyones_notices(
    demo: None, linked_kind: str
) -> None:
    user = await _customer()
    await notices.notify_address(CUSTOMER, linked_kind, link=SECRET_LINK)
    assert await notices.for_user(user.id, first=10) == []


async def test_a_notice_kind_and_its_link_must_agree(app: Any, linked_kind: str) -> None:
    with pytest.raises(ValueError, match="link"):
        await notices.notify_address(WALK_IN, linked_kind)
    with pytest.raises(ValueError, match="link"):
        await notices.notify_address(WALK_IN, "account.disabled", link=SECRET_LINK)
    with pytest.raises(ValueError, match="unknown"):
        await notices.notify_address(WALK_IN, "no.such.kind")
    assert await Notice.all().count() == 0
