"""Errors the caller may see: typed union members for mutations, coded errors for fields."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import strawberry
from strawberry.types.field import StrawberryField

from auth import rate_limit
from resolvers.errors import (
    AccountRestricted,
    AgeRequirementNotMet,
    CardDataRefused,
    DomainError,
    IllegalTransition,
    InvalidInput,
    InvalidLink,
    NotAllowed,
    NotAuthenticated,
    NotFound,
)
from schema.context import Info


class PublicError(Exception):
    """An error whose message is safe to show; it carries a machine-readable code."""

    def __init__(self, message: str, code: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.extensions = {"code": code}
        if request_id is not None:
            self.extensions["requestId"] = request_id


def forbidden() -> PublicError:
    return PublicError("You are not allowed to read this field.", "FORBIDDEN")


def not_found() -> PublicError:
    return PublicError("Not found.", "NOT_FOUND")


def from_domain(error: DomainError) -> PublicError:
    return PublicError(error.message, error.code)


P = ParamSpec("P")
R = TypeVar("R")


def coded_errors(resolve: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A query field whose domain errors answer as coded errors at its path."""

    @functools.wraps(resolve)
    async def resolve_coded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await resolve(*args, **kwargs)
        except DomainError as error:
            raise from_domain(error) from None

    return resolve_coded


@strawberry.interface(description="A failure the caller can act on.")
class UserError:
    message: str
    code: str


@strawberry.type(description="An argument was missing, malformed or not acceptable.")
class InvalidInputError(UserError):
    field: str | None


@strawberry.type(description="The object does not exist or is not visible to you.")
class NotFoundError(UserError):
    field: str | None


@strawberry.type(description="You may not do this.")
class ForbiddenError(UserError):
    pass


@strawberry.type(description="Sign in first.")
class AuthenticationRequiredError(UserError):
    pass


@strawberry.type(description="OCIS is not for anyone under 16; nothing was stored.")
class AgeRequirementError(UserError):
    pass


@strawberry.type(description="Card numbers and security codes are refused and never stored.")
class CardDataRefusedError(UserError):
    field: str | None


@strawberry.type(
    description="A mailed link that is not valid (expired, used or never issued); nothing changed."
)
class InvalidLinkError(UserError):
    field: str | None


@strawberry.type(
    description="This step may not follow the current status (of a privacy request); nothing"
    " changed."
)
class IllegalTransitionError(UserError):
    field: str | None


@strawberry.type(
    description="The account's processing is restricted (P25): it cannot be changed until the"
    " restriction is lifted; nothing changed."
)
class AccountRestrictedError(UserError):
    field: str | None


@strawberry.type(description="Too many attempts; nothing was done. Try again after a while.")
class RateLimitedError(UserError):
    retry_after_seconds: int


def rate_limited(retry_after_seconds: int) -> RateLimitedError:
    return RateLimitedError(
        message="Too many attempts. Try again later.",
        code="RATE_LIMITED",
        retry_after_seconds=retry_after_seconds,
    )


MutationError = (
    InvalidInputError
    | NotFoundError
    | ForbiddenError
    | AuthenticationRequiredError
    | CardDataRefusedError
)


def refusal(info: Info, decision: rate_limit.Decision) -> RateLimitedError | None:
    """The typed error for an attempt over its limit; the HTTP answer becomes 429 too."""
    if decision.allowed:
        return None
    response = info.context.response
    if response is not None:
        response.status_code = 429
        response.headers["Retry-After"] = str(decision.retry_after)
    return rate_limited(decision.retry_after)


class DomainErrorAnswer:
    """Answer one kind of domain error with its union member, wherever a union holds it.

    Strawberry asks these handlers for every mutation whose result union has the
    ``error_type``; the first whose ``exception_type`` matches answers.
    """

    def __init__(self, exception_type: type[DomainError], error_type: type[UserError]) -> None:
        self.exception_type = exception_type
        self.error_type = error_type
        self.names_field = "field" in {each.name for each in dataclasses.fields(error_type)}

    def handle(self, exception: DomainError, *, field: StrawberryField, info: Any) -> UserError:
        values: dict[str, Any] = {"message": exception.message, "code": exception.code}
        if self.names_field:
            values["field"] = exception.field
        return self.error_type(**values)


# Most specific first: a bare DomainError (or an unmapped kind) is an input error.
EXCEPTION_HANDLERS = (
    DomainErrorAnswer(NotFound, NotFoundError),
    DomainErrorAnswer(NotAllowed, ForbiddenError),
    DomainErrorAnswer(NotAuthenticated, AuthenticationRequiredError),
    DomainErrorAnswer(AgeRequirementNotMet, AgeRequirementError),
    DomainErrorAnswer(CardDataRefused, CardDataRefusedError),
    DomainErrorAnswer(InvalidLink, InvalidLinkError),
    DomainErrorAnswer(IllegalTransition, IllegalTransitionError),
    DomainErrorAnswer(AccountRestricted, AccountRestrictedError),
    DomainErrorAnswer(InvalidInput, InvalidInputError),
    DomainErrorAnswer(DomainError, InvalidInputError),
)
