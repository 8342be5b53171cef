"""Legal holds and disclosures (P13): staff with the legal scope place, lift, record, read."""

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import strawberry

from auth.policy import Relation
from auth.relations import relation_to_person
from models import LegalDisclosure, LegalHold
from resolvers import legal
from schema.attributes import attribute
from schema.context import Info
from schema.errors import IllegalTransitionError, MutationError, coded_errors
from schema.need_to_know import personal_data
from schema.relay import from_global_id, to_global_id


@personal_data
@strawberry.type(
    name="LegalHold",
    description="A hold on a person's data the law requires: erasure and retention wait.",
)
class LegalHoldType:
    model: strawberry.Private[LegalHold]
    relation: strawberry.Private[Relation]
    authority: str | None = attribute("Who requires it: a court, a regulator, the police.")
    reference: str | None = attribute("The authority's case or order number.")
    reason: str | None = attribute()
    review_on: date | None = attribute("When to look again at whether it is still needed.")
    placed_at: datetime | None = attribute()
    lifted_at: datetime | None = attribute("Null while it is active.")

    @property
    def subject_id(self) -> UUID | None:
        return self.model.subject_id

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("LegalHold", self.model.id)

    @strawberry.field(description="Whether it holds the data now.")
    def active(self) -> bool | None:
        return self.model.lifted_at is None


@personal_data
@strawberry.type(
    name="LegalDisclosure",
    description="Personal data handed to an authority because the law required it.",
)
class LegalDisclosureType:
    model: strawberry.Private[LegalDisclosure]
    relation: strawberry.Private[Relation]
    authority: str | None = attribute()
    legal_basis: str | None = attribute("The provision or order that required it.")
    data_categories: list[str] | None = attribute("The kinds of data disclosed.")
    disclosed_on: date | None = attribute()
    subject_may_be_told_on: date | None = attribute(
        "From when the person may be told (their export shows it); null: at once."
    )
    recorded_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return self.model.subject_id

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("LegalDisclosure", self.model.id)


def _hold(info: Info, row: LegalHold) -> LegalHoldType:
    return LegalHoldType(
        model=row, relation=relation_to_person(info.context.principal, row.subject_id)
    )


def _disclosure(info: Info, row: LegalDisclosure) -> LegalDisclosureType:
    return LegalDisclosureType(
        model=row, relation=relation_to_person(info.context.principal, row.subject_id)
    )


@strawberry.input
class PlaceLegalHoldInput:
    user_id: strawberry.ID
    authority: str
    reference: str
    reason: str
    review_on: date = strawberry.field(description="In the future.")


@strawberry.input
class RecordLegalDisclosureInput:
    user_id: strawberry.ID
    authority: str
    legal_basis: str
    data_categories: list[str]
    disclosed_on: date
    subject_may_be_told_on: date | None = strawberry.field(
        default=None, description="Until this day the person is not told (null: at once)."
    )


@strawberry.type
class LegalHoldSuccess:
    hold: LegalHoldType


PlaceLegalHoldResult = Annotated[
    LegalHoldSuccess | MutationError, strawberry.union("PlaceLegalHoldResult")
]
LiftLegalHoldResult = Annotated[
    LegalHoldSuccess | IllegalTransitionError | MutationError,
    strawberry.union("LiftLegalHoldResult"),
]


@strawberry.type
class RecordLegalDisclosureSuccess:
    disclosure: LegalDisclosureType


RecordLegalDisclosureResult = Annotated[
    RecordLegalDisclosureSuccess | MutationError, strawberry.union("RecordLegalDisclosureResult")
]


@strawberry.type
class LegalQuery:
    @strawberry.field(
        description="Every legal hold on a person, the newest first (legal scope; last 100)."
    )
    @coded_errors
    async def legal_holds_of(
        self, info: Info, user_id: strawberry.ID
    ) -> list[LegalHoldType] | None:
        _, subject = from_global_id(user_id, "User", "userId")
        rows = await legal.legal_holds_of(info.context.principal, subject)
        return [_hold(info, row) for row in rows]

    @strawberry.field(
        description="Every legal disclosure about a person, the newest first (legal scope; "
        "last 100)."
    )
    @coded_errors
    async def legal_disclosures_of(
        self, info: Info, user_id: strawberry.ID
    ) -> list[LegalDisclosureType] | None:
        _, subject = from_global_id(user_id, "User", "userId")
        rows = await legal.legal_disclosures_of(info.context.principal, subject)
        return [_disclosure(info, row) for row in rows]


@strawberry.type
class LegalMutation:
    @strawberry.mutation(
        description="Place a legal hold on a person's data: erasure and retention skip it "
        "until it is lifted (legal scope)."
    )
    async def place_legal_hold(
        self, info: Info, input: PlaceLegalHoldInput
    ) -> PlaceLegalHoldResult:
        _, subject = from_global_id(input.user_id, "User", "userId")
        row = await legal.place_legal_hold(
            info.context.principal,
            subject,
            authority=input.authority,
            reference=input.reference,
            reason=input.reason,
            review_on=input.review_on,
        )
        return LegalHoldSuccess(hold=_hold(info, row))

    @strawberry.mutation(
        description="Lift a legal hold; an erasure it blocked then goes ahead (legal scope)."
    )
    async def lift_legal_hold(self, info: Info, hold_id: strawberry.ID) -> LiftLegalHoldResult:
        _, ident = from_global_id(hold_id, "LegalHold", "holdId")
        row = await legal.lift_legal_hold(info.context.principal, ident)
        return LegalHoldSuccess(hold=_hold(info, row))

    @strawberry.mutation(description="Record a disclosure of a person's data to an authority.")
    async def record_legal_disclosure(
        self, info: Info, input: RecordLegalDisclosureInput
    ) -> RecordLegalDisclosureResult:
        _, subject = from_global_id(input.user_id, "User", "userId")
        row = await legal.record_legal_disclosure(
            info.context.principal,
            subject,
            authority=input.authority,
            legal_basis=input.legal_basis,
            data_categories=input.data_categories,
            disclosed_on=input.disclosed_on,
            subject_may_be_told_on=input.subject_may_be_told_on,
        )
        return RecordLegalDisclosureSuccess(disclosure=_disclosure(info, row))
