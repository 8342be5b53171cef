"""Root mutation fields; each answers with its payload or a typed error."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry
from redis.asyncio import Redis

from auth import rate_limit
from auth.policy import Relation
from auth.scopes import STAFF_ROLES
from models import Ticket, User
from resolvers import accounts, consents, federated, payments, privacy_requests, tickets, users
from resolvers.errors import DomainError
from resolvers.payments import CardReference
from resolvers.tickets import OnBehalfOf
from resolvers.users import ProfileChanges, Registration
from schema.context import Info
from schema.errors import (
    AgeRequirementError,
    AuthenticationRequiredError,
    CardDataRefusedError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    rate_limited,
    user_error,
)
from schema.types import (
    ChannelEnum,
    ConsentPurposeEnum,
    ConsentState,
    PaymentMethodType,
    PrivacyRequestKindEnum,
    PrivacyRequestType,
    TicketMessageType,
    TicketPriorityEnum,
    TicketStatusEnum,
    TicketType,
    UserType,
    from_global_id,
    ticket_nodes,
)

Errors = (
    InvalidInputError
    | NotFoundError
    | ForbiddenError
    | AuthenticationRequiredError
    | CardDataRefusedError
)


def _own(user: User) -> UserType:
    staff = {role.value for role in STAFF_ROLES}
    return UserType(
        model=user,
        relation=Relation(is_self=True, subject_is_staff=bool(staff.intersection(user.roles))),
    )


@strawberry.input
class RegisterInput:
    name: str
    email: str
    password: str
    date_of_birth: date = strawberry.field(description="Needed to confirm you are 16 or over.")
    phone: str | None = None
    username: str | None = None
    locale: str | None = None
    time_zone: str | None = None


@strawberry.type
class RegisterSuccess:
    user: UserType


RegisterResult = Annotated[
    RegisterSuccess | AgeRequirementError | RateLimitedError | Errors,
    strawberry.union("RegisterResult"),
]


@strawberry.input
class UpdateProfileInput:
    name: str | None = None
    phone: str | None = strawberry.field(default=None, description="An empty string clears it.")
    locale: str | None = None
    time_zone: str | None = None


@strawberry.type
class UpdateProfileSuccess:
    user: UserType


UpdateProfileResult = Annotated[
    UpdateProfileSuccess | Errors, strawberry.union("UpdateProfileResult")
]


@strawberry.input
class CreateTicketInput:
    subject: str
    body: str
    priority: TicketPriorityEnum = TicketPriorityEnum.NORMAL  # type: ignore[valid-type]
    channel: ChannelEnum = ChannelEnum.WEB  # type: ignore[valid-type]
    requester_email: str | None = strawberry.field(
        default=None, description="Staff only: open the ticket for someone who wrote in."
    )
    requester_name: str | None = None


@strawberry.type
class TicketSuccess:
    ticket: TicketType


CreateTicketResult = Annotated[TicketSuccess | Errors, strawberry.union("CreateTicketResult")]
AssignTicketResult = Annotated[TicketSuccess | Errors, strawberry.union("AssignTicketResult")]
ChangeTicketStatusResult = Annotated[
    TicketSuccess | Errors, strawberry.union("ChangeTicketStatusResult")
]


@strawberry.input
class AddMessageInput:
    ticket_id: strawberry.ID
    body: str
    internal: bool = strawberry.field(default=False, description="Staff-only note when true.")


@strawberry.type
class AddMessageSuccess:
    message: TicketMessageType


AddMessageResult = Annotated[AddMessageSuccess | Errors, strawberry.union("AddMessageResult")]


@strawberry.input
class AssignTicketInput:
    ticket_id: strawberry.ID
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="Null returns the ticket to its team's queue."
    )


@strawberry.input
class ChangeTicketStatusInput:
    ticket_id: strawberry.ID
    status: TicketStatusEnum  # type: ignore[valid-type]


@strawberry.input
class ConsentInput:
    purpose: ConsentPurposeEnum  # type: ignore[valid-type]


@strawberry.type
class ConsentSuccess:
    consent: ConsentState


ConsentResult = Annotated[ConsentSuccess | Errors, strawberry.union("ConsentResult")]


@strawberry.input
class SubmitPrivacyRequestInput:
    kind: PrivacyRequestKindEnum  # type: ignore[valid-type]
    details: str | None = None


@strawberry.type
class PrivacyRequestSuccess:
    request: PrivacyRequestType


SubmitPrivacyRequestResult = Annotated[
    PrivacyRequestSuccess | RateLimitedError | Errors,
    strawberry.union("SubmitPrivacyRequestResult"),
]


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
    AddPaymentMethodSuccess | Errors, strawberry.union("AddPaymentMethodResult")
]


@strawberry.type
class RemovePaymentMethodSuccess:
    removed_id: strawberry.ID


RemovePaymentMethodResult = Annotated[
    RemovePaymentMethodSuccess | Errors, strawberry.union("RemovePaymentMethodResult")
]


def _refusal(info: Info, decision: rate_limit.Decision) -> RateLimitedError | None:
    """The typed error for an attempt over its limit; the HTTP answer becomes 429 too."""
    if decision.allowed:
        return None
    response = info.context.response
    if response is not None:
        response.status_code = 429
        response.headers["Retry-After"] = str(decision.retry_after)
    return rate_limited(decision.retry_after)


async def _ticket(info: Info, ticket: Ticket) -> TicketSuccess:
    (node,) = await ticket_nodes(info, [ticket])
    return TicketSuccess(ticket=node)


@strawberry.type
class UnlinkIdentitySuccess:
    removed_id: strawberry.ID


UnlinkIdentityResult = Annotated[
    UnlinkIdentitySuccess | Errors, strawberry.union("UnlinkIdentityResult")
]


@strawberry.type
class SignOutEverywhereSuccess:
    sessions_ended: int
    app_sign_ins_ended: int


SignOutEverywhereResult = Annotated[
    SignOutEverywhereSuccess | Errors, strawberry.union("SignOutEverywhereResult")
]


@strawberry.type
class DisableAccountSuccess:
    user_id: strawberry.ID
    sessions_ended: int
    app_sign_ins_ended: int


DisableAccountResult = Annotated[
    DisableAccountSuccess | Errors, strawberry.union("DisableAccountResult")
]


@strawberry.type
class EnableAccountSuccess:
    user_id: strawberry.ID


EnableAccountResult = Annotated[
    EnableAccountSuccess | Errors, strawberry.union("EnableAccountResult")
]


@strawberry.type
class MarkNoticesReadSuccess:
    marked: int


MarkNoticesReadResult = Annotated[
    MarkNoticesReadSuccess | Errors, strawberry.union("MarkNoticesReadResult")
]


def _store(info: Info) -> Redis:
    store = info.context.store
    if store is None:  # every server request carries it; a bare schema call does not
        raise RuntimeError("this mutation needs the shared store")
    return store


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Open a customer account (16 or over).")
    async def register(self, info: Info, input: RegisterInput) -> RegisterResult:
        context = info.context
        if context.store is not None:
            decision = await rate_limit.registration_attempt(
                context.store, email=input.email, ip=context.client_ip
            )
            if (refusal := _refusal(info, decision)) is not None:
                return refusal
        form = Registration(
            name=input.name,
            email=input.email,
            password=input.password,
            date_of_birth=input.date_of_birth,
            phone=input.phone,
            username=input.username,
            locale=input.locale,
            time_zone=input.time_zone,
        )
        try:
            user = await users.register(info.context.principal, form)
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return RegisterSuccess(user=_own(user))

    @strawberry.mutation(description="Change your own name, phone, locale or time zone.")
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UpdateProfileResult:
        changes = ProfileChanges(
            name=input.name,
            phone=input.phone or None,
            clear_phone=input.phone == "",
            locale=input.locale,
            time_zone=input.time_zone,
        )
        try:
            user = await users.update_profile(info.context.principal, changes)
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return UpdateProfileSuccess(user=_own(user))

    @strawberry.mutation(description="Open a support ticket with its first message.")
    async def create_ticket(self, info: Info, input: CreateTicketInput) -> CreateTicketResult:
        try:
            ticket = await tickets.create_ticket(
                info.context.principal,
                subject=input.subject,
                body=input.body,
                priority=input.priority,
                channel=input.channel,
                on_behalf_of=OnBehalfOf(input.requester_email, input.requester_name)
                if input.requester_email is not None
                else None,
            )
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return await _ticket(info, ticket)

    @strawberry.mutation(description="Reply on a ticket, or add a staff-only internal note.")
    async def add_message(self, info: Info, input: AddMessageInput) -> AddMessageResult:
        try:
            _, ticket_id = from_global_id(input.ticket_id, "Ticket", "ticketId")
            message = await tickets.add_message(
                info.context.principal,
                ticket_id=ticket_id,
                body=input.body,
                internal=input.internal,
            )
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return AddMessageSuccess(message=TicketMessageType(model=message, relation=Relation()))

    @strawberry.mutation(description="Assign a ticket to a staff member, or unassign it.")
    async def assign_ticket(self, info: Info, input: AssignTicketInput) -> AssignTicketResult:
        try:
            _, ticket_id = from_global_id(input.ticket_id, "Ticket", "ticketId")
            assignee_id = (
                from_global_id(input.assignee_id, "User", "assigneeId")[1]
                if input.assignee_id
                else None
            )
            ticket = await tickets.assign_ticket(
                info.context.principal, ticket_id=ticket_id, assignee_id=assignee_id
            )
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return await _ticket(info, ticket)

    @strawberry.mutation(description="Move a ticket to another status.")
    async def change_ticket_status(
        self, info: Info, input: ChangeTicketStatusInput
    ) -> ChangeTicketStatusResult:
        try:
            _, ticket_id = from_global_id(input.ticket_id, "Ticket", "ticketId")
            ticket = await tickets.change_ticket_status(
                info.context.principal, ticket_id=ticket_id, status=input.status
            )
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return await _ticket(info, ticket)

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
            if (refusal := _refusal(info, decision)) is not None:
                return refusal
        try:
            request = await privacy_requests.submit_privacy_request(
                principal, input.kind, input.details
            )
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return PrivacyRequestSuccess(
            request=PrivacyRequestType(model=request, relation=Relation(is_self=True))
        )

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
        try:
            method = await payments.add_payment_method(info.context.principal, card)
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return AddPaymentMethodSuccess(
            payment_method=PaymentMethodType(model=method, relation=Relation(is_self=True))
        )

    @strawberry.mutation(description="Unlink a provider account (never your last way in).")
    async def unlink_identity(self, info: Info, id: strawberry.ID) -> UnlinkIdentityResult:
        try:
            _, identity_id = from_global_id(id, "LinkedIdentity")
            await federated.unlink_identity(info.context.principal, identity_id)
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return UnlinkIdentitySuccess(removed_id=id)

    @strawberry.mutation(
        description="End every session and app sign-in of your account, this one included."
    )
    async def sign_out_everywhere(self, info: Info) -> SignOutEverywhereResult:
        try:
            ended = await accounts.sign_out_everywhere(info.context.principal, _store(info))
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return SignOutEverywhereSuccess(
            sessions_ended=ended.sessions, app_sign_ins_ended=ended.app_sign_ins
        )

    @strawberry.mutation(
        description="Stop an account from signing in and end its sign-ins (administrator)."
    )
    async def disable_account(self, info: Info, user_id: strawberry.ID) -> DisableAccountResult:
        try:
            _, ident = from_global_id(user_id, "User", "userId")
            ended = await accounts.disable_account(info.context.principal, _store(info), ident)
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return DisableAccountSuccess(
            user_id=user_id, sessions_ended=ended.sessions, app_sign_ins_ended=ended.app_sign_ins
        )

    @strawberry.mutation(description="Let a disabled account sign in again (administrator).")
    async def enable_account(self, info: Info, user_id: strawberry.ID) -> EnableAccountResult:
        try:
            _, ident = from_global_id(user_id, "User", "userId")
            await accounts.enable_account(info.context.principal, ident)
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return EnableAccountSuccess(user_id=user_id)

    @strawberry.mutation(description="Mark some of your notices read.")
    async def mark_notices_read(
        self, info: Info, ids: list[strawberry.ID]
    ) -> MarkNoticesReadResult:
        try:
            notice_ids = [from_global_id(ident, "Notice", "ids")[1] for ident in ids]
            marked = await accounts.mark_notices_read(info.context.principal, notice_ids)
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return MarkNoticesReadSuccess(marked=marked)

    @strawberry.mutation(description="Forget one of your payment methods.")
    async def remove_payment_method(
        self, info: Info, id: strawberry.ID
    ) -> RemovePaymentMethodResult:
        try:
            _, method_id = from_global_id(id, "PaymentMethod")
            await payments.remove_payment_method(info.context.principal, method_id)
        except DomainError as error:
            return user_error(error)  # type: ignore[return-value]
        return RemovePaymentMethodSuccess(removed_id=id)


async def _consent(info: Info, input: ConsentInput, *, granted: bool) -> ConsentResult:
    context = info.context
    try:
        state = await consents.set_consent(
            context.principal,
            input.purpose,
            granted=granted,
            source="api",
            ip_address=context.client_ip,
            user_agent=context.user_agent,
        )
    except DomainError as error:
        return user_error(error)  # type: ignore[return-value]
    return ConsentSuccess(
        consent=ConsentState(
            purpose=state.purpose,
            granted=state.granted,
            policy_version=state.policy_version,
            updated_at=state.updated_at,
            owner=context.principal.user_id,
        )
    )
