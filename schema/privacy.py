"""Consents and privacy requests: the ledger, current decisions, and GDPR requests."""

from datetime import datetime
from typing import Annotated, Protocol
from uuid import UUID

import strawberry

from auth import rate_limit
from auth.policy import Relation
from auth.principal import Principal
from auth.relations import relation_to_person, relation_to_row, subject_of
from models import ConsentEntry, PrivacyRequest
from resolvers import consents, privacy_requests
from schema.attributes import attribute
from schema.context import Info
from schema.enums import ConsentPurpose, PrivacyRequestKind, PrivacyRequestStatus
from schema.errors import MutationError, RateLimitedError, coded_errors, refusal
from schema.need_to_know import personal_data
from schema.relay import Node, to_global_id


@personal_data
@strawberry.type(name="ConsentEntry", description="One line of the append-only consent ledger.")
class ConsentEntryType:
    model: strawberry.Private[ConsentEntry]
    relation: strawberry.Private[Relation]
    purpose: ConsentPurpose | None = attribute()
    granted: bool | None = attribute()
    policy_version: str | None = attribute()
    source: str | None = attribute()
    created_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("ConsentEntry", self.model.id)


@personal_data
@strawberry.type(
    name="ConsentState", description="The caller's current decision for one consent purpose."
)
class ConsentState:
    purpose: ConsentPurpose | None
    granted: bool | None
    policy_version: str | None
    updated_at: datetime | None
    owner: strawberry.Private[UUID | None]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        return self.owner


class _Decision(Protocol):
    @property
    def purpose(self) -> ConsentPurpose: ...
    @property
    def granted(self) -> bool: ...
    @property
    def policy_version(self) -> str | None: ...
    @property
    def updated_at(self) -> datetime | None: ...


def _consent_state(principal: Principal, state: _Decision) -> ConsentState:
    return ConsentState(
        purpose=state.purpose,
        granted=state.granted,
        policy_version=state.policy_version,
        updated_at=state.updated_at,
        owner=principal.user_id,
        relation=relation_to_person(principal, principal.user_id),
    )


@personal_data
@strawberry.type(name="PrivacyRequest", description="A request to exercise a GDPR right.")
class PrivacyRequestType(Node):
    model: strawberry.Private[PrivacyRequest]
    relation: strawberry.Private[Relation]
    kind: PrivacyRequestKind | None = attribute()
    status: PrivacyRequestStatus | None = attribute()
    details: str | None = attribute()
    received_at: datetime | None = attribute()
    due_at: datetime | None = attribute("The date by which OCIS must answer (one month).")
    closed_at: datetime | None = attribute()
    outcome: str | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("PrivacyRequest", self.model.id)


@strawberry.input
class ConsentInput:
    purpose: ConsentPurpose


@strawberry.type
class ConsentSuccess:
    consent: ConsentState


ConsentResult = Annotated[ConsentSuccess | MutationError, strawberry.union("ConsentResult")]


@strawberry.input
class SubmitPrivacyRequestInput:
    kind: PrivacyRequestKind
    details: str | None = None


@strawberry.type
class PrivacyRequestSuccess:
    request: PrivacyRequestType


SubmitPrivacyRequestResult = Annotated[
    PrivacyRequestSuccess | RateLimitedError | MutationError,
    strawberry.union("SubmitPrivacyRequestResult"),
]


@strawberry.type
class PrivacyQuery:
    @strawberry.field(description="Your current decision for each consent purpose.")
    @coded_errors
    async def my_consents(self, info: Info) -> list[ConsentState] | None:
        principal = info.context.principal
        states = await consents.my_consents(principal)
        return [_consent_state(principal, state) for state in states]

    @strawberry.field(description="Your consent ledger, newest first (last 100 entries).")
    @coded_errors
    async def my_consent_ledger(self, info: Info) -> list[ConsentEntryType] | None:
        principal = info.context.principal
        entries = await consents.my_consent_ledger(principal)
        return [
            ConsentEntryType(model=entry, relation=relation_to_row(principal, entry))
            for entry in entries
        ]

    @strawberry.field(description="Your privacy requests, newest first.")
    @coded_errors
    async def my_privacy_requests(self, info: Info) -> list[PrivacyRequestType] | None:
        principal = info.context.principal
        requests = await privacy_requests.my_privacy_requests(principal)
        return [
            PrivacyRequestType(model=request, relation=relation_to_row(principal, request))
            for request in requests
        ]

    @strawberry.field(description="Where to write to exercise your privacy rights.")
    def privacy_contact(self, info: Info) -> str:
        return info.context.privacy_contact


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(description="Grant consent for a purpose; recorded in the ledger.")
    async def grant_consent(self, info: Info, input: ConsentInput) -> ConsentResult:
        return await _consent(info, input, granted=True)

    @strawberry.mutation(description="Withdraw consent for a purpose; it applies at once.")
    async def withdraw_consent(self, info: Info, input: ConsentInput) -> ConsentResult:
        return await _consent(info, input, granted=False)

    @strawberry.mutation(description="Ask to exercise a privacy right; due within one month.")
    async def submit_privacy_request(
        self, info: Info, input: SubmitPrivacyRequestInput
    ) -> SubmitPrivacyRequestResult:
        context = info.context
        principal = context.principal
        if context.store is not None:
            decision = await rate_limit.privacy_request_attempt(
                context.store,
                account=str(principal.user_id) if principal.user_id else None,
                ip=context.client_ip,
            )
            if (refused := refusal(info, decision)) is not None:
                return refused
        request = await privacy_requests.submit_privacy_request(
            principal, input.kind, input.details
        )
        return PrivacyRequestSuccess(
            request=PrivacyRequestType(model=request, relation=relation_to_row(principal, request))
        )


async def _consent(info: Info, input: ConsentInput, *, granted: bool) -> ConsentSuccess:
    context = info.context
    state = await consents.set_consent(
        context.principal,
        input.purpose,
        granted=granted,
        source="api",
        ip_address=context.client_ip,
        user_agent=context.user_agent,
    )
    return ConsentSuccess(consent=_consent_state(context.principal, state))
