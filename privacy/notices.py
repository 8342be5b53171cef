"""Notices: what OCIS tells one person, kept in-platform and sent to their email address.

A notice is written in the transaction of the change it reports, so the change and the
promise to tell are committed together; privacy/mail.py delivers the email afterwards.
Params hold only what the text needs (a provider's name, a time), never personal data:
the address is read from the account when the mail is sent. A mail to someone without an
account (an invitation, a walk-in requester) carries its address, sealed; a secret link
(``{link}`` in a template) is sealed too, only the mail shows it, and it is cleared once
the mail is sent or given up.

A kind its reader may turn off (the news of their tickets) is still kept in-platform when
they do, but never mailed. Security notices, and any mail that carries a link, are always
mailed. A reply's text is not kept in the notice either: the mail reads it when it is sent,
so a reply erased meanwhile is never sent, and only the mail shows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import (
    Announcement,
    Campaign,
    MailStatus,
    Notice,
    NoticePreference,
    PrivacyRequestStep,
    TicketMessage,
)
from privacy import marketing


@dataclass(frozen=True, slots=True)
class Template:
    subject: str
    body: str
    # Its reader may choose to have it only in-platform (never a security notice).
    optional: bool = False


ANNOUNCEMENT = "platform.announcement"


_IF_NOT_YOU = (
    "If this was not you, sign in to OCIS, review the sign-in methods of your account and "
    "change your password, or write to {contact}."
)

TEMPLATES: dict[str, Template] = {
    "identity.linked": Template(
        subject="A sign-in method was added to your OCIS account",
        body="Your {provider} account was linked to your OCIS account on {at}. It can now "
        "be used to sign in.\n\n" + _IF_NOT_YOU,
    ),
    "identity.unlinked": Template(
        subject="A sign-in method was removed from your OCIS account",
        body="Your {provider} account was unlinked from your OCIS account on {at}. It can no "
        "longer be used to sign in.\n\n" + _IF_NOT_YOU,
    ),
    "account.signed_out_everywhere": Template(
        subject="You were signed out of OCIS everywhere",
        body="Every session and app sign-in of your OCIS account was ended on {at}.\n\n"
        + _IF_NOT_YOU,
    ),
    "account.disabled": Template(
        subject="Your OCIS account was disabled",
        body="An administrator disabled your OCIS account on {at}: nobody can sign in to it "
        "until it is enabled again. To ask why, or to object, write to {contact}.",
    ),
    "staff.invited": Template(
        subject="You are invited to join the OCIS staff",
        body="An administrator invited this address to work in OCIS as {roles}{team}. To "
        "accept, open this link before {expires}:\n\n{link}\n\nIt works once. If you "
        "already have an OCIS account with this address, sign in to it first. If you did not "
        "expect this, ignore this mail or write to {contact}.",
    ),
    "account.enabled": Template(
        subject="Your OCIS account was enabled again",
        body="An administrator enabled your OCIS account again on {at}. You can sign in "
        "as before.\n\n" + _IF_NOT_YOU,
    ),
    "ticket.replied": Template(
        subject="There is a new reply on your OCIS ticket",
        body="Your ticket received a new reply on {at}:\n\n{reply}\n\n"
        "Read the whole conversation and answer at {public_url}/tickets/{ticket}",
        optional=True,
    ),
    "ticket.status_changed": Template(
        subject="Your OCIS ticket is now {status}",
        body="The status of your ticket changed to {status} on {at}.\n\n"
        "See it at {public_url}/tickets/{ticket}",
        optional=True,
    ),
    "policy.changed": Template(
        subject="The OCIS privacy policy is changing",
        body="We published version {version} of the OCIS privacy policy. It takes effect on "
        "{effective} and changes how we handle your personal data, so we ask you to read it "
        "({where}) and accept it the next time you sign in to OCIS.\n\n"
        "Questions about it: write to {contact}.",
    ),
    # The words are an administrator's, kept once in `announcements` (the notice names it).
    ANNOUNCEMENT: Template(subject="{title}", body="{text}\n\nQuestions: write to {contact}."),
}

# A marketing campaign (P12): mail only, to accounts that consent (privacy/marketing.py); its
# words are read from the campaign when each mail is sent, and the mail alone carries its
# one-click unsubscribe link, made for its reader at that moment (privacy/mail.py).
TEMPLATES[marketing.CAMPAIGN_KIND] = Template(
    subject="{subject}",
    body="{text}\n\n--\nYou get this mail because you agreed to marketing email from OCIS. "
    "To stop it, open this link (no sign-in needed): {unsubscribe}\n"
    "You can also withdraw your consent in OCIS, under Privacy. Questions: write to {contact}.",
    optional=True,
)

# Notices the law requires OCIS to give (a changed policy, a business transfer): a person's
# notice preferences never hold them back.
LEGAL_NOTICES = frozenset({"policy.changed", ANNOUNCEMENT})


_IGNORE_IF_NOT_YOU = (
    "If this was not you, you need not do anything: without the link nothing changes. To tell "
    "us, write to {contact}."
)

# Local accounts (resolvers/local_accounts.py). Links are single-use and expire.
TEMPLATES.update(
    {
        "account.verify": Template(
            subject="Confirm your email address for OCIS",
            body="To finish opening your OCIS account, confirm that this address is yours by "
            "following this link within 24 hours:\n\n{link}\n\nUntil then the account cannot "
            "be used. " + _IGNORE_IF_NOT_YOU,
        ),
        "account.registration_attempt": Template(
            subject="Someone tried to open an OCIS account with your address",
            body="On {at} someone tried to register a new OCIS account with this address, which "
            "already belongs to your account. Nothing was changed. If it was you and you have "
            "forgotten your password, ask for a reset on the sign-in page.\n\n" + _IF_NOT_YOU,
        ),
        "account.username_taken": Template(
            subject="Your OCIS account was not opened",
            body="On {at} an OCIS account was asked for with this address, but the username "
            "chosen is taken. No account was opened: register again with another username, "
            "or none.\n\n" + _IGNORE_IF_NOT_YOU,
        ),
        "account.password_reset": Template(
            subject="Reset your OCIS password",
            body="A new password was asked for your OCIS account on {at}. To choose one, "
            "follow this link within 30 minutes (it works once):\n\n{link}\n\nChoosing a new "
            "password signs you out everywhere. " + _IGNORE_IF_NOT_YOU,
        ),
        "account.password_changed": Template(
            subject="Your OCIS password was changed",
            body="The password of your OCIS account was changed on {at}, and {ended}.\n\n"
            + _IF_NOT_YOU,
        ),
        "account.email_change_requested": Template(
            subject="A new email address was asked for your OCIS account",
            body="On {at} a new email address was asked for your OCIS account. It takes effect "
            "only once confirmed from the new address; until then mail keeps coming here.\n\n"
            + _IF_NOT_YOU,
        ),
        "account.email_change_confirm": Template(
            subject="Confirm your new email address for OCIS",
            body="To make this the email address of your OCIS account, follow this link "
            "within 24 hours (it works once):\n\n{link}\n\n" + _IGNORE_IF_NOT_YOU,
        ),
        "account.email_change_attempt": Template(
            subject="Someone tried to move an OCIS account to your address",
            body="On {at} someone asked to make this address the email address of another "
            "OCIS account. It already belongs to an account, so nothing was changed.\n\n"
            + _IGNORE_IF_NOT_YOU,
        ),
        "account.email_changed": Template(
            subject="Your OCIS account has a new email address",
            body="On {at} the email address of your OCIS account was changed from this one to "
            "a new one, confirmed from there. Mail now goes to the new address.\n\n" + _IF_NOT_YOU,
        ),
    }
)

# Privacy requests (privacy/requests.py): the subject is told of every step. Params hold dates
# and the step's id only; what the officer wrote (a reason, an outcome) is read from the step
# when the mail is sent, and shown in-platform on the request's history.
_FOLLOW_IT = "Follow it in OCIS, under your privacy requests, or write to {contact}."
TEMPLATES.update(
    {
        "privacy_request.received": Template(
            subject="We received your privacy request",
            body="We received your privacy request on {received}. We answer it by {due}.\n\n"
            + _FOLLOW_IT,
        ),
        "privacy_request.registered": Template(
            subject="We registered the privacy request you sent us",
            body="The request you sent to {contact} was registered for your OCIS account as "
            "received on {received}. We answer it by {due}.\n\n" + _FOLLOW_IT,
        ),
        "privacy_request.duplicate": Template(
            subject="Your privacy request joins the one you already made",
            body="On {at} you asked again for something your open privacy request already "
            "asks. We linked the new request to the open one, which we answer by {due}; the "
            "new one is closed and nothing is done twice.\n\n" + _FOLLOW_IT,
        ),
        "privacy_request.corrections_added": Template(
            subject="Your corrections join the rectification you already asked for",
            body="On {at} you proposed corrections while your request to correct your data "
            "was still open. We added them to the open request, which we answer by {due}, and "
            "decide them all together; the new request is closed.\n\n" + _FOLLOW_IT,
        ),
        "privacy_request.assigned": Template(
            subject="A privacy officer handles your request",
            body="Your privacy request received on {received} was given to a privacy officer "
            "on {at}. We answer it by {due}.\n\n" + _FOLLOW_IT,
        ),
        "privacy_request.identity_verified": Template(
            subject="We confirmed that your privacy request is yours",
            body="On {at} we confirmed that the privacy request received on {received} comes "
            "from you. We answer it by {due}.\n\n" + _FOLLOW_IT,
        ),
        "privacy_request.started": Template(
            subject="We are working on your privacy request",
            body="On {at} we started work on your privacy request received on {received}. We "
            "answer it by {due}.\n\n" + _FOLLOW_IT,
        ),
        "privacy_request.completed": Template(
            subject="Your privacy request is answered",
            body="On {at} we completed your privacy request received on {received}:\n\n"
            "{reason}\n\n" + _FOLLOW_IT,
        ),
        "privacy_request.rejected": Template(
            subject="We could not grant your privacy request",
            body="On {at} we declined your privacy request received on {received}, for this "
            "reason:\n\n{reason}\n\nYou may lodge a complaint with a data protection "
            "authority. " + _FOLLOW_IT,
        ),
        "privacy_request.restriction_lifted": Template(
            subject="The restriction of your data's processing is being lifted",
            body="On {at} the privacy officer decided to lift the restriction of processing "
            "that your privacy request received on {received} put in place, for this reason:"
            "\n\n{reason}\n\nWe tell you before it is lifted: it takes effect once this "
            "notice has been sent to you. " + _FOLLOW_IT,
        ),
        "privacy_request.erasure_blocked": Template(
            subject="The law requires us to keep your data for now",
            body="On {at} we decided to erase your data as your privacy request received on "
            "{received} asks, but a legal obligation requires us to keep it for now:\n\n"
            "{reason}\n\nWe erase it as soon as that obligation ends, and tell you then. "
            + _FOLLOW_IT,
        ),
        "privacy_request.child_account": Template(
            subject="Your OCIS account will be erased",
            body="On {at} we found that your OCIS account belongs to someone under 16, who may "
            "not use OCIS:\n\n{reason}\n\nWe stopped using its data and erase it now. If "
            "this is a mistake, write to {contact} at once.",
        ),
        "privacy_export.ready": Template(
            subject="Your copy of your data is ready",
            body="The copy of your data you asked for is ready. Download it within 7 days (the "
            "link works {downloads} times; signed in to OCIS, you need no link) until {expires}:"
            "\n\n{public_url}/privacy/exports/{export}?token={link}\n\n" + _FOLLOW_IT,
        ),
        "privacy_export.failed": Template(
            subject="We could not prepare your copy of your data",
            body="Preparing the copy of your data you asked for failed. Your privacy request "
            "stays open: our privacy officer is told and will prepare it again. " + _FOLLOW_IT,
        ),
        "privacy_request.extended": Template(
            subject="We need more time for your privacy request",
            body="On {at} we extended the deadline of your privacy request received on "
            "{received} to {due}, for this reason:\n\n{reason}\n\n" + _FOLLOW_IT,
        ),
    }
)

# What an account whose address is not verified yet may be mailed: the address may well be
# someone else's, who never asked for anything from OCIS.
UNVERIFIED_MAY_RECEIVE = frozenset({"account.verify"})


class UnknownNoticeKind(ValueError):
    pass


class AlwaysMailed(ValueError):
    pass


def known_kind(kind: str) -> Template:
    template = TEMPLATES.get(kind)
    if template is None:
        raise UnknownNoticeKind(f"unknown notice kind {kind!r}")
    return template


def always_mailed(kind: str) -> bool:
    """Security notices and mails that carry a link cannot be turned off."""
    template = known_kind(kind)
    return not template.optional or "{link}" in template.body


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


LINK_SENT_BY_MAIL = "(the link was sent by email)"
UNSUBSCRIBE_BY_MAIL = "(the link is in the email)"
REPLY_ON_THE_TICKET = "(open the ticket to read it)"
REASON_ON_THE_REQUEST = "(read it in the history of your request)"


def new_notice(kind: str, params: dict[str, str], link: str | None = None) -> Notice:
    """An unsaved notice of this kind, its mail due now (bulk writers set its owner)."""
    if ("{link}" in known_kind(kind).body) != (link is not None):
        raise ValueError(f"notice kind {kind!r} and its link do not match")
    now = datetime.now(UTC)
    return Notice(
        kind=kind,
        params={"at": _when(now), **params},
        link=link,
        mail_status=MailStatus.PENDING,
        mail_due_at=now,
    )


async def notify(user_id: UUID, kind: str, *, link: str | None = None, **params: str) -> Notice:
    """Record a notice for one account; its email is due at once, unless they turned it off."""
    notice = new_notice(kind, params, link)
    notice.user_id = user_id
    if not await wants_mail(user_id, kind):
        notice.mail_status = MailStatus.CANCELLED
    await notice.save()
    return notice


async def notify_address(
    address: str, kind: str, *, link: str | None = None, **params: str
) -> Notice:
    """Record a mail to an address that has no account (never shown in-platform)."""
    notice = new_notice(kind, params, link)
    notice.address = address
    await notice.save()
    return notice


def render(
    notice: Notice,
    *,
    contact: str,
    public_url: str = "",
    for_mail: bool = False,
    read_now: Mapping[str, str] | None = None,
) -> Template:
    """The subject and text of a notice (the same words in-platform and by email; only the
    mail carries its link, and what was read for it when sent: `read_now`)."""
    template = TEMPLATES[notice.kind]
    link = notice.link if for_mail and notice.link else LINK_SENT_BY_MAIL
    values = {
        "reply": REPLY_ON_THE_TICKET,
        "unsubscribe": UNSUBSCRIBE_BY_MAIL,
        "reason": REASON_ON_THE_REQUEST,
        **notice.params,
        "contact": contact,
        "public_url": public_url,
        "link": link,
        **(read_now if for_mail and read_now else {}),
    }
    if notice.kind == ANNOUNCEMENT:
        values |= _announcement_words(notice.params.get("announcement", ""))
    return Template(
        subject=template.subject.format_map(values), body=template.body.format_map(values)
    )


async def read_for_mail(notice: Notice) -> dict[str, str] | None:
    """What the mail shows that the notice does not keep: the public reply it reports, read
    at sending time. None when that is gone (erased), so there is nothing left to send.
    A campaign's words are read too, and only while its reader still consents."""
    if notice.kind == marketing.CAMPAIGN_KIND:
        return await _campaign_words(notice)
    body = TEMPLATES[notice.kind].body
    if "{reason}" in body:
        return await _read_step_note(notice)
    if "{reply}" not in body:
        return {}
    try:
        message_id = UUID(notice.params.get("message", ""))
    except ValueError:
        return None
    # Never an internal note, whatever the notice names.
    message = await TicketMessage.get_or_none(id=message_id, internal=False)
    if message is None or not message.body:
        return None
    return {"reply": message.body}


async def _campaign_words(notice: Notice) -> dict[str, str] | None:
    try:
        campaign_id = UUID(notice.params.get("campaign", ""))
    except ValueError:
        return None
    if notice.user_id is None or not await marketing.still_eligible(notice.user_id):
        return None
    campaign = await Campaign.get_or_none(id=campaign_id).only("id", "subject", "body")
    return None if campaign is None else {"subject": campaign.subject, "text": campaign.body}


async def _read_step_note(notice: Notice) -> dict[str, str] | None:
    """The note of the privacy-request step a notice reports; None when the step is gone."""
    try:
        step_id = UUID(notice.params.get("step", ""))
    except ValueError:
        return None
    step = await PrivacyRequestStep.get_or_none(id=step_id, subject_id=notice.user_id)
    if step is None:
        return None
    return {"reason": step.note or "(no reason was written)"}


async def wants_mail(user_id: UUID, kind: str) -> bool:
    if always_mailed(kind):
        return True
    choice = await NoticePreference.get_or_none(user_id=user_id, kind=kind).only("by_mail")
    return choice is None or choice.by_mail


@dataclass(frozen=True, slots=True)
class Preference:
    kind: str
    by_mail: bool
    always_by_mail: bool


async def preferences(user_id: UUID) -> list[Preference]:
    """Every kind of notice and whether this person gets it by mail, in the templates' order."""
    chosen = {
        row.kind: row.by_mail
        for row in await NoticePreference.filter(user_id=user_id).only("kind", "by_mail")
    }
    return [
        Preference(kind, always or chosen.get(kind, True), always)
        for kind in TEMPLATES
        for always in (always_mailed(kind),)
    ]


async def set_preference(user_id: UUID, kind: str, *, by_mail: bool) -> bool:
    """Choose mail or not for one kind; answer whether that changed anything. A kind that is
    always mailed refuses to be turned off."""
    if always_mailed(kind):
        if not by_mail:
            raise AlwaysMailed(f"notice kind {kind!r} is always mailed")
        return False
    mine = NoticePreference.filter(user_id=user_id, kind=kind)
    if await mine.filter(by_mail=not by_mail).update(by_mail=by_mail):
        return True
    if by_mail:
        return False  # no choice stored means mailed already
    try:
        async with in_transaction():  # a savepoint: a lost race leaves the rest intact
            await NoticePreference.create(user_id=user_id, kind=kind, by_mail=False)
    except IntegrityError:
        return False  # turned off at the same moment by another request
    return True


async def for_user(user_id: UUID, *, first: int, unread_only: bool = False) -> list[Notice]:
    """One person's newest notices (marketing is mail only, never among them)."""
    query = Notice.filter(user_id=user_id).exclude(kind=marketing.CAMPAIGN_KIND)
    if unread_only:
        query = query.filter(read_at__isnull=True)
    return await query.order_by("-created_at", "-id").limit(first)


async def mark_read(user_id: UUID, notice_ids: list[UUID]) -> int:
    """Mark one's own notices read; ids of other people's notices change nothing."""
    if not notice_ids:
        return 0
    return await Notice.filter(user_id=user_id, id__in=notice_ids, read_at__isnull=True).update(
        read_at=datetime.now(UTC)
    )


# Announcements never change once written, so every process may keep their words.
_announcements: dict[str, dict[str, str]] = {}
_KEPT_ANNOUNCEMENTS = 64


def _announcement_words(announcement_id: str) -> dict[str, str]:
    kept = _announcements.get(announcement_id)
    if kept is None:
        raise LookupError(f"announcement {announcement_id} was not loaded")
    return kept


async def load_texts(notices: Iterable[Notice]) -> None:
    """Read the announcements these notices name (render needs them), one query for all."""
    wanted = {
        notice.params.get("announcement", "") for notice in notices if notice.kind == ANNOUNCEMENT
    } - _announcements.keys()
    if not wanted:
        return
    if len(_announcements) + len(wanted) > _KEPT_ANNOUNCEMENTS:
        _announcements.clear()
    for row in await Announcement.filter(id__in=list(wanted)).only("id", "title", "body"):
        _announcements[str(row.id)] = {"title": row.title, "text": row.body}
    for missing in wanted - _announcements.keys():
        # Gone (its author's account erased keeps it; only a database edit removes it).
        _announcements[missing] = {"title": "A notice from OCIS", "text": "(withdrawn)"}
