"""Consents and privacy requests: the ledger, current decisions, and GDPR requests."""

from datetime import datetime
from typing import Annotated, Protocol
from uuid import UUID

import strawberry

from auth import rate_limit, visitor_ids
from auth.policy import Relation
from auth.principal import Principal
from auth.relations import relation_to_person, relation_to_row, subject_of
from auth.visitor_ids import Owner, Visitor
from models import ConsentEntry, PrivacyRequest
from resolvers import consents, privacy_requests
from resolvers.users import require_user
from schema.attributes import attribute
from schema.context import Context, Info
from schema.enums import ConsentPurpose, ConsentSource, PrivacyRequestKind, PrivacyRequestStatus
from schema.errors import MutationError, RateLimitedError, coded_errors, refusal
from schema.need_to_know import personal_data
from schema.relay import Node, from_global_id, to_global_id


@personal_data
@strawberry.type(name="ConsentEntry", description="One line of the append-only consent ledger.")
class ConsentEntryType:
    model: strawberry.Private[ConsentEntry]
    relation: strawberry.Private[Relation]
    purpose: ConsentPurpose | None = attribute()
    granted: bool | None = attribute()
    policy_version: str | None = attribute()
    source: ConsentSource | None = attribute()
    objection: bool | None = attribute("A withdrawal that is an objection (granted is false).")
    created_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("ConsentEntry", self.model.id)


@personal_data
@strawberry.type(name="ConsentState", description="The current decision for one consent purpose.")
class ConsentState:
    purpose: ConsentPurpose | None
    granted: bool | None
    objected: bool | None = strawberry.field(
        description="The latest entry is an objection (granted is false)."
    )
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
    def objected(self) -> bool: ...
    @property
    def policy_version(self) -> str | None: ...
    @property
    def updated_at(self) -> datetime | None: ...


def _consent_state(principal: Principal, owner: Owner, state: _Decision) -> ConsentState:
    # A visitor's state is answered only to the holder of its consent id: it is theirs.
    visitor = isinstance(owner, Visitor)
    subject = owner.id if isinstance(owner, Visitor) else owner
    return ConsentState(
        purpose=state.purpose,
        granted=state.granted,
        objected=state.objected,
        policy_version=state.policy_version,
        updated_at=state.updated_at,
        owner=subject,
        relation=Relation(is_self=True) if visitor else relation_to_person(principal, subject),
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


VISITOR_ID = (
    "Anonymous callers: the consent id OCIS gave you (the `ocis_consent` cookie). Without one, "
    "a new one is issued, answered as visitorId and set as that cookie. Signed in: none."
)


@strawberry.input
class ConsentInput:
    purpose: ConsentPurpose
    visitor_id: str | None = strawberry.field(default=None, description=VISITOR_ID)


@strawberry.input
class SetConsentInput:
    purpose: ConsentPurpose
    granted: bool
    visitor_id: str | None = strawberry.field(default=None, description=VISITOR_ID)


@strawberry.type
class ConsentSuccess:
    consent: ConsentState
    visitor_id: strawberry.ID | None = strawberry.field(
        description="The anonymous caller's consent id (new if none was sent); null signed in."
    )


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
        me = require_user(principal)
        return [_consent_state(principal, me, state) for state in states]

    @strawberry.field(
        description="An anonymous visitor's current decision for each consent purpose, for "
        "the holder of its consent id."
    )
    @coded_errors
    async def consents(self, info: Info, visitor_id: str) -> list[ConsentState] | None:
        context = info.context
        visitor, states = await consents.visitor_consents(_visitor_ids(context), visitor_id)
        return [_consent_state(context.principal, visitor, state) for state in states]

    @strawberry.field(
        description="A person's current decision for each consent purpose: your own, or "
        "anyone's for the privacy officer."
    )
    @coded_errors
    async def consents_of(self, info: Info, user_id: strawberry.ID) -> list[ConsentState] | None:
        principal = info.context.principal
        _, subject = from_global_id(user_id, "User", "userId")
        states = await consents.consents_of(principal, subject)
        return [_consent_state(principal, subject, state) for state in states]

    @strawberry.field(
        description="A person's consent ledger, newest first (last 100 entries): your own, or "
        "anyone's for the privacy officer."
    )
    @coded_errors
    async def consent_ledger_of(
        self, info: Info, user_id: strawberry.ID
    ) -> list[ConsentEntryType] | None:
        principal = info.context.principal
        _, subject = from_global_id(user_id, "User", "userId")
        entries = await consents.consent_ledger_of(principal, subject)
        return [
            ConsentEntryType(model=entry, relation=relation_to_row(principal, entry))
            for entry in entries
        ]

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
        return await _consent(info, input.purpose, input.visitor_id, granted=True)

    @strawberry.mutation(description="Withdraw consent for a purpose; it applies at once.")
    async def withdraw_consent(self, info: Info, input: ConsentInput) -> ConsentResult:
        return await _consent(info, input.purpose, input.visitor_id, granted=False)

    @strawberry.mutation(
        description="Grant or withdraw consent for a purpose; recorded in the ledger, it "
        "applies at once."
    )
    async def set_consent(self, info: Info, input: SetConsentInput) -> ConsentResult:
        return await _consent(info, input.purpose, input.visitor_id, granted=input.granted)

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


def _visitor_ids(context: Context) -> visitor_ids.VisitorIds:
    if context.visitor_ids is None:
        raise RuntimeError("consent ids need the master key (the server's context has it)")
    return context.visitor_ids


async def _consent(
    info: Info, purpose: ConsentPurpose, visitor_id: str | None, *, granted: bool
) -> ConsentSuccess:
    context = info.context
    decided = await consents.set_consent(
        context.principal,
        purpose,
        granted=granted,
        visitor_ids=_visitor_ids(context),
        visitor_id=visitor_id,
        source=context.consent_source,
        ip_address=context.client_ip,
        user_agent=context.user_agent,
        gpc=context.gpc,
        gpc_done_for=context.gpc_done_for,
    )
    if decided.issued_visitor_id is not None and context.response is not None:
        context.response.set_cookie(
            visitor_ids.cookie_name(secure=context.secure_cookies),
            decided.issued_visitor_id,
            max_age=visitor_ids.COOKIE_MAX_AGE,
            path="/",
            secure=context.secure_cookies,
            # Not HttpOnly: the frontend reads it to send as visitorId (it opens nothing else).
            httponly=False,
            samesite="lax",
        )
    in_effect = decided.issued_visitor_id or visitor_id
    return ConsentSuccess(
        consent=_consent_state(context.principal, decided.owner, decided.state),
        visitor_id=strawberry.ID(in_effect)
        if in_effect and context.principal.user_id is None
        else None,
    )
