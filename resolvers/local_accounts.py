"""Local accounts (after NIST SP 800-63B and OWASP's authentication cheat sheets): registration
that answers the same whether or not the address is taken, email verification, password reset,
and changing one's password or email.

Every answer that could tell whether an address has an account is the same either way, and
costs the same: both paths hash the password and write one notice. Links go by mail only; the
database keeps their hashes (auth/account_tokens.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID

from redis.asyncio import Redis
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from auth import account_tokens
from auth.passwords import MAX_LENGTH, hash_password, password_problem, verify_password
from auth.principal import Principal
from models import SIGN_IN_STATUSES, AccountTokenPurpose, Role, User, crypto
from privacy import audit, notices
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.accounts import Ended, _end_everything
from resolvers.errors import AgeRequirementNotMet, InvalidInput, InvalidLink
from resolvers.users import require_user

# Where the web frontend takes a mailed link (the token rides in the fragment, which no server
# log or Referer header sees) and redeems it with the matching mutation.
VERIFY_EMAIL_PATH = "/account/verify-email"
RESET_PASSWORD_PATH = "/account/reset-password"  # noqa: S105 (a path, not a secret)
CONFIRM_EMAIL_PATH = "/account/confirm-email"

_REGISTERED_FIELDS = [
    "User.name",
    "User.email",
    "User.phone",
    "User.username",
    "User.dateOfBirth",
    "User.password",
]
_INVALID_LINK = "This link is not valid: it may have expired or been used already."


def link(public_url: str, path: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{path}#token={token}"


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    email: str
    password: str
    date_of_birth: date
    phone: str | None = None
    username: str | None = None
    locale: str | None = None
    time_zone: str | None = None


def _new_password(password: str, *personal: str | None, field: str = "password") -> None:
    problem = password_problem(password, personal=personal)
    if problem:
        raise InvalidInput(problem, field=field)


async def register(
    principal: Principal, form: Registration, *, public_url: str, today: date | None = None
) -> None:
    """Ask for a customer account; the answer never says whether the address has one.

    A free address gets an unverified account and a verification link. A taken one gets a mail
    telling its owner, and nothing changes. An address whose account was never verified is
    registered again: that account could never be used, and whoever follows the newest link
    proves the address is theirs. A taken username opens nothing and says so by mail to the
    address given (so only its holder learns it). Anyone under 16 is refused and nothing about
    them is kept.
    """
    today = today or datetime.now(UTC).date()
    birth = validation.date_of_birth(form.date_of_birth, today)
    if not validation.old_enough(birth, today):
        raise AgeRequirementNotMet(
            f"OCIS is not for anyone under {validation.MINIMUM_AGE}.", field="dateOfBirth"
        )
    name = validation.text(form.name, "name", max_length=200)
    email = validation.email(form.email)
    username = validation.username(form.username)
    _new_password(form.password, email, username)
    phone = validation.phone(form.phone)
    locale = validation.locale(form.locale) or "en"
    time_zone = validation.time_zone(form.time_zone) or "UTC"
    # Hashed on every path: argon2 is what a timing comparison would see.
    password_hash = await hash_password(form.password)
    holder = await User.get_or_none(email_index=crypto.blind_index(email))
    if holder is not None and holder.email_verified_at is not None:
        await notices.notify(holder.id, "account.registration_attempt")
        return
    if username:
        owner = await User.get_or_none(username_index=crypto.blind_index(username)).only("id")
        if owner is not None and (holder is None or owner.id != holder.id):
            await notices.notify_address(email, "account.username_taken")
            return
    user = holder or User(roles=[Role.CUSTOMER.value], source="self")
    user.name = name
    user.phone = phone
    user.date_of_birth = birth.isoformat()
    user.password_hash = password_hash
    user.locale = locale
    user.time_zone = time_zone
    user.set_email(email)
    user.set_username(username)
    try:
        async with in_transaction():
            await user.save()
            await audit.record(
                principal,
                action=AuditAction.ACCOUNT_CREATE
                if holder is None
                else AuditAction.ACCOUNT_REGISTRATION_RENEW,
                entity="User",
                entity_id=user.id,
                subject_id=user.id,
                field_names=_REGISTERED_FIELDS,
            )
            token = await account_tokens.issue(user.id, AccountTokenPurpose.VERIFY_EMAIL)
            await notices.notify(
                user.id, "account.verify", link=link(public_url, VERIFY_EMAIL_PATH, token)
            )
    except IntegrityError:
        # The same address or username registered at this very moment: that one stands, and
        # this caller gets the same answer as any other.
        return


async def verify_email(principal: Principal, token: str) -> UUID:
    """Follow a verification link: the account's address is verified and it may sign in."""
    async with in_transaction():
        used = await account_tokens.redeem(token, AccountTokenPurpose.VERIFY_EMAIL)
        if used is None:
            raise InvalidLink(_INVALID_LINK, field="token")
        changed = await User.filter(id=used.user_id, email_verified_at__isnull=True).update(
            email_verified_at=datetime.now(UTC)
        )
        if changed:
            await audit.record(
                principal,
                action=AuditAction.EMAIL_VERIFY,
                entity="User",
                entity_id=used.user_id,
                subject_id=used.user_id,
                field_names=["User.emailVerifiedAt"],
            )
    return used.user_id


# A reset request answers no sooner than this after it began, whichever path it took: the
# path that writes a link and a notice would otherwise be some milliseconds slower than the
# one that writes nothing, telling which addresses have an account.
RESET_ANSWER_FLOOR_SECONDS = 0.25


async def request_password_reset(email: str, *, public_url: str) -> None:
    """Mail a reset link to a verified address that finds an account; the same answer, in
    the same time, for any other address (unknown, unverified, an account that may not sign
    in)."""
    address = validation.email(email)
    started = time.monotonic()
    try:
        await _mail_reset_link(address, public_url)
    finally:
        await asyncio.sleep(max(0.0, RESET_ANSWER_FLOOR_SECONDS - (time.monotonic() - started)))


async def _mail_reset_link(address: str, public_url: str) -> None:
    holder = await User.get_or_none(email_index=crypto.blind_index(address)).only(
        "id", "email_verified_at", "status"
    )
    if holder is None or holder.email_verified_at is None or holder.status not in SIGN_IN_STATUSES:
        return
    async with in_transaction():
        token = await account_tokens.issue(holder.id, AccountTokenPurpose.RESET_PASSWORD)
        await notices.notify(
            holder.id,
            "account.password_reset",
            link=link(public_url, RESET_PASSWORD_PATH, token),
        )


async def _set_password(
    principal: Principal, user: User, password_hash: str, action: AuditAction, ended: str
) -> None:
    user.password_hash = password_hash
    await user.save(update_fields=["password_hash", "updated_at"])
    await account_tokens.void(user.id, AccountTokenPurpose.RESET_PASSWORD)
    await audit.record(
        principal,
        action=action,
        entity="User",
        entity_id=user.id,
        subject_id=user.id,
        field_names=["User.password"],
    )
    await notices.notify(user.id, "account.password_changed", ended=ended)


async def reset_password(
    principal: Principal, store: Redis, token: str, new_password: str
) -> Ended:
    """Follow a reset link: set a new password and end every session and app sign-in."""
    pending = await account_tokens.peek(token, AccountTokenPurpose.RESET_PASSWORD)
    if pending is None:
        raise InvalidLink(_INVALID_LINK, field="token")
    user = await User.get(id=pending.user_id)
    _new_password(new_password, user.email, user.username, field="newPassword")
    password_hash = await hash_password(new_password)
    async with in_transaction():
        used = await account_tokens.redeem(token, AccountTokenPurpose.RESET_PASSWORD)
        if used is None:  # used by a concurrent request meanwhile
            raise InvalidLink(_INVALID_LINK, field="token")
        user = await User.select_for_update().get(id=used.user_id)
        if user.status not in SIGN_IN_STATUSES:
            raise InvalidLink(_INVALID_LINK, field="token")
        await _set_password(
            principal,
            user,
            password_hash,
            AuditAction.PASSWORD_RESET,
            "every sign-in of it was ended",
        )
    return await _end_everything(store, user.id)


async def _check_current_password(user: User, password: str, field: str) -> None:
    if not await verify_password(user.password_hash, password[:MAX_LENGTH]):
        raise InvalidInput("The current password is not right.", field=field)


async def change_password(
    principal: Principal, store: Redis, current_password: str, new_password: str
) -> Ended:
    """Change one's password (the current one is needed); every other sign-in ends."""
    user_id = require_user(principal)
    user = await User.get(id=user_id)
    await _check_current_password(user, current_password, "currentPassword")
    _new_password(new_password, user.email, user.username, field="newPassword")
    password_hash = await hash_password(new_password)
    async with in_transaction():
        user = await User.select_for_update().get(id=user_id)
        await _set_password(
            principal,
            user,
            password_hash,
            AuditAction.PASSWORD_CHANGE,
            "every other sign-in of it was ended",
        )
    # The caller's own web session stays; an app caller has none to keep.
    return await _end_everything(store, user_id, keep=principal.session_id)


async def change_email(
    principal: Principal, new_email: str, password: str, *, public_url: str
) -> None:
    """Ask for a new address (the password is needed): it takes effect once confirmed from
    there, and the current address is told. A taken address: the same answer, no change."""
    user_id = require_user(principal)
    address = validation.email(new_email, field="newEmail")
    user = await User.get(id=user_id)
    await _check_current_password(user, password, "password")
    if crypto.blind_index(address) == user.email_index:
        raise InvalidInput("This is already your email address.", field="newEmail")
    taken = await User.exists(email_index=crypto.blind_index(address))
    async with in_transaction():
        if taken:
            await notices.notify_address(address, "account.email_change_attempt")
        else:
            token = await account_tokens.issue(
                user_id, AccountTokenPurpose.CHANGE_EMAIL, new_email=address
            )
            await notices.notify_address(
                address,
                "account.email_change_confirm",
                link=link(public_url, CONFIRM_EMAIL_PATH, token),
            )
        await notices.notify(user_id, "account.email_change_requested")


async def confirm_email_change(principal: Principal, token: str) -> UUID:
    """Follow the link mailed to a new address: it becomes the account's, verified; the old
    address is told."""
    try:
        async with in_transaction():
            used = await account_tokens.redeem(token, AccountTokenPurpose.CHANGE_EMAIL)
            if used is None or not used.new_email:
                raise InvalidLink(_INVALID_LINK, field="token")
            user = await User.select_for_update().get(id=used.user_id)
            old = user.email if user.email_index is not None else None
            user.set_email(used.new_email)
            user.email_verified_at = datetime.now(UTC)
            await user.save(
                update_fields=["email", "email_index", "email_verified_at", "updated_at"]
            )
            await account_tokens.void(user.id, AccountTokenPurpose.CHANGE_EMAIL)
            await audit.record(
                principal,
                action=AuditAction.EMAIL_CHANGE,
                entity="User",
                entity_id=user.id,
                subject_id=user.id,
                field_names=["User.email"],
            )
            if old:
                await notices.notify_address(old, "account.email_changed")
    except IntegrityError:  # the address was taken meanwhile; the link stays unused
        raise InvalidLink(_INVALID_LINK, field="token") from None
    return user.id
