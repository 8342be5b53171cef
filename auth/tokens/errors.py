"""What the token endpoint and a bearer check can refuse with."""

from __future__ import annotations

from uuid import UUID


class TokenError(Exception):
    """A token-endpoint failure; `code` (RFC 6749 5.2) is all the client is told."""

    code = "invalid_request"


class InvalidRequest(TokenError):
    code = "invalid_request"


class InvalidGrant(TokenError):
    code = "invalid_grant"


class UnsupportedGrantType(TokenError):
    code = "unsupported_grant_type"


class CredentialReuse(InvalidGrant):
    """A used code or refresh token came back, and its family was revoked: audit it."""

    def __init__(self, action: str, family_id: str, user_id: UUID) -> None:
        super().__init__(action)
        self.action = action
        self.family_id = family_id
        self.user_id = user_id


class InvalidAccessToken(Exception):
    """A bearer token that is malformed, forged, expired or not meant for us."""
