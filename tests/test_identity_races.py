"""Identity mapping under concurrency: one winner, a clear refusal for the other, no orphans."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from auth.identities import IdentityRecord, MappingRefused
from auth.principal import Principal
from models import ExternalIdentity, Role, User
from resolvers import federated
from resolvers.errors import NotAllowed


def _record(subject: str) -> IdentityRecord:
    return {
        "provider": "acme",
        "issuer": "https://id.acme.example",
        "subject": subject,
        "tenant_id": "",
        "email": "racer@example.com",
        "email_trusted": True,
        "name": "Racer",
    }


async def test_two_first_sign_ins_of_one_identity_at_once_make_one_account(app: Any) -> None:
    outcomes = await asyncio.gather(
        federated.create_account(Principal(), _record("same"), date(1990, 1, 1)),
        federated.create_account(Principal(), _record("same"), date(1990, 1, 1)),
        return_exceptions=True,
    )
    accounts = [outcome for outcome in outcomes if isinstance(outcome, User)]
    refusals = [outcome for outcome in outcomes if isinstance(outcome, MappingRefused)]
    assert (len(accounts), len(refusals)) == (1, 1), outcomes
    assert await ExternalIdentity.all().count() == 1
    assert await User.all().count() == 1, "the loser left no account behind"


async def test_two_unlinks_at_once_never_remove_the_last_way_in(app: Any) -> None:
    user = User(name="Two Ways", email="", roles=[Role.CUSTOMER.value])
    await user.save()
    first = await ExternalIdentity.create(
        user=user, issuer="https://a.example", subject="1", provider="a"
    )
    second = await ExternalIdentity.create(
        user=user, issuer="https://b.example", subject="1", provider="b"
    )
    owner = Principal.for_user(user.id, frozenset({Role.CUSTOMER}), None)
    outcomes = await asyncio.gather(
        federated.unlink_identity(owner, first.id),
        federated.unlink_identity(owner, second.id),
        return_exceptions=True,
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["NoneType", "NotAllowed"]
    assert any(isinstance(outcome, NotAllowed) for outcome in outcomes)
    assert await ExternalIdentity.filter(user_id=user.id).count() == 1


async def test_three_unlinks_at_once_leave_exactly_one_way_in(app: Any) -> None:
    for round_number in range(3):
        user = User(name=f"Round {round_number}", email="", roles=[Role.CUSTOMER.value])
        await user.save()
        identities = [
            await ExternalIdentity.create(
                user=user,
                issuer=f"https://{name}.example",
                subject=str(round_number),
                provider=name,
            )
            for name in ("a", "b", "c")
        ]
        owner = Principal.for_user(user.id, frozenset({Role.CUSTOMER}), None)
        await asyncio.gather(
            *(federated.unlink_identity(owner, identity.id) for identity in identities),
            return_exceptions=True,
        )
        assert await ExternalIdentity.filter(user_id=user.id).count() == 1
