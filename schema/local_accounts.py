"""Local accounts: registration, email verification, password reset, password and email change."""

from datetime import date
from typing import Annotated

import strawberry

from auth import rate_limit
from resolvers import consents, local_accounts
from resolvers.accounts import Ended
from resolvers.local_accounts import Registration
from schema.context import Info, store_of
from schema.errors import (
    AgeRequirementError,
    InvalidLinkError,
    MutationError,
    RateLimitedError,
    refusal,
)

CHECK_YOUR_MAIL = "Check your mail: we sent what comes next to the address you gave."


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


@strawberry.type(
    description="The request was taken; what comes next arrives by mail. The same answer "
    "whether or not the address already has an account."
)
class CheckYourMail:
    message: str


def _check_your_mail() -> CheckYourMail:
    return CheckYourMail(message=CHECK_YOUR_MAIL)


RegisterResult = Annotated[
    CheckYourMail | AgeRequirementError | RateLimitedError | MutationError,
    strawberry.union("RegisterResult"),
]


@strawberry.type
class VerifyEmailSuccess:
    verified: bool


VerifyEmailResult = Annotated[
    VerifyEmailSuccess | InvalidLinkError | MutationError, strawberry.union("VerifyEmailResult")
]

RequestPasswordResetResult = Annotated[
    CheckYourMail | RateLimitedError | MutationError,
    strawberry.union("RequestPasswordResetResult"),
]


@strawberry.type(description="The new password is set; the sign-ins that ended with it.")
class CredentialChanged:
    sessions_ended: int
    app_sign_ins_ended: int


ResetPasswordResult = Annotated[
    CredentialChanged | InvalidLinkError | MutationError, strawberry.union("ResetPasswordResult")
]

ChangePasswordResult = Annotated[
    CredentialChanged | RateLimitedError | MutationError, strawberry.union("ChangePasswordResult")
]

ChangeEmailResult = Annotated[
    CheckYourMail | RateLimitedError | MutationError, strawberry.union("ChangeEmailResult")
]


@strawberry.type
class EmailChanged:
    changed: bool


ConfirmEmailChangeResult = Annotated[
    EmailChanged | InvalidLinkError | MutationError, strawberry.union("ConfirmEmailChangeResult")
]


def _changed(ended: Ended) -> CredentialChanged:
    return CredentialChanged(sessions_ended=ended.sessions, app_sign_ins_ended=ended.app_sign_ins)


@strawberry.type
class LocalAccountsMutation:
    @strawberry.mutation(
        description="Ask for a customer account (16 or over); a link to confirm the address "
        "is mailed to it. The answer is the same whether or not the address is taken."
    )
    async def register(self, info: Info, input: RegisterInput) -> RegisterResult:
        context = info.context
        if context.store is not None:
            decision = await rate_limit.registration_attempt(
                context.store, email=input.email, ip=context.client_ip
            )
            if (refused := refusal(info, decision)) is not None:
                return refused
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
        await local_accounts.register(context.principal, form, public_url=context.public_url)
        return _check_your_mail()

    @strawberry.mutation(
        description="Confirm an address with the token of the mailed link. With visitorId "
        "(this browser's consent id), the consent decisions made before signing up become "
        "the account's, with their original times and policy versions."
    )
    async def verify_email(
        self, info: Info, token: str, visitor_id: str | None = None
    ) -> VerifyEmailResult:
        context = info.context
        ids = context.visitor_ids
        # Checked first: a forged consent id changes nothing, the link stays unused.
        if visitor_id is not None and ids is not None:
            consents.checked_visitor(ids, visitor_id)
        user_id = await local_accounts.verify_email(context.principal, token)
        if visitor_id is not None and ids is not None:
            await consents.adopt_visitor_consent(context.principal, user_id, ids, visitor_id)
        return VerifyEmailSuccess(verified=True)

    @strawberry.mutation(
        description="Mail a single-use reset link (30 minutes) to the address, if it is the "
        "verified address of an account; the same answer for any other."
    )
    async def request_password_reset(self, info: Info, email: str) -> RequestPasswordResetResult:
        context = info.context
        decision = await rate_limit.password_reset_attempt(
            store_of(context), email=email, ip=context.client_ip
        )
        if (refused := refusal(info, decision)) is not None:
            return refused
        await local_accounts.request_password_reset(email, public_url=context.public_url)
        return _check_your_mail()

    @strawberry.mutation(
        description="Set a new password with the token of a reset link; every session and app "
        "sign-in of the account ends."
    )
    async def reset_password(
        self, info: Info, token: str, new_password: str
    ) -> ResetPasswordResult:
        context = info.context
        ended = await local_accounts.reset_password(
            context.principal, store_of(context), token, new_password
        )
        return _changed(ended)

    @strawberry.mutation(
        description="Change your password (the current one is needed); your other sessions "
        "and app sign-ins end, this session stays."
    )
    async def change_password(
        self, info: Info, current_password: str, new_password: str
    ) -> ChangePasswordResult:
        context = info.context
        if (refused := await _limit_current_password(info)) is not None:
            return refused
        ended = await local_accounts.change_password(
            context.principal, store_of(context), current_password, new_password
        )
        return _changed(ended)

    @strawberry.mutation(
        description="Ask for a new email address (your password is needed): it takes effect "
        "once confirmed from the new address; the current one is told."
    )
    async def change_email(self, info: Info, new_email: str, password: str) -> ChangeEmailResult:
        context = info.context
        if (refused := await _limit_current_password(info)) is not None:
            return refused
        await local_accounts.change_email(
            context.principal, new_email, password, public_url=context.public_url
        )
        return _check_your_mail()

    @strawberry.mutation(description="Confirm a new address with the token of the mailed link.")
    async def confirm_email_change(self, info: Info, token: str) -> ConfirmEmailChangeResult:
        await local_accounts.confirm_email_change(info.context.principal, token)
        return EmailChanged(changed=True)


async def _limit_current_password(info: Info) -> RateLimitedError | None:
    """Guesses at the current password count per account (anonymous callers are refused
    later, before any check)."""
    context = info.context
    if context.principal.user_id is None:
        return None
    decision = await rate_limit.current_password_attempt(
        store_of(context), account=str(context.principal.user_id)
    )
    return refusal(info, decision)
