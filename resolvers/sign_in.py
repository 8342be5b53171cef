"""Sign-in use cases behind the gateway's endpoints: linking after proof, provider callbacks,
the sign-up's missing date of birth, and the audit of a reused credential."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from auth import rate_limit, tokens
from auth.identities import Mapped, MappingRefused, new_binder, principal_of, take_pending
from auth.oidc import Gateway, Provider, SignInRefused
from auth.principal import ANONYMOUS
from auth.redirects import Intent
from auth.sessions import resolve_session
from models import User
from privacy import audit
from resolvers import federated, validation
from resolvers.errors import InvalidInput

logger = logging.getLogger("ocis")


class SignInFailed(Exception):
    """A provider sign-in was refused; the reason is logged and audited, never shown."""


class TooManyAttempts(Exception):
    """A rate limit refused the attempt."""

    def __init__(self, decision: rate_limit.Decision) -> None:
        super().__init__("rate limited")
        self.decision = decision


class SignupStepExpired(Exception):
    """The pending sign-up is gone, used, or bound to another browser."""


@dataclass(frozen=True, slots=True)
class ProviderSignIn:
    """Where a provider callback leads: a signed-in user, or a pending step for this browser."""

    mapped: Mapped
    binder: str
    intent: Intent = field(default_factory=lambda: Intent())


@dataclass(frozen=True, slots=True)
class CompletedSignup:
    user: User
    intent: Intent
    method: str


async def link_pending(
    store: Redis, link_token: str, binder: str | None, user: User, request_id: str | None
) -> bool:
    """Signing in to an account proves control of it: now the pending identity may link."""
    pending = await take_pending(store, link_token, "link", binder)
    try:
        return bool(pending) and await federated.link_after_proof(
            principal_of(user, request_id), pending
        )
    except MappingRefused:  # linked to another account meanwhile
        return False


async def sign_in_with_provider(
    store: Redis,
    gateway: Gateway,
    provider: Provider,
    *,
    error: str | None,
    state: str | None,
    code: str,
    login_binder: str | None,
    session_token: str | None,
    pending_binder: str | None,
    request_id: str,
) -> ProviderSignIn:
    """Verify the provider's answer, map the identity, and link a pending identity it proves."""
    try:
        if error:
            raise SignInRefused("the provider reported an error")
        transaction = await gateway.take_transaction(state, login_binder)
        identity = await gateway.complete(provider, transaction, code)
        per_identity = await rate_limit.callback_identity_attempt(
            store, identity=f"{identity.issuer}|{identity.tenant_id}|{identity.subject}"
        )
        if not per_identity.allowed:
            raise TooManyAttempts(per_identity)
        intent = transaction.intent
        signed_in = None
        if intent.get("link_user_id"):
            signed_in = await resolve_session(store, session_token, request_id)
            if str(signed_in.user_id) != intent["link_user_id"]:
                raise SignInRefused("linking session changed during the flow")
        binder = new_binder()
        mapped = await federated.map_identity(
            store,
            identity,
            signed_in=signed_in,
            linking=signed_in is not None,
            request_id=request_id,
            binder=binder,
            intent=intent,
        )
    except (SignInRefused, MappingRefused) as refusal:
        logger.warning(
            "sign-in with %s refused: %s (request %s)", provider.name, refusal, request_id
        )
        await federated.record_refusal(request_id, provider.name, str(refusal))
        raise SignInFailed from None
    if mapped.user is not None and intent.get("link_token"):
        await link_pending(store, intent["link_token"], pending_binder, mapped.user, request_id)
    return ProviderSignIn(mapped, binder, intent)


def signup_date_of_birth(raw: object, today: date | None = None) -> date:
    """The date of birth a provider did not give, as YYYY-MM-DD, checked before any step."""
    try:
        birth = date.fromisoformat(str(raw))
    except ValueError:
        birth = None
    if birth is None or len(str(raw)) != 10:
        raise InvalidInput("dateOfBirth must be YYYY-MM-DD.", "dateOfBirth")
    return validation.date_of_birth(birth, today or datetime.now(UTC).date())


async def complete_signup(
    store: Redis, pending_token: object, binder: str | None, birth: date, request_id: str
) -> CompletedSignup:
    """Create the account of a pending provider sign-up (16 or over only)."""
    pending = await take_pending(
        store, pending_token if isinstance(pending_token, str) else None, "signup", binder
    )
    if pending is None:
        raise SignupStepExpired
    user = await federated.complete_signup(pending, birth, request_id)
    return CompletedSignup(user, pending.get("intent") or {}, f"oidc:{pending['provider']}")


async def record_credential_reuse(reuse: tokens.CredentialReuse, request_id: str) -> None:
    """A used code or refresh token came back and its family was revoked: log and audit it."""
    logger.warning("%s: family revoked (request %s)", reuse.action, request_id)
    async with in_transaction():
        await audit.record(
            ANONYMOUS.with_request_id(request_id),
            action=reuse.action,
            entity="RefreshTokenFamily",
            entity_id=reuse.family_id,
            subject_id=reuse.user_id,
        )
