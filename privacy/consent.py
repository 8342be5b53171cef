"""The consent ledger: append-only grants and withdrawals, current state derived from it.

A ledger belongs to an account (its user id) or to an anonymous visitor (``Visitor``, from a
consent id). The state is read from the database on every call, with no cache, so a
withdrawal takes effect at once in every process; whatever depends on a consent (marketing,
statistics) asks ``current_state``, ``latest`` or ``granted`` at the moment it acts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from tortoise.queryset import QuerySet

from auth.client_info import stored_header
from auth.visitor_ids import Owner, Visitor
from models import ConsentEntry, ConsentPurpose, ConsentSource, PolicyVersion

DEFAULT_POLICY_VERSION = "2026-01"

# Recorded as information, never a choice: shown granted whatever the ledger holds.
ALWAYS_ON = frozenset({ConsentPurpose.NECESSARY})
# What the Global Privacy Control signal objects to.
MARKETING = (ConsentPurpose.MARKETING_COOKIES, ConsentPurpose.MARKETING_EMAIL)


@dataclass(frozen=True, slots=True)
class ConsentState:
    purpose: ConsentPurpose
    granted: bool
    policy_version: str | None
    updated_at: datetime | None
    objected: bool = False


def in_effect(now: datetime | None = None) -> QuerySet[PolicyVersion]:
    """Versions in effect by `now`, the current one first (a scheduled one is not yet)."""
    return PolicyVersion.filter(effective_at__lte=now or datetime.now(UTC)).order_by(
        "-effective_at", "-published_at"
    )


async def current_policy_version() -> str:
    latest = await in_effect().only("id", "version").first()
    return latest.version if latest else DEFAULT_POLICY_VERSION


def entries_of(owner: Owner) -> QuerySet[ConsentEntry]:
    """The owner's ledger. A visitor's holds only what is not yet merged into an account."""
    if isinstance(owner, Visitor):
        return ConsentEntry.filter(visitor_id=str(owner.id), user_id__isnull=True)
    return ConsentEntry.filter(user_id=owner)


async def append(
    owner: Owner,
    purpose: ConsentPurpose,
    *,
    granted: bool,
    source: ConsentSource,
    ip_address: str | None,
    user_agent: str | None,
    policy_version: str | None = None,
    objection: bool = False,
) -> ConsentEntry:
    """Add one line to the ledger, under the version in effect unless another is named;
    earlier lines are never changed. The caller audits it."""
    agent = stored_header(user_agent)
    visitor = owner if isinstance(owner, Visitor) else None
    entry = ConsentEntry(
        user_id=None if visitor else owner,
        visitor_id=str(visitor.id) if visitor else None,
        purpose=purpose,
        granted=granted and not objection,
        objection=objection,
        policy_version=policy_version or await current_policy_version(),
        source=source,
        ip_address=ip_address,
        user_agent=stored_header(agent[:512]) if agent else None,
    )
    await entry.save()
    return entry


async def latest(owner: Owner) -> dict[ConsentPurpose, ConsentEntry]:
    """The newest entry per purpose (one query); a later decision replaces an earlier one."""
    newest: dict[ConsentPurpose, ConsentEntry] = {}
    for entry in await entries_of(owner).order_by("created_at", "id"):
        newest[ConsentPurpose(entry.purpose)] = entry
    return newest


def _state(purpose: ConsentPurpose, decided: ConsentEntry | None) -> ConsentState:
    return ConsentState(
        purpose=purpose,
        granted=purpose in ALWAYS_ON or bool(decided and decided.granted),
        policy_version=decided.policy_version if decided else None,
        updated_at=decided.created_at if decided else None,
        objected=bool(decided and decided.objection),
    )


async def current_state(owner: Owner) -> list[ConsentState]:
    """The latest decision per purpose; a purpose never decided is not granted (necessary
    is always on)."""
    newest = await latest(owner)
    return [_state(purpose, newest.get(purpose)) for purpose in ConsentPurpose]


async def granted(owner: Owner, purpose: ConsentPurpose) -> bool:
    """Whether the owner's latest decision for this purpose grants it, read now."""
    if purpose in ALWAYS_ON:
        return True
    decided = await entries_of(owner).filter(purpose=purpose).order_by("-created_at", "-id").first()
    return bool(decided and decided.granted)


async def object_to(
    owner: Owner,
    purposes: Iterable[ConsentPurpose],
    source: ConsentSource,
    *,
    ip_address: str | None = None,
    user_agent: str | None = None,
    current: dict[ConsentPurpose, ConsentEntry] | None = None,
) -> list[ConsentEntry]:
    """Record an objection (a withdrawal that says so) for each purpose whose latest entry is
    not already one; returns the entries written. The caller audits them."""
    newest = current if current is not None else await latest(owner)
    written = []
    for purpose in dict.fromkeys(purposes):
        if purpose in ALWAYS_ON:
            continue
        decided = newest.get(purpose)
        if decided is not None and decided.objection:
            continue
        written.append(
            await append(
                owner,
                purpose,
                granted=False,
                objection=True,
                source=source,
                ip_address=ip_address,
                user_agent=user_agent,
            )
        )
    return written


async def merge_visitor(visitor: Visitor, user_id: UUID) -> list[ConsentEntry]:
    """Attach a visitor's entries to an account (at sign-in): each keeps its decision, time
    and policy version, and its visitor id for the record; only its owner changes, and its
    IP and user agent are sealed again under the account's key. The later decision per
    purpose then wins, as in any ledger. Returns the entries moved."""
    moved = await entries_of(visitor).select_for_update()
    for entry in moved:
        entry.user_id = user_id
        await entry.save(update_fields=["user_id", "ip_address", "user_agent"])
    return moved
