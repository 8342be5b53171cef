"""Requesters known only by email: one walk-in per address, found again by its blind index."""

from __future__ import annotations

from models import WalkInRequester, crypto


async def walk_in_for(email: str, name: str | None = None) -> WalkInRequester:
    """The walk-in of this address, made with its first ticket; two first tickets at once make
    one (the loser of the unique index finds the winner's row)."""
    walk_in, _ = await WalkInRequester.get_or_create(
        defaults={"email": email.strip(), "name": name}, email_index=crypto.blind_index(email)
    )
    return walk_in


async def find_walk_in(email: str) -> WalkInRequester | None:
    """The walk-in of an address in any case or surrounding space: what an access or erasure
    request about it starts from (its tickets, and the audit records naming its id)."""
    return await WalkInRequester.get_or_none(email_index=crypto.blind_index(email))
