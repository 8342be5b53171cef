"""Access tokens: short-lived ES256 JWTs, issued here and checked on every bearer request."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from uuid import UUID

from jose import jwt
from jose.backends.cryptography_backend import CryptographyECKey
from jose.exceptions import JWTError
from redis.asyncio import Redis

import settings as config
from auth.principal import Principal, parse_roles
from auth.redirects import MOBILE_REDIRECTS
from auth.tokens.errors import InvalidAccessToken
from auth.tokens.keyspace import FAMILY_PREFIX
from auth.tokens.signing import ALGORITHM, signing_key, verification_keys
from models import SIGN_IN_STATUSES, User

# RFC 9068: an ID token or another JWT cannot pass for an access token.
TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
AUDIENCE = "ocis-api"
ACCESS_TOKEN_TTL = 10 * 60
LEEWAY_SECONDS = 30
MAX_ACCESS_TOKEN_LENGTH = 4096
ALLOWED_HEADERS = frozenset({"alg", "kid", "typ"})
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "nbf", "exp", "jti")


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: UUID
    family_id: str


def issue_access_token(
    settings: config.Settings,
    user_id: UUID,
    family_id: str,
    client_id: str,
    *,
    now: float | None = None,
) -> str:
    issued = int(time.time() if now is None else now)
    key = signing_key(settings.master_key)
    claims = {
        "iss": settings.public_url,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "sid": family_id,
        "client_id": client_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ACCESS_TOKEN_TTL,
        "jti": uuid.uuid4().hex,
    }
    token: str = jwt.encode(
        claims,
        CryptographyECKey(key.private_key, ALGORITHM),
        algorithm=ALGORITHM,
        headers={"kid": key.kid, "typ": TOKEN_TYPE},
    )
    return token


def verify_access_token(
    settings: config.Settings, token: str, *, expired_ok: bool = False
) -> AccessClaims:
    """Check the signature (ES256 only, with our key named by kid) and every claim.

    `expired_ok` (sign-out only) accepts a token that is genuine in every way but past its
    expiry: its family id is still ours, and ending that family can only help.
    """
    if len(token) > MAX_ACCESS_TOKEN_LENGTH:
        raise InvalidAccessToken("too long")
    try:
        header = jwt.get_unverified_header(token)
    except JWTError as error:
        raise InvalidAccessToken("malformed") from error
    # Refuse jwk/jku/x5u/crit and anything else we do not issue rather than ignore it.
    if (
        not isinstance(header, dict)
        or not set(header) <= ALLOWED_HEADERS
        or header.get("alg") != ALGORITHM
        or header.get("typ") != TOKEN_TYPE
        or not isinstance(header.get("kid"), str)
    ):
        raise InvalidAccessToken("unexpected header")
    key = verification_keys(settings).get(header["kid"])
    if key is None:
        raise InvalidAccessToken("unknown kid")
    try:
        claims = jwt.decode(
            token,
            key.verifier,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=settings.public_url,
            options={
                # python-jose verifies whatever it is told to require: an expired token
                # is let through only by not requiring exp here (its presence is checked below).
                **{
                    f"require_{claim}": not (expired_ok and claim == "exp")
                    for claim in REQUIRED_CLAIMS
                },
                "leeway": LEEWAY_SECONDS,
                "verify_exp": not expired_ok,
            },
        )
    except JWTError as error:
        raise InvalidAccessToken("signature or claims") from error
    issued, expires = claims["iat"], claims.get("exp")
    if not isinstance(issued, int) or not isinstance(expires, int):
        raise InvalidAccessToken("times")
    if issued > time.time() + LEEWAY_SECONDS or expires - issued > ACCESS_TOKEN_TTL:
        raise InvalidAccessToken("times")
    family_id, client_id = claims.get("sid"), claims.get("client_id")
    if not isinstance(family_id, str) or not family_id or not isinstance(client_id, str):
        raise InvalidAccessToken("sid or client_id")
    if client_id not in MOBILE_REDIRECTS:
        raise InvalidAccessToken("sid or client_id")
    try:
        user_id = UUID(claims["sub"])
    except (TypeError, ValueError, AttributeError) as error:
        raise InvalidAccessToken("sub") from error
    return AccessClaims(user_id=user_id, family_id=family_id)


def owner_of(settings: config.Settings, token: str | None) -> UUID | None:
    """The account a genuine access token (expired or not) was issued to, else None."""
    if not token:
        return None
    try:
        return verify_access_token(settings, token, expired_ok=True).user_id
    except InvalidAccessToken:
        return None


async def family_owner(store: Redis, family_id: str) -> str | None:
    """The account id a live sign-in family belongs to, or None once it has ended."""
    raw = await store.get(FAMILY_PREFIX + family_id)
    return None if raw is None else str(json.loads(raw)["user_id"])


def bearer_credentials(authorization: str) -> str | None:
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def live_user(user_id: UUID | str) -> User | None:
    """The account, if it may still sign in, with only what a principal needs."""
    user: User | None = await User.get_or_none(id=user_id, status__in=SIGN_IN_STATUSES).only(
        "id", "roles", "team_id"
    )
    return user


async def authenticate_bearer(
    store: Redis, settings: config.Settings, authorization: str, request_id: str | None
) -> Principal | None:
    """The principal of a valid access token, or None for any kind of invalid one."""
    token = bearer_credentials(authorization)
    if token is None:
        return None
    try:
        claims = verify_access_token(settings, token)
    except InvalidAccessToken:
        return None
    # One store read per request: revoking the family (reuse, sign out everywhere, account
    # disable) stops its access tokens at once instead of when they expire.
    # We sign a family's id only beside its owner's: any other pairing is a forgery (made
    # with a leaked or development key), not a sign-in of ours.
    if await family_owner(store, claims.family_id) != str(claims.user_id):
        return None
    user = await live_user(claims.user_id)
    if user is None:
        return None
    return Principal.for_user(
        user.id,
        parse_roles(user.roles),
        user.team_id,
        request_id=request_id,
    )
