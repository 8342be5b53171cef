"""The privacy policy's versions (P31) and notices to every user (P16).

Publishing a significant version, or an announcement, owes every account a notice; the
notices are written by the fan-out job (privacy/fanout.py) and mailed by the delivery loop,
so the request that asks does a fixed amount of work however many accounts there are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from auth.principal import Principal
from auth.scopes import Scope
from models import (
    Announcement,
    ConsentEntry,
    ConsentPurpose,
    ConsentSource,
    NoticeFanout,
    PolicyVersion,
)
from privacy import audit, consent, fanout, notices
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.errors import InvalidInput, NotAllowed, NotFound
from resolvers.users import require_user

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,29}")
# A version published "now" from a browser whose clock runs a little behind is still now.
CLOCK_LEEWAY = timedelta(minutes=5)
MAX_VERSION = 30
MAX_URL = 500
MAX_POLICY_TEXT = 200_000
MAX_SUMMARY = 2_000
MAX_TITLE = 150
MAX_ANNOUNCEMENT = 20_000


@dataclass(frozen=True, slots=True)
class PolicyDraft:
    version: str
    url: str | None
    text: str | None
    effective_at: datetime | None
    significant: bool
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class CurrentPolicy:
    """The version in effect; before any is published, the built-in one (no date, no URL)."""

    version: str
    effective_at: datetime | None = None
    url: str | None = None
    text: str | None = None
    summary: str | None = None
    significant: bool = False


def _policy_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    url = validation.characters(value, "url").strip()
    if len(url) > MAX_URL or any(char.isspace() or ord(char) < 32 for char in url):
        raise InvalidInput(f"Use an https URL or a path of at most {MAX_URL} characters.", "url")
    if url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url  # a page of OCIS itself
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise InvalidInput("Use an https URL (or a path of ours, such as /privacy).", "url")
    return url


def _effective(value: datetime | None, now: datetime) -> datetime:
    if value is None:
        return now
    if value.tzinfo is None:
        raise InvalidInput(
            "Give the time with its offset, e.g. 2026-03-01T00:00:00Z.", "effectiveAt"
        )
    if value < now - CLOCK_LEEWAY:
        raise InvalidInput("A version cannot take effect in the past.", "effectiveAt")
    return value.astimezone(UTC)


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def publish_policy_version(principal: Principal, draft: PolicyDraft) -> PolicyVersion:
    """Publish a version (administrators); a significant one is notified to every account."""
    require_user(principal)
    if not principal.has(Scope.POLICY_PUBLISH):
        raise NotAllowed("Only an administrator may publish the privacy policy.")
    version = validation.text(draft.version, "version", max_length=MAX_VERSION)
    if not _VERSION.fullmatch(version):
        raise InvalidInput("Use letters, digits, dots, dashes or underscores.", "version")
    url = _policy_url(draft.url)
    text = (
        validation.text(draft.text, "text", max_length=MAX_POLICY_TEXT, multiline=True)
        if draft.text and draft.text.strip()
        else None
    )
    if url is None and text is None:
        raise InvalidInput("Give the policy's URL or its text.", "url")
    summary = (
        validation.text(draft.summary, "summary", max_length=MAX_SUMMARY)
        if draft.summary and draft.summary.strip()
        else ""
    )
    if await PolicyVersion.filter(version=version).exists():
        raise InvalidInput("This version is already published.", "version")
    now = datetime.now(UTC)
    effective_at = _effective(draft.effective_at, now)
    latest = await PolicyVersion.all().order_by("-effective_at").only("id", "effective_at").first()
    if latest is not None and effective_at < latest.effective_at:
        raise InvalidInput(
            f"A later version takes effect on {_day(latest.effective_at)}: take effect after it.",
            "effectiveAt",
        )
    row = PolicyVersion(
        version=version,
        published_at=now,
        effective_at=effective_at,
        significant=draft.significant,
        summary=summary,
        url=url,
        text=text,
    )
    try:
        async with in_transaction():
            await row.save()
            await audit.record(
                principal,
                action=AuditAction.POLICY_PUBLISH,
                entity="PolicyVersion",
                entity_id=row.id,
                subject_id=None,
            )
            if row.significant:
                where = url if url and not url.startswith("/") else "in OCIS, under Privacy"
                await fanout.owe_everyone(
                    "policy.changed", version=version, effective=_day(effective_at), where=where
                )
    except IntegrityError:  # published by someone else at the same moment
        raise InvalidInput("This version is already published.", "version") from None
    return row


async def privacy_policy() -> CurrentPolicy:
    """The version in effect now (public)."""
    row = await consent.in_effect().first()
    if row is None:
        return CurrentPolicy(version=consent.DEFAULT_POLICY_VERSION)
    return CurrentPolicy(
        version=row.version,
        effective_at=row.effective_at,
        url=row.url,
        text=row.text,
        summary=row.summary or None,
        significant=row.significant,
    )


async def pending_policy_acceptance(user_id: UUID, created_at: datetime) -> bool:
    """Whether the account still has to accept a significant change in effect now.

    An account opened after the change took effect signed up under it; accepting that version
    or any later one settles it.
    """
    change = await consent.in_effect().filter(significant=True).only("id", "effective_at").first()
    if change is None or created_at >= change.effective_at:
        return False
    settled = PolicyVersion.filter(effective_at__gte=change.effective_at).values_list(
        "version", flat=True
    )
    accepted = await ConsentEntry.filter(
        user_id=user_id,
        purpose=ConsentPurpose.PRIVACY_POLICY,
        granted=True,
        policy_version__in=await settled,
    ).exists()
    return not accepted


async def accept_policy_version(
    principal: Principal,
    version: str,
    *,
    ip_address: str | None,
    user_agent: str | None,
    source: ConsentSource = ConsentSource.WEB,
) -> ConsentEntry:
    """Record in the consent ledger that the caller accepts this version (current or later)."""
    user_id = require_user(principal)
    wanted = validation.text(version, "version", max_length=MAX_VERSION)
    row = await PolicyVersion.get_or_none(version=wanted).only("id", "version", "effective_at")
    if row is None:
        raise NotFound("No such version of the privacy policy.", "version")
    current = await consent.in_effect().only("id", "version", "effective_at").first()
    if current is not None and row.effective_at < current.effective_at:
        raise InvalidInput(
            f"Version {row.version} is no longer in effect: accept version {current.version}.",
            "version",
        )
    async with in_transaction():
        entry = await consent.append(
            user_id,
            ConsentPurpose.PRIVACY_POLICY,
            granted=True,
            source=source,
            ip_address=ip_address,
            user_agent=user_agent,
            policy_version=row.version,
        )
        await audit.record(
            principal,
            action=AuditAction.POLICY_ACCEPT,
            entity="ConsentEntry",
            entity_id=entry.id,
            subject_id=user_id,
            field_names=["ConsentEntry.granted", "ConsentEntry.purpose"],
        )
    return entry


@dataclass(frozen=True, slots=True)
class Sent:
    announcement: Announcement
    fanout: NoticeFanout


async def send_notice_to_all_users(principal: Principal, title: str, body: str) -> Sent:
    """Tell every account something (administrators): in-platform and by email, per account."""
    user_id = require_user(principal)
    if not principal.has(Scope.NOTICES_ANNOUNCE):
        raise NotAllowed("Only an administrator may send a notice to every user.")
    heading = validation.text(title, "title", max_length=MAX_TITLE)
    if "\n" in heading or "\t" in heading:
        raise InvalidInput("The title is one line.", "title")
    text = validation.text(body, "body", max_length=MAX_ANNOUNCEMENT, multiline=True)
    async with in_transaction():
        announcement = Announcement(title=heading, body=text, created_by_id=user_id)
        await announcement.save()
        owed = await fanout.owe_everyone(notices.ANNOUNCEMENT, announcement=str(announcement.id))
        await audit.record(
            principal,
            action=AuditAction.ANNOUNCEMENT_SEND,
            entity="Announcement",
            entity_id=announcement.id,
            subject_id=None,
        )
    return Sent(announcement=announcement, fanout=owed)
