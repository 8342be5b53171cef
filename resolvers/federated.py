"""Federated sign-in use cases: external identities mapped to local accounts.

Identities are keyed by (issuer, subject, tenant), never by email. A provider's word on an
email that belongs to an existing account only *suggests* linking: the link is made once
the person proves control of that account (the signed-in session that started the flow,
or a password sign-in that presents the pending-link token).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from uuid import UUID

from redis.asyncio import Redis
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from auth import scoping
from auth.identities import (
    IdentityRecord,
    Mapped,
    MappingRefused,
    PendingLink,
    PendingSignUp,
    TooYoung,
    identity_record,
    parse_birthdate,
    remember,
)
from auth.oidc import VerifiedIdentity
from auth.principal import Principal
from auth.redirects import Intent
from models import SIGN_IN_STATUSES, ExternalIdentity, Role, User, crypto
from privacy import audit, notices
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.errors import InvalidInput, NotAllowed, NotFound
from resolvers.users import require_user


def _usable_email(claim: str | None) -> str | None:
    """A provider's email claim if it is an address we could write to, else none at all."""
    if not claim:
        return None
    try:
        return validation.email(claim)
    except InvalidInput:
        return None


def _display_name(claim: str) -> str:
    """A provider's name claim through the same checks as a typed name, else a neutral one."""
    try:
        return validation.text(claim[:200], "name", max_length=200)
    except InvalidInput:
        return "OCIS user"


def _label(provider: str) -> str:
    """How a notice names a provider: its configured name, never anything of the person."""
    known = {"google": "Google", "microsoft": "Microsoft", "linkedin": "LinkedIn"}
    return known.get(provider.lower(), provider[:50])


async def _audit(actor: Principal, action: AuditAction, user_id: UUID, provider: str) -> None:
    await audit.record(
        actor,
        action=action,
        entity="ExternalIdentity",
        entity_id=provider,
        subject_id=user_id,
        field_names=["LinkedIdentity.issuer", "LinkedIdentity.subject", "LinkedIdentity.email"],
    )


async def link(
    actor: Principal, user_id: UUID, record: IdentityRecord, *, tell_owner: bool = True
) -> ExternalIdentity:
    """Attach an identity to an account whose owner has proved control of it, and tell them."""
    try:
        return await _link(actor, user_id, record, tell_owner=tell_owner)
    except IntegrityError:  # the same identity mapped at the same moment elsewhere
        raise MappingRefused("this identity was just mapped by another sign-in") from None


async def _link(
    actor: Principal, user_id: UUID, record: IdentityRecord, *, tell_owner: bool
) -> ExternalIdentity:
    async with in_transaction():
        existing = await ExternalIdentity.get_or_none(
            issuer=record["issuer"], subject=record["subject"], tenant_id=record["tenant_id"]
        )
        if existing is not None:
            if existing.user_id != user_id:
                raise MappingRefused("this identity already signs in to another account")
            return existing
        identity = ExternalIdentity(
            user_id=user_id,
            issuer=record["issuer"],
            subject=record["subject"],
            tenant_id=record["tenant_id"],
            provider=record["provider"],
            email=record["email"],
            email_verified=bool(record["email_trusted"]),
        )
        await identity.save()
        await _audit(actor, AuditAction.IDENTITY_LINK, user_id, record["provider"])
        if tell_owner:
            await notices.notify(user_id, "identity.linked", provider=_label(record["provider"]))
    return identity


async def map_identity(
    store: Redis,
    identity: VerifiedIdentity,
    *,
    signed_in: Principal | None,
    linking: bool,
    request_id: str | None,
    binder: str,
    intent: Intent | None = None,
) -> Mapped:
    """Decide which account this identity reaches, creating or linking where it may."""
    actor = signed_in or Principal(request_id=request_id)
    email = _usable_email(identity.email)
    if email is None and identity.email:
        identity = replace(identity, email=None, email_trusted=False)
    elif email != identity.email:
        identity = replace(identity, email=email)
    existing = await ExternalIdentity.get_or_none(
        issuer=identity.issuer, subject=identity.subject, tenant_id=identity.tenant_id
    )
    if existing is not None:
        owner_id: UUID = existing.user_id
        if linking and signed_in is not None and signed_in.user_id != owner_id:
            raise MappingRefused("this identity already signs in to another account")
        user = await User.get_or_none(id=owner_id)
        if user is None or user.status not in SIGN_IN_STATUSES:
            raise MappingRefused("the account of this identity is disabled or gone")
        if existing.email != identity.email or existing.email_verified != identity.email_trusted:
            existing.email = identity.email
            existing.email_verified = identity.email_trusted
            await existing.save(update_fields=["email", "email_verified"])
        return Mapped("signed_in", user=user)
    record = identity_record(identity)
    if linking:
        if signed_in is None or signed_in.user_id is None:
            raise MappingRefused("linking needs the signed-in session that started it")
        await link(actor, signed_in.user_id, record)
        user = await User.get(id=signed_in.user_id)
        return Mapped("linked", user=user)
    holder = None
    if identity.email:
        holder = await User.get_or_none(email_index=crypto.blind_index(identity.email))
    # An address nobody proved is theirs suggests no link: it may be a squatter's
    # registration of someone else's address (the pre-account-takeover).
    if holder is not None and identity.email_trusted and holder.email_verified_at is not None:
        link_step: PendingLink = {
            "kind": "link",
            **record,
            "intent": intent or {},
            "user_id": str(holder.id),
        }
        token = await remember(store, link_step, binder)
        return Mapped("needs_password_to_link", pending=token)
    birth = parse_birthdate(identity.birthdate)
    if birth is None:
        signup_step: PendingSignUp = {"kind": "signup", **record, "intent": intent or {}}
        token = await remember(store, signup_step, binder)
        return Mapped("needs_birthdate", pending=token)
    user = await create_account(actor, record, birth)
    return Mapped("signed_in", user=user)


async def create_account(actor: Principal, record: IdentityRecord, birth: date) -> User:
    """A new customer account for a first federated sign-in (16 or over only, P29)."""
    today = datetime.now(UTC).date()
    validation.date_of_birth(birth, today)
    if not validation.old_enough(birth, today):
        raise TooYoung(f"OCIS is not for anyone under {validation.MINIMUM_AGE}")
    email = record["email"]
    # The email is indexed for lookups only when the provider vouches for it and no
    # account holds it; otherwise this is a separate account that email cannot reach.
    indexed = None
    if email and record["email_trusted"]:
        candidate = crypto.blind_index(email)
        if not await User.exists(email_index=candidate):
            indexed = candidate
    name = _display_name(record.get("name") or (email.split("@")[0] if email else ""))
    user = User(
        name=name,
        email=email or "",
        email_index=indexed,
        date_of_birth=birth.isoformat(),
        roles=[Role.CUSTOMER.value],
        source=f"provider:{record['provider']}",
        # The provider vouched for the address it indexes.
        email_verified_at=datetime.now(UTC) if indexed else None,
    )
    try:
        async with in_transaction():
            await user.save()
            await audit.record(
                actor,
                action=AuditAction.ACCOUNT_CREATE,
                entity="User",
                entity_id=user.id,
                subject_id=user.id,
                field_names=["User.name", "User.email", "User.dateOfBirth"],
            )
            # The first way in of a new account: nothing was added to an account that existed.
            await _link(actor, user.id, record, tell_owner=False)
    except IntegrityError:  # a concurrent first sign-in of the same identity or email won
        raise MappingRefused("this identity was just mapped by another sign-in") from None
    return user


async def complete_signup(pending: PendingSignUp, birth: date, request_id: str | None) -> User:
    """The second step of a first federated sign-in: the date of birth the provider lacked."""
    return await create_account(Principal(request_id=request_id), pending, birth)


async def link_after_proof(principal: Principal, pending: PendingLink | None) -> bool:
    """Link a pending identity to the account its holder just proved control of (a password
    sign-in, or a sign-in through a provider already linked to it)."""
    if pending is None or principal.user_id is None:
        return False
    if pending.get("user_id") != str(principal.user_id):
        return False
    if not await User.exists(id=principal.user_id, email_verified_at__isnull=False):
        return False
    await link(principal, principal.user_id, pending)
    return True


async def record_refusal(request_id: str | None, provider: str, reason: str) -> None:
    """Refused sign-ins are audited: which provider, why (a fixed phrase), never who."""
    async with in_transaction():
        await audit.record(
            Principal(request_id=request_id),
            action=AuditAction.SIGN_IN_REFUSED,
            entity="Provider",
            entity_id=provider,
            subject_id=None,
            purpose=reason[:100],
        )


async def load_identities(
    principal: Principal, user_ids: list[UUID]
) -> list[list[ExternalIdentity]]:
    """Batch: linked identities per account, for the account itself or an administrator."""
    grouped: dict[UUID, list[ExternalIdentity]] = {ident: [] for ident in user_ids}
    if user_ids:
        readable = scoping.readable_identities(principal)
        rows = await readable.filter(user_id__in=user_ids).order_by("linked_at")
        for row in rows:
            grouped[row.user_id].append(row)
    return [grouped[ident] for ident in user_ids]


async def unlink_identity(principal: Principal, identity_id: UUID) -> None:
    """Remove one of one's own identities, never the last way to sign in."""
    user_id = require_user(principal)
    async with in_transaction():
        identity = await ExternalIdentity.get_or_none(id=identity_id, user_id=user_id)
        if identity is None:
            raise NotFound("No such linked identity.", field="id")
        # Lock the account row: two unlinks at once must not both see "one other way in".
        user = await User.select_for_update().get(id=user_id)
        others = await ExternalIdentity.filter(user_id=user_id).exclude(id=identity_id).count()
        if others == 0 and not user.password_hash:
            raise NotAllowed("This is your only way to sign in; add another first.")
        await identity.delete()
        await _audit(principal, AuditAction.IDENTITY_UNLINK, user_id, identity.provider)
        await notices.notify(user_id, "identity.unlinked", provider=_label(identity.provider))
