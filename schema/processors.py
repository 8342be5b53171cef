"""The registry of processors (P15) and where they are (P30); kept by the privacy officer."""

from datetime import date
from typing import Annotated

import strawberry

from models import Processor
from resolvers import processors
from resolvers.processors import ProcessorChanges
from schema.attributes import attribute
from schema.context import Info
from schema.enums import TransferSafeguard
from schema.errors import MutationError
from schema.relay import from_global_id, to_global_id


@strawberry.type(
    name="Processor", description="A service provider OCIS hands personal data to, by contract."
)
class ProcessorType:
    model: strawberry.Private[Processor]
    name: str = attribute()
    purpose: str = attribute()
    data_categories: list[str] = attribute("The kinds of personal data it receives.")
    country: str = attribute("Where it processes them (ISO 3166-1 alpha-2; EU: the Union).")
    safeguard: TransferSafeguard = attribute("What makes the transfer there lawful.")
    contract_date: date | None = attribute("When its contract was signed.")

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Processor", self.model.id)


@strawberry.input
class AddProcessorInput:
    name: str
    purpose: str
    data_categories: list[str]
    country: str
    safeguard: TransferSafeguard
    contract_date: date | None = None


@strawberry.input(description="The fields to change; contractDate: null clears it.")
class UpdateProcessorInput:
    id: strawberry.ID
    name: str | None = None
    purpose: str | None = None
    data_categories: list[str] | None = None
    country: str | None = None
    safeguard: TransferSafeguard | None = None
    contract_date: date | None = strawberry.UNSET


@strawberry.type
class ProcessorSuccess:
    processor: ProcessorType


ProcessorResult = Annotated[ProcessorSuccess | MutationError, strawberry.union("ProcessorResult")]


@strawberry.type
class RemoveProcessorSuccess:
    id: strawberry.ID


RemoveProcessorResult = Annotated[
    RemoveProcessorSuccess | MutationError, strawberry.union("RemoveProcessorResult")
]


@strawberry.type
class ProcessorsQuery:
    @strawberry.field(description="Every processor OCIS uses, with its country and safeguard.")
    async def processors(self) -> list[ProcessorType]:
        return [ProcessorType(model=row) for row in await processors.list_processors()]


@strawberry.type
class ProcessorsMutation:
    @strawberry.mutation(description="Register a processor (privacy officer).")
    async def add_processor(self, info: Info, input: AddProcessorInput) -> ProcessorResult:
        row = await processors.add_processor(
            info.context.principal,
            name=input.name,
            purpose=input.purpose,
            data_categories=input.data_categories,
            country=input.country,
            safeguard=input.safeguard,
            contract_date=input.contract_date,
        )
        return ProcessorSuccess(processor=ProcessorType(model=row))

    @strawberry.mutation(description="Correct a processor's entry (privacy officer).")
    async def update_processor(self, info: Info, input: UpdateProcessorInput) -> ProcessorResult:
        _, ident = from_global_id(input.id, "Processor", "id")
        contract_date = input.contract_date if input.contract_date is not strawberry.UNSET else None
        changes = ProcessorChanges(
            name=input.name,
            purpose=input.purpose,
            data_categories=input.data_categories,
            country=input.country,
            safeguard=input.safeguard,
            contract_date=contract_date,
            clear_contract_date=input.contract_date is None,
        )
        row = await processors.update_processor(info.context.principal, ident, changes)
        return ProcessorSuccess(processor=ProcessorType(model=row))

    @strawberry.mutation(description="Take a processor off the registry (privacy officer).")
    async def remove_processor(self, info: Info, id: strawberry.ID) -> RemoveProcessorResult:
        _, ident = from_global_id(id, "Processor", "id")
        await processors.remove_processor(info.context.principal, ident)
        return RemoveProcessorSuccess(id=id)
