"""Consents and privacy requests: the ledger, current decisions, and GDPR requests."""

from datetime import datetime
from typing import Annotated, Protocol
from uuid import UUID

import strawberry

from auth import rate_limit, visitor_ids
from auth.policy import Relation
from auth.principal import Principal
from auth.relations import (
    relation_to_consent_owner,
    relation_to_row,
    subject_of,
)
from auth.visitor_ids import Owner, Visitor
from models import ConsentEntry, Export, PrivacyRequest, PrivacyRequestStep
from resolvers import children, consents, exports, privacy_requests, restriction
from resolvers.privacy_requests import Objection, Registration
from resolvers.rectification import CorrectionDecision, ProposedCorrection, corrections_of
from resolvers.users import require_user
from schema.attributes import attribute
from schema.context import Context, Info
from schema.enums import (
    ConsentPurpose,
    ConsentSource,
    CorrectableField,
    ExportStatus,
    IdentityVerificationMethod,
    ObjectionTarget,
    PrivacyRequestAction,
    PrivacyRequestChannel,
    PrivacyRequestKind,
    PrivacyRequestStatus,
)
from schema.errors import (
    IllegalTransitionError,
    MutationError,
    RateLimitedError,
    coded_errors,
    refusal,
)
from schema.need_to_know import personal_data
from schema.relay import Connection, Node, connection, from_global_id, to_global_id
from schema.users import UserType, user_node


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
    subject = owner.id if isinstance(owner, Visitor) else owner
    return ConsentState(
        purpose=state.purpose,
        granted=state.granted,
        objected=state.objected,
        policy_version=state.policy_version,
        updated_at=state.updated_at,
        owner=subject,
        relation=relation_to_consent_owner(principal, owner),
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
    outcome: str | None = attribute("What was done, or why the request was declined.")
    channel: PrivacyRequestChannel | None = attribute("How the request reached OCIS.")
    verification_method: IdentityVerificationMethod | None = attribute(
        "How the requester was confirmed to be its subject."
    )
    extension_months: int | None = attribute("Months the deadline was extended by (0 to 2).")
    internal_notes_released: bool | None = attribute(
        "Whether the officer released the internal notes on the subject's tickets into this"
        " access request's export."
    )

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("PrivacyRequest", self.model.id)

    @strawberry.field(description="Still open past its deadline.")
    def overdue(self) -> bool | None:
        return privacy_requests.is_overdue(self.model)

    @strawberry.field(description="The person the request is about.")
    async def subject(self, info: Info) -> UserType | None:
        return await user_node(info, self.model.subject_id)

    @strawberry.field(description="The privacy officer handling it.")
    async def assignee(self, info: Info) -> UserType | None:
        return await user_node(info, self.model.assignee_id)

    @strawberry.field(description="Staff who registered it from the contact address (P28).")
    async def registered_by(self, info: Info) -> UserType | None:
        return await user_node(info, self.model.registered_by_id)

    @strawberry.field(description="For a duplicate: the open request it was linked to.")
    async def duplicate_of(self, info: Info) -> "PrivacyRequestType | None":
        if self.model.duplicate_of_id is None:
            return None
        original = await info.context.loaders.privacy_requests.load(self.model.duplicate_of_id)
        return privacy_request_node(info, original) if original is not None else None

    @strawberry.field(
        description="A rectification's proposed corrections and, once decided, each decision."
    )
    def corrections(self) -> "list[CorrectionType] | None":
        return [
            CorrectionType(
                field=c.field,
                value=c.value,
                accepted=c.accepted,
                reason=c.reason,
                owner=self.model.subject_id,
                relation=self.relation,
            )
            for c in corrections_of(self.model)
        ]

    @strawberry.field(
        description="An access or portability request's exports, newest first: their state"
        " only (the data is downloaded, never read here)."
    )
    async def exports(self, info: Info) -> "list[PrivacyExportType] | None":
        found = await info.context.loaders.privacy_request_exports.load(self.model.id)
        principal = info.context.principal
        return [
            PrivacyExportType(model=export, relation=relation_to_row(principal, export))
            for export in found
        ]

    @strawberry.field(description="Every step of the request, oldest first.")
    async def history(self, info: Info) -> "list[PrivacyRequestStepType] | None":
        steps = await info.context.loaders.privacy_request_histories.load(self.model.id)
        principal = info.context.principal
        return [
            PrivacyRequestStepType(model=step, relation=relation_to_row(principal, step))
            for step in steps
        ]


@personal_data
@strawberry.type(
    name="Correction",
    description="A correction a rectification proposes (read through its request's rule).",
)
class CorrectionType:
    field: CorrectableField | None
    value: str | None = strawberry.field(description="The proposed value (null: remove it).")
    accepted: bool | None = strawberry.field(description="The decision; null until decided.")
    reason: str | None = strawberry.field(description="The officer's reason, if given.")
    owner: strawberry.Private[UUID]
    relation: strawberry.Private[Relation]

    @property
    def subject_id(self) -> UUID | None:
        return self.owner


@personal_data
@strawberry.type(
    name="PrivacyExport",
    description="An export of a subject's data (access or portability): its state only. Its"
    " subject downloads it from the link mailed to them, or signed in, at downloadPath.",
)
class PrivacyExportType:
    model: strawberry.Private[Export]
    relation: strawberry.Private[Relation]
    kind: PrivacyRequestKind | None = attribute()
    status: ExportStatus | None = attribute("Building until its job has written it all.")
    created_at: datetime | None = attribute()
    ready_at: datetime | None = attribute("When it was ready and its link sent.")
    expires_at: datetime | None = attribute("When its link stops working (7 days after ready).")
    downloads_left: int | None = attribute("Downloads its link has left (3 at first).")

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("PrivacyExport", self.model.id)

    @strawberry.field(
        description="Ready: where you download it while signed in (the mailed link works"
        " without signing in); null otherwise."
    )
    def download_path(self) -> str | None:
        return exports.download_path(self.model)


def privacy_request_node(info: Info, request: PrivacyRequest) -> PrivacyRequestType:
    return PrivacyRequestType(
        model=request, relation=relation_to_row(info.context.principal, request)
    )


@personal_data
@strawberry.type(name="PrivacyRequestStep", description="One step of a privacy request's history.")
class PrivacyRequestStepType:
    model: strawberry.Private[PrivacyRequestStep]
    relation: strawberry.Private[Relation]
    action: PrivacyRequestAction | None = attribute()
    from_status: PrivacyRequestStatus | None = attribute("Null for the step that opened it.")
    to_status: PrivacyRequestStatus | None = attribute()
    at: datetime | None = attribute()
    note: str | None = attribute("What the officer wrote: a reason, an outcome, a check made.")

    @property
    def subject_id(self) -> UUID | None:
        return subject_of(self.model)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("PrivacyRequestStep", self.model.id)

    @strawberry.field(description="Who took the step (null when the account is gone).")
    async def actor(self, info: Info) -> UserType | None:
        return await user_node(info, self.model.actor_id)


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


@strawberry.input(description="A field to correct and its correct value.")
class CorrectionInput:
    field: CorrectableField
    value: str | None = strawberry.field(
        default=None, description="Validated as the profile validates it; empty: remove it."
    )


CORRECTIONS = "For a rectification (and only for one): the corrections proposed."


def _proposed(given: "list[CorrectionInput] | None") -> tuple[ProposedCorrection, ...]:
    return tuple(ProposedCorrection(field=c.field, value=c.value) for c in given or ())


@strawberry.input
class SubmitPrivacyRequestInput:
    kind: PrivacyRequestKind
    details: str | None = None
    corrections: list[CorrectionInput] | None = strawberry.field(
        default=None, description=CORRECTIONS
    )
    object_to: list[ObjectionTarget] | None = strawberry.field(
        default=None,
        description="An OBJECTION request only: what you object to. It takes effect at once"
        " (recorded in your consent ledger); the request is still answered for the record.",
    )


@strawberry.type
class PrivacyRequestSuccess:
    request: PrivacyRequestType


SubmitPrivacyRequestResult = Annotated[
    PrivacyRequestSuccess | RateLimitedError | MutationError,
    strawberry.union("SubmitPrivacyRequestResult"),
]
RegisterPrivacyRequestResult = Annotated[
    PrivacyRequestSuccess | MutationError, strawberry.union("RegisterPrivacyRequestResult")
]
AssignPrivacyRequestResult = Annotated[
    PrivacyRequestSuccess | IllegalTransitionError | MutationError,
    strawberry.union("AssignPrivacyRequestResult"),
]
VerifyIdentityResult = Annotated[
    PrivacyRequestSuccess | IllegalTransitionError | MutationError,
    strawberry.union("VerifyIdentityResult"),
]
StartPrivacyRequestResult = Annotated[
    PrivacyRequestSuccess | IllegalTransitionError | MutationError,
    strawberry.union("StartPrivacyRequestResult"),
]
CompletePrivacyRequestResult = Annotated[
    PrivacyRequestSuccess | IllegalTransitionError | MutationError,
    strawberry.union("CompletePrivacyRequestResult"),
]
RejectPrivacyRequestResult = Annotated[
    PrivacyRequestSuccess | IllegalTransitionError | MutationError,
    strawberry.union("RejectPrivacyRequestResult"),
]
DecideCorrectionsResult = Annotated[
    PrivacyRequestSuccess | IllegalTransitionError | MutationError,
    strawberry.union("DecideCorrectionsResult"),
]
ExtendPrivacyRequestResult = Annotated[
    PrivacyRequestSuccess | IllegalTransitionError | MutationError,
    strawberry.union("ExtendPrivacyRequestResult"),
]


@strawberry.input(description="A request received at the contact address, for its subject.")
class RegisterPrivacyRequestInput:
    kind: PrivacyRequestKind
    received_at: datetime = strawberry.field(
        description="When the mail arrived; the deadline counts from it."
    )
    verification_method: IdentityVerificationMethod
    subject_id: strawberry.ID | None = strawberry.field(
        default=None, description="The subject's account; or give subjectEmail."
    )
    subject_email: str | None = None
    details: str | None = None
    verification_note: str | None = None
    corrections: list[CorrectionInput] | None = strawberry.field(
        default=None, description=CORRECTIONS
    )
    object_to: list[ObjectionTarget] | None = strawberry.field(
        default=None,
        description="An OBJECTION request only: what the subject objects to; it takes effect"
        " at registration (recorded in their consent ledger as made by staff on their behalf).",
    )


@strawberry.input(description="Flag an account as a child's (P29).")
class FlagChildAccountInput:
    user_id: strawberry.ID
    reason: str = strawberry.field(description="How it was found; its holder is told.")


@strawberry.type
class FlagChildAccountSuccess:
    request_id: strawberry.ID = strawberry.field(
        description="The erasure request it opened: completed, its erasure under way, or in"
        " progress while a legal hold blocks it."
    )


FlagChildAccountResult = Annotated[
    FlagChildAccountSuccess | IllegalTransitionError | MutationError,
    strawberry.union("FlagChildAccountResult"),
]


@strawberry.input(description="Lift the restriction of an account's processing (P25).")
class LiftRestrictionInput:
    user_id: strawberry.ID
    reason: str = strawberry.field(
        description="Why; the subject is told before the restriction is lifted."
    )


LiftRestrictionResult = Annotated[
    PrivacyRequestSuccess | IllegalTransitionError | MutationError,
    strawberry.union("LiftRestrictionResult"),
]


@strawberry.input
class AssignPrivacyRequestInput:
    request_id: strawberry.ID
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="A privacy officer; null: yourself."
    )


@strawberry.input
class VerifyIdentityInput:
    request_id: strawberry.ID
    method: IdentityVerificationMethod
    note: str | None = None


@strawberry.input
class StartPrivacyRequestInput:
    request_id: strawberry.ID
    note: str | None = None
    release_internal_notes: bool = strawberry.field(
        default=False,
        description="An access request only: the internal notes on the subject's tickets go"
        " into their export too (staff's working data, left out unless the officer releases"
        " it).",
    )


@strawberry.input
class CompletePrivacyRequestInput:
    request_id: strawberry.ID
    outcome: str = strawberry.field(description="What was done; the subject is told.")


@strawberry.input(description="The officer's decision on one proposed correction.")
class CorrectionDecisionInput:
    field: CorrectableField
    accept: bool
    reason: str | None = strawberry.field(
        default=None, description="Why; needed to refuse. The subject is told."
    )


@strawberry.input
class DecideCorrectionsInput:
    request_id: strawberry.ID
    decisions: list[CorrectionDecisionInput] = strawberry.field(
        description="One decision for each proposed correction."
    )


@strawberry.input
class RejectPrivacyRequestInput:
    request_id: strawberry.ID
    reason: str = strawberry.field(description="Why; the subject is told.")


@strawberry.input
class ExtendPrivacyRequestInput:
    request_id: strawberry.ID
    months: int = strawberry.field(description="1 or 2; a request is extended once at most.")
    reason: str = strawberry.field(description="Why more time is needed; the subject is told.")


def _request_id(given: strawberry.ID) -> UUID:
    return from_global_id(given, "PrivacyRequest", "requestId")[1]


def _success(info: Info, request: PrivacyRequest) -> PrivacyRequestSuccess:
    return PrivacyRequestSuccess(request=privacy_request_node(info, request))


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
        visitor, states = await consents.visitor_consents(consent_ids(context), visitor_id)
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

    @strawberry.field(
        description="The privacy officer's queue: open requests (or those of one status) by"
        " due date, the overdue ones first (at most 100 a page)."
    )
    @coded_errors
    async def privacy_request_queue(
        self,
        info: Info,
        status: PrivacyRequestStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[PrivacyRequestType] | None:
        page = await privacy_requests.privacy_request_queue(
            info.context.principal, status=status, first=first, after=after
        )
        return connection(page, [privacy_request_node(info, row) for row in page.items])

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
        objection = (
            None
            if input.object_to is None
            else Objection(
                targets=input.object_to,
                source=context.consent_source,
                ip_address=context.client_ip,
                user_agent=context.user_agent,
            )
        )
        request = await privacy_requests.submit_privacy_request(
            principal, input.kind, input.details, _proposed(input.corrections), objection
        )
        return _success(info, request)

    @strawberry.mutation(
        description="Staff: register a request received at the contact address for its"
        " subject, with how their identity was verified (P28)."
    )
    async def register_privacy_request(
        self, info: Info, input: RegisterPrivacyRequestInput
    ) -> RegisterPrivacyRequestResult:
        subject = (
            from_global_id(input.subject_id, "User", "subjectId")[1] if input.subject_id else None
        )
        request = await privacy_requests.register_privacy_request(
            info.context.principal,
            Registration(
                kind=input.kind,
                received_at=input.received_at,
                verification_method=input.verification_method,
                subject_id=subject,
                subject_email=input.subject_email,
                details=input.details,
                verification_note=input.verification_note,
                corrections=_proposed(input.corrections),
                object_to=input.object_to,
            ),
        )
        return _success(info, request)

    @strawberry.mutation(description="Give an open request to a privacy officer.")
    async def assign_privacy_request(
        self, info: Info, input: AssignPrivacyRequestInput
    ) -> AssignPrivacyRequestResult:
        assignee = (
            from_global_id(input.assignee_id, "User", "assigneeId")[1]
            if input.assignee_id
            else None
        )
        request = await privacy_requests.assign_privacy_request(
            info.context.principal, _request_id(input.request_id), assignee
        )
        return _success(info, request)

    @strawberry.mutation(description="Record how the requester was confirmed to be the subject.")
    async def verify_identity(self, info: Info, input: VerifyIdentityInput) -> VerifyIdentityResult:
        request = await privacy_requests.verify_identity(
            info.context.principal, _request_id(input.request_id), input.method, input.note
        )
        return _success(info, request)

    @strawberry.mutation(description="Start work on a request whose identity is verified.")
    async def start_privacy_request(
        self, info: Info, input: StartPrivacyRequestInput
    ) -> StartPrivacyRequestResult:
        request = await privacy_requests.start_privacy_request(
            info.context.principal,
            _request_id(input.request_id),
            input.note,
            release_internal_notes=input.release_internal_notes,
        )
        return _success(info, request)

    @strawberry.mutation(description="Complete a request in progress with its outcome.")
    async def complete_privacy_request(
        self, info: Info, input: CompletePrivacyRequestInput
    ) -> CompletePrivacyRequestResult:
        request = await privacy_requests.complete_privacy_request(
            info.context.principal, _request_id(input.request_id), input.outcome
        )
        return _success(info, request)

    @strawberry.mutation(
        description="Accept or refuse each correction a rectification in progress proposes,"
        " with reasons: the accepted ones are applied, the subject told, the request completed"
        " (P23)."
    )
    async def decide_corrections(
        self, info: Info, input: DecideCorrectionsInput
    ) -> DecideCorrectionsResult:
        request = await privacy_requests.decide_corrections(
            info.context.principal,
            _request_id(input.request_id),
            [
                CorrectionDecision(field=d.field, accept=d.accept, reason=d.reason)
                for d in input.decisions
            ],
        )
        return _success(info, request)

    @strawberry.mutation(description="Decline an open request, with the reason.")
    async def reject_privacy_request(
        self, info: Info, input: RejectPrivacyRequestInput
    ) -> RejectPrivacyRequestResult:
        request = await privacy_requests.reject_privacy_request(
            info.context.principal, _request_id(input.request_id), input.reason
        )
        return _success(info, request)

    @strawberry.mutation(
        description="Extend an open request's deadline by one or two months, once (GDPR Art."
        " 12(3)), with the reason."
    )
    async def extend_privacy_request(
        self, info: Info, input: ExtendPrivacyRequestInput
    ) -> ExtendPrivacyRequestResult:
        request = await privacy_requests.extend_privacy_request(
            info.context.principal, _request_id(input.request_id), input.months, input.reason
        )
        return _success(info, request)

    @strawberry.mutation(
        description="Privacy officer: lift the restriction a completed restriction request put"
        " on an account. Its subject is told, with the reason, and it is lifted once that"
        " notice is sent; the answer is the restriction request, its history showing the step."
    )
    async def lift_restriction(
        self, info: Info, input: LiftRestrictionInput
    ) -> LiftRestrictionResult:
        _, subject = from_global_id(input.user_id, "User", "userId")
        request = await restriction.lift_restriction(info.context.principal, subject, input.reason)
        return _success(info, request)

    @strawberry.mutation(
        description="Privacy officer or administrator: flag an account as a child's (P29). It"
        " is restricted at once and erased without a request of its holder's, unless a legal"
        " hold applies (then its erasure request waits, blocked, until the hold is lifted)."
    )
    async def flag_child_account(
        self, info: Info, input: FlagChildAccountInput
    ) -> FlagChildAccountResult:
        _, subject = from_global_id(input.user_id, "User", "userId")
        request = await children.flag_child_account(info.context.principal, subject, input.reason)
        return FlagChildAccountSuccess(request_id=to_global_id("PrivacyRequest", request.id))


def consent_ids(context: Context) -> visitor_ids.VisitorIds:
    """The consent ids of this server (signed under its master key)."""
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
        visitor_ids=consent_ids(context),
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
