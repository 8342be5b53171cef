"""Notices: what OCIS tells one person, kept in-platform and sent to their email address.

A notice is written in the transaction of the change it reports, so the change and the
promise to tell are committed together; privacy/mail.py delivers the email afterwards.
Params hold only what the text needs (a provider's name, a time), never personal data:
the address is read from the account when the mail is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from models import MailStatus, Notice


@dataclass(frozen=True, slots=True)
class Template:
    subject: str
    body: str


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
}


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def notify(user_id: UUID, kind: str, **params: str) -> Notice:
    """Record a notice for one account; its email is due at once."""
    if kind not in TEMPLATES:
        raise ValueError(f"unknown notice kind {kind!r}")
    now = datetime.now(UTC)
    notice = Notice(
        user_id=user_id,
        kind=kind,
        params={"at": _when(now), **params},
        mail_status=MailStatus.PENDING,
        mail_due_at=now,
    )
    await notice.save()
    return notice


def render(notice: Notice, *, contact: str) -> Template:
    """The subject and text of a notice (the same words in-platform and by email)."""
    template = TEMPLATES[notice.kind]
    values = {**notice.params, "contact": contact}
    return Template(subject=template.subject, body=template.body.format_map(values))


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
