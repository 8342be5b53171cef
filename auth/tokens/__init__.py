"""The mobile app's credentials: one-time codes, access JWTs and rotating refresh tokens.

The app signs in through the gateway, which hands it a one-time code bound to its redirect
URI and a PKCE S256 challenge (`codes`). `POST /auth/token` (`endpoint`) exchanges the code
for a short-lived access JWT (ES256, `kid` in the header; `access`, keys in `signing`) and an
opaque refresh token. Refresh tokens come in families, one per sign-in (`families`): each use
rotates the token, and a used token presented again revokes its whole family. Every process
derives the same signing key from the master key, and the shared store holds only hashes of
codes and tokens (`keyspace`).
"""

from __future__ import annotations

from auth.tokens.access import (
    AccessClaims,
    authenticate_bearer,
    bearer_credentials,
    issue_access_token,
    owner_of,
    verify_access_token,
)
from auth.tokens.codes import issue_mobile_code
from auth.tokens.endpoint import account_of, token_request
from auth.tokens.errors import (
    CredentialReuse,
    InvalidAccessToken,
    InvalidGrant,
    InvalidRequest,
    TokenError,
)
from auth.tokens.families import (
    TokenGrant,
    refresh,
    revoke_all_for_user,
    revoke_family,
    sign_out_app,
)
from auth.tokens.keyspace import FAMILY_PREFIX, REFRESH_PREFIX
from auth.tokens.signing import jwks, signing_key

__all__ = [
    "FAMILY_PREFIX",
    "REFRESH_PREFIX",
    "AccessClaims",
    "CredentialReuse",
    "InvalidAccessToken",
    "InvalidGrant",
    "InvalidRequest",
    "TokenError",
    "TokenGrant",
    "account_of",
    "authenticate_bearer",
    "bearer_credentials",
    "issue_access_token",
    "issue_mobile_code",
    "jwks",
    "owner_of",
    "refresh",
    "revoke_all_for_user",
    "revoke_family",
    "sign_out_app",
    "signing_key",
    "token_request",
    "verify_access_token",
]
