"""The OpenID Connect relying party: providers, the code flow, and ID-token checks.

Authlib builds the authorization request (state, nonce, PKCE S256) and exchanges the
code; the transaction lives server-side in the shared store, bound to an opaque HttpOnly
cookie. ID tokens are checked here with explicit claim options: Authlib does not pin
``aud`` by itself, and Microsoft's multi-tenant issuer must be resolved against ``tid``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from joserfc import jwt
from joserfc.errors import JoseError as JoseRfcError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from redis.asyncio import Redis

from auth.redirects import Intent

with warnings.catch_warnings():
    # Authlib 1.9 announces moving its httpx client to "httpx2"; nothing to act on yet.
    # Its deprecate module forces its warnings on at import, so silence them after that.
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
    from authlib.integrations.starlette_client import OAuth

Kind = Literal["google", "microsoft", "linkedin", "generic"]

ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "crit"})
MAX_ID_TOKEN_BYTES = 16 * 1024
LEEWAY_SECONDS = 60
TRANSACTION_TTL = 600
JWKS_TTL = 3600
JWKS_REFRESH_INTERVAL = 60
PREFIX = "ocis:oidc:"


class SignInRefused(Exception):
    """The provider's answer cannot be trusted; the reason is for logs, never for users."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    kind: Kind
    issuer: str
    client_id: str
    client_secret: str
    tenants: frozenset[str] = frozenset()

    @property
    def uses_pkce(self) -> bool:
        # LinkedIn's OpenID Connect product documents no PKCE for web apps.
        return self.kind != "linkedin"

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def provider_kind(name: str) -> Kind:
    match name:
        case "google" | "microsoft" | "linkedin":
            return name
    return "generic"


def configured_providers(oidc: Mapping[str, Mapping[str, str]]) -> dict[str, Provider]:
    """Providers from OIDC_<NAME>_* settings; one without a client id is skipped."""
    providers = {}
    for name, values in oidc.items():
        if not values.get("issuer") or not values.get("client_id"):
            continue
        providers[name] = Provider(
            name=name,
            kind=provider_kind(name),
            issuer=values["issuer"].rstrip("/"),
            client_id=values["client_id"],
            client_secret=values.get("client_secret", ""),
            tenants=frozenset(
                tenant.strip() for tenant in values.get("tenants", "").split(",") if tenant.strip()
            ),
        )
    return providers


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """What a verified ID token says about the person, and whether its email is vouched for."""

    provider: str
    issuer: str
    subject: str
    tenant_id: str
    email: str | None
    email_trusted: bool
    name: str | None
    birthdate: str | None
    claims: dict[str, Any] = field(repr=False)


def email_is_vouched(kind: Kind, claims: Mapping[str, Any]) -> bool:
    """Only a provider's explicit word counts; Microsoft's only through xms_edov."""
    if not claims.get("email"):
        return False
    if kind == "microsoft":
        return claims.get("xms_edov") is True
    return claims.get("email_verified") is True


def _header(raw: str) -> dict[str, Any]:
    try:
        segment = raw.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError) as exc:
        raise SignInRefused("ID token header is not JSON") from exc
    if not isinstance(header, dict):
        raise SignInRefused("ID token header is not an object")
    return header


def expected_issuers(
    provider: Provider, metadata_issuer: str, claims: Mapping[str, Any]
) -> list[str]:
    """The issuer values this token may carry."""
    if provider.kind == "microsoft":
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or not tenant or "{" in tenant:
            raise SignInRefused("Microsoft token without a tenant id")
        if provider.tenants and tenant not in provider.tenants:
            raise SignInRefused("tenant outside the allow-list")
        if "{tenantid}" in metadata_issuer:
            return [metadata_issuer.replace("{tenantid}", tenant)]
        if f"/{tenant}/" not in metadata_issuer + "/":
            raise SignInRefused("token tenant differs from the configured tenant")
        return [metadata_issuer]
    if provider.kind == "google":
        # Google's ID tokens carry either spelling; the first is the canonical one.
        bare = metadata_issuer.split("://", 1)[-1]
        return list(dict.fromkeys([metadata_issuer, bare, f"https://{bare}"]))
    return [metadata_issuer]


def verify_id_token(
    raw: str,
    *,
    provider: Provider,
    metadata: Mapping[str, Any],
    jwks: Mapping[str, Any],
    nonce: str,
    now: int | None = None,
) -> dict[str, Any]:
    """Signature, algorithm, headers, iss, aud, azp, exp/iat with a small leeway, and nonce."""
    if len(raw) > MAX_ID_TOKEN_BYTES:
        raise SignInRefused("ID token too large")
    header = _header(raw)
    if FORBIDDEN_HEADERS.intersection(header):
        raise SignInRefused("ID token header names its own keys or critical extensions")
    algorithm = header.get("alg")
    supported = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    if algorithm not in ASYMMETRIC_ALGORITHMS or algorithm not in supported:
        raise SignInRefused("ID token algorithm not allowed")
    kid = header.get("kid")
    keys = [key for key in jwks.get("keys", []) if isinstance(key, dict)]
    if kid is None and len(keys) != 1:
        raise SignInRefused("ID token without a key id")
    if kid is not None and not any(key.get("kid") == kid for key in keys):
        raise UnknownSigningKey(str(kid))
    try:
        decoded = jwt.decode(
            raw,
            key=KeySet.import_key_set({"keys": keys}),
            algorithms=[algorithm],
            registry=JWSRegistry(algorithms=[algorithm]),
        )
    except (JoseRfcError, ValueError) as exc:
        raise SignInRefused(f"ID token signature rejected: {type(exc).__name__}") from exc
    claims = dict(decoded.claims)
    issuers = expected_issuers(provider, str(metadata.get("issuer", "")), claims)
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "values": issuers},
        sub={"essential": True},
        aud={"essential": True, "value": provider.client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseRfcError as exc:
        raise SignInRefused(f"ID token claim rejected: {exc.error}") from exc
    # OIDC Core 3.1.3.7: with several audiences azp must be present; when present, it is us.
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 and azp is None) or (azp is not None and azp != provider.client_id):
        raise SignInRefused("ID token authorized party is not this client")
    if provider.kind == "microsoft" and str(claims["iss"]).startswith("https://sts.windows.net/"):
        raise SignInRefused("Microsoft v1 issuer")
    return claims


class UnknownSigningKey(SignInRefused):
    """The token names a key the cached key set lacks; the set may have rotated."""


@dataclass(slots=True)
class Transaction:
    provider: str
    state: str
    nonce: str
    code_verifier: str | None
    redirect_uri: str
    binding: str
    intent: Intent


class Gateway:
    """The code flow for every configured provider, its state kept in the shared store."""

    def __init__(self, providers: Mapping[str, Provider], store: Redis) -> None:
        self.providers = dict(providers)
        self.store = store
        self.oauth = OAuth()
        for provider in self.providers.values():
            kwargs: dict[str, Any] = {"scope": "openid email profile"}
            if provider.uses_pkce:
                kwargs["code_challenge_method"] = "S256"
            if provider.kind == "linkedin":
                # LinkedIn takes the client secret in the token request body only.
                kwargs["token_endpoint_auth_method"] = "client_secret_post"  # noqa: S105
            self.oauth.register(
                provider.name,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                server_metadata_url=provider.discovery_url,
                client_kwargs=kwargs,
            )

    def provider(self, name: str) -> Provider | None:
        return self.providers.get(name)

    async def begin(
        self, provider: Provider, *, redirect_uri: str, intent: Intent
    ) -> tuple[str, str]:
        """The authorization URL and the browser-binding secret for its cookie."""
        client = self.oauth.create_client(provider.name)
        nonce = secrets.token_urlsafe(24)
        binding = secrets.token_urlsafe(32)
        authorization = await client.create_authorization_url(redirect_uri, nonce=nonce)
        record = {
            "provider": provider.name,
            "nonce": nonce,
            "code_verifier": authorization.get("code_verifier"),
            "redirect_uri": redirect_uri,
            "binding": _digest(binding),
            "intent": dict(intent),
        }
        await self.store.set(
            PREFIX + "state:" + _digest(authorization["state"]),
            json.dumps(record),
            ex=TRANSACTION_TTL,
        )
        return str(authorization["url"]), binding

    async def take_transaction(self, state: str | None, binding: str | None) -> Transaction:
        """The one transaction this callback may complete; it can be used only once."""
        if not state or not binding or len(state) > 512:
            raise SignInRefused("callback without state or browser binding")
        raw = await self.store.getdel(PREFIX + "state:" + _digest(state))
        if raw is None:
            raise SignInRefused("unknown, expired or replayed state")
        record = json.loads(raw)
        if not secrets.compare_digest(record["binding"], _digest(binding)):
            raise SignInRefused("state belongs to another browser")
        return Transaction(
            provider=record["provider"],
            state=state,
            nonce=record["nonce"],
            code_verifier=record["code_verifier"],
            redirect_uri=record["redirect_uri"],
            binding=binding,
            intent=record["intent"],
        )

    async def complete(
        self, provider: Provider, transaction: Transaction, code: str
    ) -> VerifiedIdentity:
        """Exchange the code and verify the ID token; any doubt refuses the sign-in."""
        if transaction.provider != provider.name:
            raise SignInRefused("state issued for another provider")
        client = self.oauth.create_client(provider.name)
        metadata = await client.load_server_metadata()
        exchange: dict[str, Any] = {"code": code, "redirect_uri": transaction.redirect_uri}
        if transaction.code_verifier:
            exchange["code_verifier"] = transaction.code_verifier
        try:
            token = await client.fetch_access_token(**exchange)
        except Exception as exc:
            raise SignInRefused(f"code exchange failed: {type(exc).__name__}") from exc
        raw = token.get("id_token")
        if not isinstance(raw, str):
            raise SignInRefused("no ID token in the token response")
        check = {"provider": provider, "metadata": metadata, "nonce": transaction.nonce}
        try:
            claims = verify_id_token(raw, jwks=await self._jwks(provider, metadata), **check)
        except UnknownSigningKey:
            # The provider may have rotated its keys: refetch, at most once a minute.
            jwks = await self._jwks(provider, metadata, refresh=True)
            claims = verify_id_token(raw, jwks=jwks, **check)
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        name = claims.get("name") if isinstance(claims.get("name"), str) else None
        birthdate = claims.get("birthdate") if isinstance(claims.get("birthdate"), str) else None
        # The key of the identity is the canonical issuer, whichever accepted spelling the
        # token used (Google's with and without https://).
        (issuer, *_) = expected_issuers(provider, str(metadata.get("issuer", "")), claims)
        return VerifiedIdentity(
            provider=provider.name,
            issuer=issuer,
            subject=str(claims["sub"]),
            tenant_id=str(claims.get("tid") or "") if provider.kind == "microsoft" else "",
            email=email,
            email_trusted=email_is_vouched(provider.kind, claims),
            name=name,
            birthdate=birthdate,
            claims=claims,
        )

    async def _jwks(
        self, provider: Provider, metadata: Mapping[str, Any], refresh: bool = False
    ) -> dict[str, Any]:
        """The provider's keys, cached for all processes; a forced refresh at most once a minute."""
        key = PREFIX + "jwks:" + provider.name
        if not refresh:
            cached = await self.store.get(key)
            if cached is not None:
                loaded: dict[str, Any] = json.loads(cached)
                return loaded
        elif not await self.store.set(key + ":refreshed", "1", nx=True, ex=JWKS_REFRESH_INTERVAL):
            # Fetched within the interval, perhaps by another process just now: use its copy.
            cached = await self.store.get(key)
            if cached is None:
                raise SignInRefused("unknown signing key and the key set was fetched recently")
            shared: dict[str, Any] = json.loads(cached)
            return shared
        client = self.oauth.create_client(provider.name)
        async with client._get_session() as http:
            response = await http.request("GET", metadata["jwks_uri"], withhold_token=True)
            response.raise_for_status()
            jwks: dict[str, Any] = response.json()
        await self.store.set(key, json.dumps(jwks), ex=JWKS_TTL)
        return jwks
