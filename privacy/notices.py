"""Notices: what OCIS tells one person, kept in-platform and sent to their email address.

A notice is written in the transaction of the change it reports, so the change and the
promise to tell are committed together; privacy/mail.py delivers the email afterwards.
Params hold only what the text needs (a provider's name, a time), never personal data:
the address is read from the account when the mail is sent. A mail to someone without an
account (an invitation, a walk-in requester) carries its address, sealed; a secret link
(``{link}`` in a template) is sealed too, only the mail shows it, and it is cleared once
the mail is sent or given up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from models import Announcement, MailStatus, Notice


@dataclass(frozen=True, slots=True)
class Template:
    subject: str
    body: str


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
    "account.enabled": Template(
        subject="Your OCIS account was enabled again",
        body="An administrator enabled your OCIS account again on {at}. You can sign in "
        "as before.\n\n" + _IF_NOT_YOU,
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

# Notices the law requires OCIS to give (a changed policy, a business transfer): a person's
# notice preferences never hold them back.
LEGAL_NOTICES = frozenset({"policy.changed", ANNOUNCEMENT})


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


LINK_SENT_BY_MAIL = "(the link was sent by email)"


def new_notice(kind: str, params: dict[str, str], link: str | None = None) -> Notice:
    """An unsaved notice of this kind, its mail due now (bulk writers set its owner)."""
    if kind not in TEMPLATES:
        raise ValueError(f"unknown notice kind {kind!r}")
    if ("{link}" in TEMPLATES[kind].body) != (link is not None):
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
    """Record a notice for one account; its email is due at once."""
    notice = new_notice(kind, params, link)
    notice.user_id = user_id
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


def render(notice: Notice, *, contact: str, for_mail: bool = False) -> Template:
    """The subject and text of a notice (the same words in-platform and by email; only the
    mail carries its link)."""
    template = TEMPLATES[notice.kind]
    link = notice.link if for_mail and notice.link else LINK_SENT_BY_MAIL
    values = {**notice.params, "contact": contact, "link": link}
    if notice.kind == ANNOUNCEMENT:
        values |= _announcement_words(notice.params.get("announcement", ""))
    return Template(
        subject=template.subject.format_map(values), body=template.body.format_map(values)
    )


async def for_user(user_id: UUID, *, first: int, unread_only: bool = False) -> list[Notice]:
    """One person's newest notices."""
    query = Notice.filter(user_id=user_id)
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
