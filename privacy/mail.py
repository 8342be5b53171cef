"""Email delivery of notices over SMTP, at least once, from any number of processes.

Each process looks for due notices every few seconds. A sender claims a notice through
privacy/leases.py, the claim every durable job uses too: it bumps the attempt counter and sets a
lease in one statement, so two processes never send the same attempt, and a sender that dies
mid-send leaves a notice that falls due again when the lease runs out. Failures are retried with
growing delays, then marked failed. Logs name the notice and the kind of failure, never the
address or the text.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import unquote, urlsplit
from uuid import UUID

from tortoise.queryset import QuerySet

import settings as config
from models import MailStatus, Notice, User, UserStatus
from observability import MAIL_QUEUE_DEPTH, MAIL_QUEUE_OLDEST_SECONDS
from privacy import marketing
from privacy.leases import Queue, claim
from privacy.leases import backoff as backoff  # where tests and callers find it
from privacy.notices import UNVERIFIED_MAY_RECEIVE, load_texts, read_for_mail, render

logger = logging.getLogger("ocis.mail")

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
BATCH = 50
SMTP_TIMEOUT_SECONDS = 20
DUE = (MailStatus.PENDING, MailStatus.SENDING)
# A pending mail is due at mail_due_at; a claimed one's lease runs out then.
MAIL_QUEUE = Queue(
    table="notices",
    due='"mail_status" IN (:pending, :sending) AND "mail_due_at" <= :now',
    take='"mail_status" = :sending, "mail_attempts" = "mail_attempts" + 1, "mail_due_at" = :until',
    order='"mail_due_at"',
    attempts="mail_attempts",
)


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        default_port = {"smtps": 465, "smtp+starttls": 587}.get(parts.scheme, 25)
        return cls(
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


Sender = Callable[[SmtpTarget, EmailMessage], None]


def send_over_smtp(target: SmtpTarget, message: EmailMessage) -> None:
    """Hand one message to the SMTP server (blocking: run it in a thread)."""
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if target.scheme == "smtps":
        client = smtplib.SMTP_SSL(
            target.host, target.port, timeout=SMTP_TIMEOUT_SECONDS, context=context
        )
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=SMTP_TIMEOUT_SECONDS)
    with client:
        if target.scheme == "smtp+starttls":
            client.starttls(context=context)
        if target.username:
            client.login(target.username, target.password or "")
        client.send_message(message)


class _OneLineHeader(UnstructuredHeader, BaseHeader):
    """A URL header (RFC 2369) is never folded: folding a long one would encode it (RFC 2047),
    which no mail client reads as a URL."""

    def fold(self, *, policy: email.policy.Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _OneLineHeader)
MAIL_POLICY = email.policy.default.clone(header_factory=_HEADERS)


@dataclass(slots=True)
class Delivery:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0


def compose(
    settings: config.Settings,
    notice: Notice,
    address: str,
    read_now: Mapping[str, str] | None = None,
) -> EmailMessage:
    unsubscribe = (
        marketing.unsubscribe_url(settings, notice.user_id)
        if notice.kind == marketing.CAMPAIGN_KIND and notice.user_id is not None
        else None
    )
    if notice.kind == marketing.CAMPAIGN_KIND and unsubscribe is None:
        raise ValueError("a marketing mail needs an account to unsubscribe")
    text = render(
        notice,
        contact=settings.privacy_contact,
        public_url=settings.public_url,
        for_mail=True,
        read_now={**(read_now or {}), **({"unsubscribe": unsubscribe} if unsubscribe else {})},
    )
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = settings.sender
    message["To"] = address
    message["Subject"] = text.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    # A domain of our own, so no DNS lookup runs here and no internal host name leaks.
    domain = settings.sender.rsplit("@", 1)[-1].rstrip(">").strip() or "localhost"
    message["Message-ID"] = make_msgid(idstring=notice.id.hex, domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    if unsubscribe is not None:
        # RFC 8058 one-click: the mail client POSTs List-Unsubscribe=One-Click to the URL.
        message["List-Unsubscribe"] = f"<{unsubscribe}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text.body)
    return message


async def _recipient(notice: Notice) -> str | None:
    """The account's own address: one that finds the account (its blind index is set).

    A provider's address that it did not vouch for, or that another account holds, is kept
    on the account but never mailed: it may well be someone else's. A mail to someone
    without an account goes to the address it was written for. An address not verified yet
    gets only its verification.
    """
    if notice.user_id is None:
        address = (notice.address or "").strip()
    else:
        user = await User.get_or_none(id=notice.user_id).only(
            "id", "email", "email_index", "email_verified_at", "status"
        )
        if user is None or user.status == UserStatus.ERASED or user.email_index is None:
            return None
        if user.email_verified_at is None and notice.kind not in UNVERIFIED_MAY_RECEIVE:
            return None
        address = (user.email or "").strip()
    plain = "@" in address and not any(c.isspace() or c in ',;<>"' for c in address)
    return address if plain else None


async def deliver_due(
    settings: config.Settings,
    *,
    limit: int = BATCH,
    send: Sender = send_over_smtp,
    now: datetime | None = None,
) -> Delivery:
    """Send the notices whose mail is due (at `now`, default the present); answer what
    happened to them. Leases and retry times run from the moment of each claim."""
    report = Delivery()
    if not settings.smtp_url:
        return report
    target = SmtpTarget.from_url(settings.smtp_url)
    # One at a time, so each lease starts when its send does; a notice tried once this round
    # waits for the next one, however far ahead `now` looks.
    tried: list[UUID] = []
    while len(tried) < limit:
        taken = await claim(
            MAIL_QUEUE,
            limit=1,
            skip=tried,
            pending=MailStatus.PENDING.value,
            sending=MailStatus.SENDING.value,
            now=now or datetime.now(UTC),
            until=datetime.now(UTC) + LEASE,
        )
        if not taken:
            break
        (row,) = taken
        tried.append(row.id)
        outcome = await _deliver(settings, target, send, row.id, row.attempt)
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


async def _deliver(
    settings: config.Settings, target: SmtpTarget, send: Sender, notice_id: UUID, attempt: int
) -> str:
    """One claimed notice: sent, cancelled (no address to write to, or nothing left to tell),
    retried or failed."""
    this_attempt = Notice.filter(id=notice_id, mail_attempts=attempt)
    try:
        notice = await Notice.get(id=notice_id)
        await load_texts([notice])
        address = await _recipient(notice)
        read_now = await read_for_mail(notice) if address is not None else None
        message = (
            compose(settings, notice, address, read_now)
            if address is not None and read_now is not None
            else None
        )
    except ValueError:  # no header can carry this address
        message = None
    except Exception as error:  # e.g. a notice kind this version does not know
        return await _failed(this_attempt, notice_id, attempt, error)
    if message is None:
        await this_attempt.update(mail_status=MailStatus.CANCELLED, link=None)
        return "cancelled"
    try:
        await asyncio.to_thread(send, target, message)
    except Exception as error:  # the mail server's refusal, a timeout, a broken connection
        return await _failed(this_attempt, notice_id, attempt, error)
    # The mail carries the only copy of its link that is left.
    await this_attempt.update(
        mail_status=MailStatus.SENT, mail_sent_at=datetime.now(UTC), link=None
    )
    return "sent"


async def _failed(
    this_attempt: QuerySet[Notice], notice_id: UUID, attempt: int, error: Exception
) -> str:
    final = attempt >= MAX_ATTEMPTS
    logger.warning(
        "mail of notice %s not delivered (attempt %d%s): %s",
        notice_id,
        attempt,
        ", giving up" if final else "",
        type(error).__name__,
    )
    # Given up: the link it carried goes too; a retry keeps it.
    await this_attempt.update(
        mail_status=MailStatus.FAILED if final else MailStatus.PENDING,
        mail_due_at=datetime.now(UTC) + backoff(attempt),
        **({"link": None} if final else {}),
    )
    return "failed" if final else "retried"


async def has_left(notice_id: UUID) -> bool:
    """Whether the notice's mail is no longer waiting to go (sent, cancelled, given up, or the
    notice erased): what a job that must not outrun the subject's mail waits for."""
    notice = await Notice.get_or_none(id=notice_id).only("id", "mail_status")
    return notice is None or notice.mail_status not in (MailStatus.PENDING, MailStatus.SENDING)


async def measure_queue(now: datetime | None = None) -> None:
    """The depth of the mail queue, and how long its oldest due mail has waited (metrics)."""
    moment = now or datetime.now(UTC)
    MAIL_QUEUE_DEPTH.set(await Notice.filter(mail_status__in=DUE).count())
    oldest = (
        await Notice.filter(mail_status=MailStatus.PENDING, mail_due_at__lte=moment)
        .order_by("mail_due_at")
        .first()
        .values_list("mail_due_at", flat=True)
    )
    waited = (moment - oldest).total_seconds() if isinstance(oldest, datetime) else 0.0
    MAIL_QUEUE_OLDEST_SECONDS.set(max(0.0, waited))


async def run_forever(settings: config.Settings) -> None:
    """The delivery loop of one process; stops only when cancelled."""
    while True:
        try:
            await deliver_due(settings)
            await measure_queue()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the loop outlives a bad moment of the database
            logger.error("mail delivery round failed: %s", type(error).__name__)
        await asyncio.sleep(settings.mail_poll_seconds)
