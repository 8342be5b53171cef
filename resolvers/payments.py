"""Payment methods: only a gateway token, brand, last four digits and expiry (P03)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from tortoise.transactions import in_transaction

from auth import scoping
from auth.card_data import contains_card_data, value_holds_card_data
from auth.principal import Principal
from models import PaymentMethod
from privacy import audit
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.errors import CardDataRefused, InvalidInput, NotFound
from resolvers.users import require_user

BRANDS = frozenset({"visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay"})
_TOKEN = re.compile(r"[A-Za-z0-9_\-:.]{8,128}")
MAX_METHODS = 10


def holds_card_data(literals: object, variables: object) -> bool:
    """True when an operation's literal values or variables carry a card number or security
    code (P03)."""
    return value_holds_card_data(literals) or value_holds_card_data(variables)


@dataclass(frozen=True, slots=True)
class CardReference:
    gateway_token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


def _checked(card: CardReference, today: datetime) -> CardReference:
    for name, value in (("gatewayToken", card.gateway_token), ("brand", card.brand)):
        if contains_card_data(value):
            raise CardDataRefused(
                "Card numbers and security codes are never accepted; send the gateway token.",
                field=name,
            )
    token = validation.characters(card.gateway_token, "gatewayToken")
    if not _TOKEN.fullmatch(token) or token.isdigit():
        raise InvalidInput("Send the token your payment gateway issued.", field="gatewayToken")
    brand = validation.characters(card.brand, "brand").strip().lower()
    if brand not in BRANDS:
        raise InvalidInput(f"Brand must be one of: {', '.join(sorted(BRANDS))}.", field="brand")
    if not re.fullmatch(r"[0-9]{4}", validation.characters(card.last4, "last4")):
        raise InvalidInput("Send exactly the last four digits.", field="last4")
    if not 1 <= card.exp_month <= 12:
        raise InvalidInput("Expiry month must be 1-12.", field="expMonth")
    if not today.year <= card.exp_year <= today.year + 20:
        raise InvalidInput("Expiry year is not plausible.", field="expYear")
    if (card.exp_year, card.exp_month) < (today.year, today.month):
        raise InvalidInput("This card has expired.", field="expYear")
    return CardReference(card.gateway_token, brand, card.last4, card.exp_month, card.exp_year)


async def add_payment_method(principal: Principal, card: CardReference) -> PaymentMethod:
    user_id = require_user(principal)
    card = _checked(card, datetime.now(UTC))
    if await PaymentMethod.filter(user_id=user_id).count() >= MAX_METHODS:
        raise InvalidInput(f"At most {MAX_METHODS} payment methods per account.")
    method = PaymentMethod(
        user_id=user_id,
        gateway_token=card.gateway_token,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
    )
    async with in_transaction():
        await method.save()
        await audit.record(
            principal,
            action=AuditAction.PAYMENT_METHOD_ADD,
            entity="PaymentMethod",
            entity_id=method.id,
            subject_id=user_id,
            field_names=[
                "PaymentMethod.gatewayToken",
                "PaymentMethod.brand",
                "PaymentMethod.last4",
                "PaymentMethod.expMonth",
                "PaymentMethod.expYear",
            ],
        )
    return method


async def remove_payment_method(principal: Principal, method_id: UUID) -> UUID:
    user_id = require_user(principal)
    async with in_transaction():
        method = await scoping.readable_payment_methods(principal).get_or_none(id=method_id)
        if method is None:
            raise NotFound("No such payment method.", field="id")
        await method.delete()
        await audit.record(
            principal,
            action=AuditAction.PAYMENT_METHOD_REMOVE,
            entity="PaymentMethod",
            entity_id=method_id,
            subject_id=user_id,
        )
    return method_id


async def load_payment_methods(
    principal: Principal, user_ids: list[UUID]
) -> list[list[PaymentMethod]]:
    found: dict[UUID, list[PaymentMethod]] = {ident: [] for ident in user_ids}
    rows = await scoping.readable_payment_methods(principal).filter(user_id__in=user_ids)
    for method in sorted(rows, key=lambda row: row.created_at):
        found[method.user_id].append(method)
    return [found[ident] for ident in user_ids]
