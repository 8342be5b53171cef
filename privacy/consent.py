"""The consent ledger: append-only grants and withdrawals, current state derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from tortoise.queryset import QuerySet

from auth.client_info import stored_header
from models import ConsentEntry, ConsentPurpose, PolicyVersion

DEFAULT_POLICY_VERSION = "2026-01"


@dataclass(frozen=True, slots=True)
class ConsentState:
    purpose: ConsentPurpose
    granted: bool
    policy_version: str | None
    updated_at: datetime | None


def in_effect(now: datetime | None = None) -> QuerySet[PolicyVersion]:
    """Versions in effect by `now`, the current one first (a scheduled one is not yet)."""
    return PolicyVersion.filter(effective_at__lte=now or datetime.now(UTC)).order_by(
        "-effective_at", "-published_at"
    )


async def current_policy_version() -> str:
    latest = await in_effect().only("id", "version").first()
    return latest.version if latest else DEFAULT_POLICY_VERSION


async def append(
    user_id: UUID,
    purpose: ConsentPurpose,
    *,
    granted: bool,
    source: str,
    ip_address: str | None,
    user_agent: str | None,
    policy_version: str | None = None,
) -> ConsentEntry:
    """Add one line to the ledger, under the version in effect unless another is named;
    earlier lines are never changed."""
    agent = stored_header(user_agent)
    entry = ConsentEntry(
        user_id=user_id,
        purpose=purpose,
        granted=granted,
        policy_version=policy_version or await current_policy_version(),
        source=source,
        ip_address=ip_address,
        user_agent=stored_header(agent[:512]) if agent else None,
    )
    await entry.save()
    return entry


async def current_state(user_id: UUID) -> list[ConsentState]:
    """The latest decision per purpose; a purpose never decided is not granted."""
    latest: dict[ConsentPurpose, ConsentEntry] = {}
    for entry in await ConsentEntry.filter(user_id=user_id).order_by("created_at"):
        latest[ConsentPurpose(entry.purpose)] = entry
    states = []
    for purpose in ConsentPurpose:
        decided = latest.get(purpose)
        states.append(
            ConsentState(
                purpose=purpose,
                granted=bool(decided and decided.granted),
                policy_version=decided.policy_version if decided else None,
                updated_at=decided.created_at if decided else None,
            )
        )
    return states
