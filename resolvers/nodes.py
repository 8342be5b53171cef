"""Objects by id, always through the caller's row scope."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from tortoise.models import Model
from tortoise.queryset import QuerySet

from auth import scoping
from auth.principal import Principal

_SCOPES: dict[str, Callable[[Principal], QuerySet[Model]]] = {
    "User": scoping.readable_users,  # type: ignore[dict-item]
    "Ticket": scoping.readable_tickets,  # type: ignore[dict-item]
    "TicketMessage": scoping.readable_messages,  # type: ignore[dict-item]
    "PrivacyRequest": scoping.readable_privacy_requests,  # type: ignore[dict-item]
    "SignIn": scoping.readable_sign_ins,  # type: ignore[dict-item]
    "PaymentMethod": scoping.readable_payment_methods,  # type: ignore[dict-item]
    "LinkedIdentity": scoping.readable_identities,  # type: ignore[dict-item]
}

NODE_TYPES = frozenset(_SCOPES)


async def get_node(principal: Principal, type_name: str, ident: UUID) -> Model | None:
    """The object if the caller may reach it; None whether it is missing or out of scope."""
    scope = _SCOPES.get(type_name)
    if scope is None:
        return None
    return await scope(principal).get_or_none(id=ident)
