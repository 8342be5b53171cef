"""The mobile app's credentials: one-time codes, access JWTs and rotating refresh tokens.

The app signs in through the gateway, which hands it a one-time code bound to its redirect
URI and a PKCE S256 challenge. `POST /auth/token` exchanges the code for a short-lived
access JWT (ES256, `kid` in the header) and an opaque refresh token. Refresh tokens come in
families, one per sign-in: each use rotates the token, and a used token presented again
revokes its whole family. Every process derives the same signing key from the master key,
and the shared store holds only hashes of codes and tokens.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from uuid import UUID

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jose import jwt
from jose.backends.cryptography_backend import CryptographyECKey
from jose.exceptions import JWTError
from redis.asyncio import Redis

import settings as config
from auth.client_info import ClientInfo
from auth.principal import Principal, parse_roles
from auth.redirects import MOBILE_REDIRECTS
from auth.sessions import APP_METHOD_PREFIX, end_app_sign_ins, record_app_sign_in, token_hash
from models import SIGN_IN_STATUSES, User

ALGORITHM = "ES256"
# RFC 9068: an ID token or another JWT cannot pass for an access token.
TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
AUDIENCE = "ocis-api"
ACCESS_TOKEN_TTL = 10 * 60
REFRESH_FAMILY_TTL = 30 * 24 * 3600
CODE_TTL = 60
CODE_REPLAY_MEMORY = 10 * 60
ROTATION_IN_FLIGHT_SECONDS = 10
LEEWAY_SECONDS = 30
MAX_ACCESS_TOKEN_LENGTH = 4096
MAX_OPAQUE_LENGTH = 128
ALLOWED_HEADERS = frozenset({"alg", "kid", "typ"})
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "nbf", "exp", "jti")

CODE_PREFIX = "ocis:mobile:code:"
CODE_USED_PREFIX = "ocis:mobile:code-used:"
FAMILY_PREFIX = "ocis:mobile:family:"
USER_FAMILIES_PREFIX = "ocis:mobile:user-families:"
REFRESH_PREFIX = "ocis:mobile:refresh:"
REFRESH_CLAIM_PREFIX = "ocis:mobile:refresh-used:"
# When a person last signed out everywhere (or was disabled): codes issued before it are void.
NOT_BEFORE_PREFIX = "ocis:mobile:not-before:"

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_CODE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


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


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey
    public_jwk: dict[str, str]
    verifier: Any  # jose's key object for the public half


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: UUID
    family_id: str


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    refresh_token: str
    family_id: str
    expires_in: int = ACCESS_TOKEN_TTL

    def response(self) -> dict[str, str | int]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@functools.lru_cache(maxsize=8)
def signing_key(master_key: bytes) -> SigningKey:
    """The ES256 key every process derives alike from the master key (no key table)."""
    material = HKDF(
        algorithm=hashes.SHA256(), length=48, salt=None, info=b"ocis/mobile-access-token/es256"
    ).derive(master_key)
    # 64 extra bits before the reduction make the bias negligible (FIPS 186-5 A.2.1).
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    private_key = ec.derive_private_key(scalar, ec.SECP256R1())
    numbers = private_key.public_key().public_numbers()
    x, y = _b64(numbers.x.to_bytes(32, "big")), _b64(numbers.y.to_bytes(32, "big"))
    thumbprint = json.dumps(  # RFC 7638
        {"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"), sort_keys=True
    )
    kid = _b64(hashlib.sha256(thumbprint.encode()).digest())
    jwk = {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": ALGORITHM}
    verifier = CryptographyECKey(private_key.public_key(), ALGORITHM)
    return SigningKey(kid, private_key, jwk, verifier)


def verification_keys(settings: config.Settings) -> dict[str, SigningKey]:
    """Our keys by kid: the current one, and those of previous master keys if configured."""
    # Tokens signed before a master-key rotation stay valid until they expire. (getattr:
    # this module does not depend on the key-rotation settings being present.)
    previous = getattr(settings, "previous_master_keys", ())
    masters = [settings.master_key, *(key for key in previous if isinstance(key, bytes))]
    return {key.kid: key for key in map(signing_key, masters)}


def jwks(settings: config.Settings) -> dict[str, list[dict[str, str]]]:
    """The public keys, as `GET /.well-known/jwks.json` publishes them."""
    return {"keys": [key.public_jwk for key in verification_keys(settings).values()]}


def is_registered_redirect(client_id: str, redirect_uri: str) -> bool:
    return redirect_uri in MOBILE_REDIRECTS.get(client_id, frozenset())


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


def bearer_credentials(authorization: str) -> str | None:
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def _live_user(user_id: UUID | str) -> User | None:
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
    if not await store.exists(FAMILY_PREFIX + claims.family_id):
        return None
    user = await _live_user(claims.user_id)
    if user is None:
        return None
    return Principal.for_user(
        user.id,
        parse_roles(user.roles),
        user.team_id,  # type: ignore[attr-defined]
        request_id=request_id,
    )


async def issue_mobile_code(
    store: Redis,
    user_id: UUID | str,
    redirect_uri: str,
    code_challenge: str,
    client_id: str,
    *,
    method: str = "code",
    now: float | None = None,
) -> str:
    """A one-time code for the app, valid 60 seconds, bound to its redirect and PKCE challenge.

    `method` is how the person signed in (e.g. ``oidc:google``), for the sign-in record.
    """
    if not is_registered_redirect(client_id, redirect_uri):
        raise ValueError("unregistered mobile client or redirect URI")
    if not code_challenge or len(code_challenge) > MAX_OPAQUE_LENGTH:
        raise ValueError("a PKCE S256 code challenge is required")
    issued = time.time() if now is None else now
    code = secrets.token_urlsafe(32)
    record = {
        "user_id": str(user_id),
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": code_challenge,
        "issued_at": issued,
        "expires_at": issued + CODE_TTL,
        "method": method,
    }
    await store.set(CODE_PREFIX + token_hash(code), json.dumps(record), ex=CODE_TTL)
    return code


async def _signed_out_since(store: Redis, code_record: Mapping[str, Any]) -> bool:
    """Whether the person signed out everywhere (or was disabled) after this code was issued."""
    not_before = await store.get(NOT_BEFORE_PREFIX + str(code_record["user_id"]))
    return not_before is not None and float(code_record["issued_at"]) <= float(not_before)


def _pkce_matches(code_verifier: str, code_challenge: str) -> bool:
    if not _CODE_VERIFIER.fullmatch(code_verifier):
        return False
    computed = _b64(hashlib.sha256(code_verifier.encode("ascii")).digest())
    return hmac.compare_digest(computed, code_challenge)


def _opaque(value: str) -> bool:
    return 0 < len(value) <= MAX_OPAQUE_LENGTH


async def exchange_code(
    store: Redis,
    settings: config.Settings,
    *,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    client_id: str,
    client: ClientInfo | None = None,
    now: float | None = None,
) -> TokenGrant:
    """Trade a one-time code and its PKCE verifier for the first tokens of a new family."""
    current = time.time() if now is None else now
    if not _opaque(code):
        raise InvalidGrant
    digest = token_hash(code)
    # GETDEL: of any number of callers, exactly one receives the code; a wrong verifier
    # burns it too, so nobody gets a second guess.
    raw = await store.getdel(CODE_PREFIX + digest)
    if raw is None:
        used = await store.get(CODE_USED_PREFIX + digest)
        if used is not None:
            # A replayed code revokes what it issued (RFC 6749 4.1.2).
            first = json.loads(used)
            if await revoke_family(store, first["family_id"]):
                raise CredentialReuse(
                    "authorization_code.reuse", first["family_id"], UUID(first["user_id"])
                )
        raise InvalidGrant
    record = json.loads(raw)
    if (
        record["expires_at"] <= current
        or record["client_id"] != client_id
        or record["redirect_uri"] != redirect_uri
        or not _pkce_matches(code_verifier, record["code_challenge"])
    ):
        raise InvalidGrant
    if await _signed_out_since(store, record):
        raise InvalidGrant  # issued before the person signed out everywhere
    user = await _live_user(record["user_id"])
    if user is None:
        raise InvalidGrant
    grant = await _start_family(store, settings, user.id, client_id, current)
    if await _signed_out_since(store, record):
        # Signed out everywhere while this family was starting: it must not outlive that.
        await revoke_family(store, grant.family_id)
        raise InvalidGrant
    if client is not None:
        method = APP_METHOD_PREFIX + str(record.get("method", "app"))
        await record_app_sign_in(user.id, grant.family_id, client, REFRESH_FAMILY_TTL, method)
    marker = json.dumps({"family_id": grant.family_id, "user_id": str(user.id)})
    await store.set(CODE_USED_PREFIX + digest, marker, ex=CODE_REPLAY_MEMORY)
    return grant


async def _start_family(
    store: Redis, settings: config.Settings, user_id: UUID, client_id: str, now: float
) -> TokenGrant:
    family_id = uuid.uuid4().hex
    refresh_token = secrets.token_urlsafe(32)
    owner = {"user_id": str(user_id), "client_id": client_id}
    families = USER_FAMILIES_PREFIX + str(user_id)
    async with store.pipeline(transaction=True) as pipe:
        pipe.set(
            FAMILY_PREFIX + family_id,
            json.dumps({**owner, "created_at": int(now)}),
            ex=REFRESH_FAMILY_TTL,
        )
        pipe.set(
            REFRESH_PREFIX + token_hash(refresh_token),
            json.dumps({**owner, "family_id": family_id}),
            ex=REFRESH_FAMILY_TTL,
        )
        pipe.sadd(families, family_id)
        pipe.expire(families, REFRESH_FAMILY_TTL)
        await pipe.execute()
    access_token = issue_access_token(settings, user_id, family_id, client_id, now=now)
    return TokenGrant(access_token, refresh_token, family_id)


async def refresh(
    store: Redis,
    settings: config.Settings,
    refresh_token: str,
    *,
    client_id: str | None = None,
    received_at: float | None = None,
) -> TokenGrant:
    """Rotate a refresh token: it becomes used and exactly one child takes its place.

    `received_at` is when the request reached the server (default: now). It tells a
    request that raced the rotation apart from a replay that came after it.
    """
    arrived = time.time() if received_at is None else received_at
    if not _opaque(refresh_token):
        raise InvalidGrant
    digest = token_hash(refresh_token)
    raw = await store.get(REFRESH_PREFIX + digest)
    if raw is None:
        raise InvalidGrant
    record = json.loads(raw)
    family_id: str = record["family_id"]
    if client_id is not None and client_id != record["client_id"]:
        raise InvalidGrant
    claim_key = REFRESH_CLAIM_PREFIX + digest
    # Claim and look in one atomic step: SET NX lets exactly one caller ever claim this
    # token (so one child, never two), and every other caller sees the winner's claim.
    async with store.pipeline(transaction=True) as pipe:
        pipe.set(claim_key, json.dumps({"at": arrived}), nx=True, ex=REFRESH_FAMILY_TTL)
        pipe.get(claim_key)
        pipe.exists(FAMILY_PREFIX + family_id)
        won, seen, alive = await pipe.execute()
    if not alive:
        raise InvalidGrant
    if not won:
        await _lost_claim(store, json.loads(seen), arrived, family_id, UUID(record["user_id"]))
    remaining = await store.ttl(FAMILY_PREFIX + family_id)
    user = await _live_user(record["user_id"])
    if user is None or remaining <= 0:
        await revoke_family(store, family_id)
        raise InvalidGrant
    child = secrets.token_urlsafe(32)
    await store.set(REFRESH_PREFIX + token_hash(child), raw, ex=remaining)
    access_token = issue_access_token(
        settings, user.id, family_id, record["client_id"], now=arrived
    )
    finished = json.dumps({"at": arrived, "done_at": time.time()})
    await store.set(claim_key, finished, xx=True, keepttl=True)
    return TokenGrant(access_token, child, family_id)


async def _lost_claim(
    store: Redis, claim: dict[str, Any], arrived: float, family_id: str, user_id: UUID
) -> NoReturn:
    """Refuse a token someone else rotated: a parallel request, or a replay."""
    done_at = claim.get("done_at")
    if done_at is None:
        # The winner is still at work, unless it died long ago mid-rotation.
        parallel = arrived - claim["at"] < ROTATION_IN_FLIGHT_SECONDS
    else:
        parallel = arrived <= done_at
    if parallel:
        # The race loser: this request reached the server before the winner's rotation was
        # done, so its sender cannot have seen the child; it is the same app refreshing
        # twice at once. It is refused and issues nothing; the family and the winner's
        # child stay valid. A request that arrives after the rotation is a replay (below).
        raise InvalidGrant
    if await revoke_family(store, family_id):
        raise CredentialReuse("refresh_token.reuse", family_id, user_id)
    raise InvalidGrant


async def revoke_family(store: Redis, family_id: str) -> bool:
    """End one sign-in of the app at once: its refresh and access tokens stop working."""
    raw = await store.getdel(FAMILY_PREFIX + family_id)
    await end_app_sign_ins([family_id])
    if raw is None:
        return False
    await store.srem(USER_FAMILIES_PREFIX + json.loads(raw)["user_id"], family_id)
    return True


async def sign_out_app(
    store: Redis, settings: config.Settings, *, access_token: str | None, refresh_token: str | None
) -> bool:
    """The app signs out: the family of its access or refresh token ends at once.

    Answers whether a live family was ended; an unknown or invalid token ends nothing.
    """
    families: set[str] = set()
    if access_token:
        with contextlib.suppress(InvalidAccessToken):
            families.add(verify_access_token(settings, access_token, expired_ok=True).family_id)
    if refresh_token and _opaque(refresh_token):
        raw = await store.get(REFRESH_PREFIX + token_hash(refresh_token))
        if raw is not None:
            families.add(json.loads(raw)["family_id"])
    ended = [await revoke_family(store, family_id) for family_id in sorted(families)]
    return any(ended)


async def revoke_all_for_user(store: Redis, user_id: UUID | str) -> int:
    """End every sign-in of the app for one person (sign out everywhere, account disable),
    and void the codes already issued to them that no family came of yet."""
    await store.set(NOT_BEFORE_PREFIX + str(user_id), repr(time.time()), ex=CODE_TTL * 2)
    families = USER_FAMILIES_PREFIX + str(user_id)
    members = await store.smembers(families)
    family_ids = sorted(member for member in members if isinstance(member, str))
    if not family_ids:
        return 0
    async with store.pipeline(transaction=True) as pipe:
        for family_id in family_ids:
            pipe.delete(FAMILY_PREFIX + family_id)
        # SREM, not DEL: a family started meanwhile stays listed for the next revocation.
        pipe.srem(families, *family_ids)
        results = await pipe.execute()
    await end_app_sign_ins(family_ids)
    return sum(results[:-1])


async def account_of(store: Redis, params: Mapping[str, str]) -> str | None:
    """Whose live code or refresh token a token request presents (for its rate limit), if
    any; reading it consumes nothing. A used or revoked token counts for nobody, so an old
    token cannot be spent to lock its owner's devices out."""
    grant_type = params.get("grant_type")
    if grant_type == "authorization_code":
        raw = await store.get(CODE_PREFIX + token_hash(params.get("code") or ""))
        return str(json.loads(raw)["user_id"]) if raw is not None else None
    if grant_type != "refresh_token":
        return None
    digest = token_hash(params.get("refresh_token") or "")
    raw = await store.get(REFRESH_PREFIX + digest)
    if raw is None:
        return None
    record = json.loads(raw)
    async with store.pipeline(transaction=False) as pipe:
        pipe.exists(REFRESH_CLAIM_PREFIX + digest)
        pipe.exists(FAMILY_PREFIX + record["family_id"])
        used, alive = await pipe.execute()
    return str(record["user_id"]) if alive and not used else None


async def token_request(
    store: Redis,
    settings: config.Settings,
    params: Mapping[str, str],
    *,
    client: ClientInfo | None = None,
    received_at: float | None = None,
) -> TokenGrant:
    """The token endpoint: the authorization_code and refresh_token grants (RFC 6749).

    `client` describes the device, for the sign-in record of a new app sign-in (P04).
    """
    grant_type = params.get("grant_type")
    if grant_type == "authorization_code":
        names = ("code", "code_verifier", "redirect_uri", "client_id")
        values = [params.get(name) or "" for name in names]
        if not all(values):
            raise InvalidRequest
        code, code_verifier, redirect_uri, client_id = values
        return await exchange_code(
            store,
            settings,
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
            client_id=client_id,
            client=client,
        )
    if grant_type == "refresh_token":
        token = params.get("refresh_token")
        if not token:
            raise InvalidRequest
        return await refresh(
            store,
            settings,
            token,
            client_id=params.get("client_id") or None,
            received_at=received_at,
        )
    if not grant_type:
        raise InvalidRequest
    raise UnsupportedGrantType
