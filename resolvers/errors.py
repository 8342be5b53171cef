"""Expected failures of the use cases; the schema maps each to a typed GraphQL error."""

from __future__ import annotations


class DomainError(Exception):
    code = "BAD_REQUEST"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    code = "INVALID_INPUT"


class NotFound(DomainError):
    code = "NOT_FOUND"


class NotAllowed(DomainError):
    code = "FORBIDDEN"


class NotAuthenticated(DomainError):
    code = "UNAUTHENTICATED"


class AgeRequirementNotMet(DomainError):
    code = "AGE_REQUIREMENT_NOT_MET"


class CardDataRefused(DomainError):
    code = "CARD_DATA_REFUSED"


class InvalidLink(DomainError):
    """A mailed link's token that is unknown, used, expired or for something else."""

    code = "INVALID_LINK"


class IllegalTransition(DomainError):
    """A step that may not follow the current status of what it acts on; nothing changed."""

    code = "ILLEGAL_TRANSITION"


class AccountRestricted(DomainError):
    """The account's processing is restricted (P25): staff may not change it; nothing changed."""

    code = "ACCOUNT_RESTRICTED"
