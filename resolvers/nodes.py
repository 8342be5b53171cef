"""Objects by id, always through the caller's row scope."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from tortoise.models import Model
from tortoise.queryset import QuerySet

from auth import scoping
from auth.principal import Principal

# Each scope yields its own model's rows; QuerySet is invariant, so the table says Any.
_SCOPES: Mapping[str, Callable[[Principal], QuerySet[Any]]] = {
    "User": scoping.readable_users,
    "Ticket": scoping.readable_tickets,
    "TicketMessage": scoping.readable_messages,
    "PrivacyRequest": scoping.readable_privacy_requests,
    "SignIn": scoping.readable_sign_ins,
    "PaymentMethod": scoping.readable_payment_methods,
    "LinkedIdentity": scoping.readable_identities,
}

NODE_TYPES = frozenset(_SCOPES)


def global_id(type_name: str, ident: UUID) -> str:
    """The opaque id the API shows for an object (links in mail carry it too)."""
    raw = f"{type_name}:{ident}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def get_node(principal: Principal, type_name: str, ident: UUID) -> Model | None:
    """The object if the caller may reach it; None whether it is missing or out of scope."""
    scope = _SCOPES.get(type_name)
    if scope is None:
        return None
    found: Model | None = await scope(principal).get_or_none(id=ident)
    return found
