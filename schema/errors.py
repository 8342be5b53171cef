"""Errors the caller may see: typed union members for mutations, coded errors for fields."""

from __future__ import annotations

import strawberry

from resolvers.errors import (
    AgeRequirementNotMet,
    CardDataRefused,
    DomainError,
    InvalidInput,
    NotAllowed,
    NotAuthenticated,
    NotFound,
)


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


def user_error(error: DomainError) -> UserError:
    """The union member for a domain error."""
    if isinstance(error, NotFound):
        return NotFoundError(message=error.message, code=error.code, field=error.field)
    if isinstance(error, NotAllowed):
        return ForbiddenError(message=error.message, code=error.code)
    if isinstance(error, NotAuthenticated):
        return AuthenticationRequiredError(message=error.message, code=error.code)
    if isinstance(error, AgeRequirementNotMet):
        return AgeRequirementError(message=error.message, code=error.code)
    if isinstance(error, CardDataRefused):
        return CardDataRefusedError(message=error.message, code=error.code, field=error.field)
    if isinstance(error, InvalidInput):
        return InvalidInputError(message=error.message, code=error.code, field=error.field)
    return InvalidInputError(message=error.message, code=error.code, field=error.field)
