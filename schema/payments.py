"""Payment methods: cards known only by their gateway token."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry

from auth.policy import Relation
from auth.relations import relation_to_row, subject_of
from models import PaymentMethod
from resolvers import payments
from resolvers.payments import CardReference
from schema.attributes import attribute
from schema.context import Info
from schema.errors import MutationError
from schema.need_to_know import personal_data
from schema.relay import Node, from_global_id, to_global_id


@personal_data
@strawberry.type(name="PaymentMethod", description="A card known only by its gateway token.")
class PaymentMethodType(Node):
    model: strawberry.Private[PaymentMethod]
    relation: strawberry.Private[Relation]
    brand: str | None = attribute()
    last4: str | None = attribute()
    created_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("PaymentMethod", self.model.id)

    @strawberry.field
    def exp_month(self) -> int | None:
        return int(self.model.exp_month)

    @strawberry.field
    def exp_year(self) -> int | None:
        return int(self.model.exp_year)


@strawberry.input(description="What a payment gateway returns for a card: never the number.")
class AddPaymentMethodInput:
    gateway_token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@strawberry.type
class AddPaymentMethodSuccess:
    payment_method: PaymentMethodType


AddPaymentMethodResult = Annotated[
    AddPaymentMethodSuccess | MutationError, strawberry.union("AddPaymentMethodResult")
]


@strawberry.type
class RemovePaymentMethodSuccess:
    removed_id: strawberry.ID


RemovePaymentMethodResult = Annotated[
    RemovePaymentMethodSuccess | MutationError, strawberry.union("RemovePaymentMethodResult")
]


@strawberry.type
class PaymentsMutation:
    @strawberry.mutation(description="Keep a gateway token for a card (never the card number).")
    async def add_payment_method(
        self, info: Info, input: AddPaymentMethodInput
    ) -> AddPaymentMethodResult:
        card = CardReference(
            gateway_token=input.gateway_token,
            brand=input.brand,
            last4=input.last4,
            exp_month=input.exp_month,
            exp_year=input.exp_year,
        )
        principal = info.context.principal
        method = await payments.add_payment_method(principal, card)
        return AddPaymentMethodSuccess(
            payment_method=PaymentMethodType(
                model=method, relation=relation_to_row(principal, method)
            )
        )

    @strawberry.mutation(description="Forget one of your payment methods.")
    async def remove_payment_method(
        self, info: Info, id: strawberry.ID
    ) -> RemovePaymentMethodResult:
        _, method_id = from_global_id(id, "PaymentMethod")
        await payments.remove_payment_method(info.context.principal, method_id)
        return RemovePaymentMethodSuccess(removed_id=id)
