"""Accounts: registration, profile changes, reading people the caller may reach."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID

from tortoise.transactions import in_transaction

from auth import scoping
from auth.passwords import hash_password, password_problem
from auth.policy import may_filter
from auth.principal import Principal
from auth.scopes import Scope
from models import Role, User, UserStatus, crypto
from privacy import audit
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.errors import AgeRequirementNotMet, InvalidInput, NotAllowed, NotAuthenticated
from resolvers.pagination import Page, paginate


def require_user(principal: Principal) -> UUID:
    if principal.user_id is None:
        raise NotAuthenticated("Sign in first.")
    return principal.user_id


# The audit trail's names for the profile columns (see privacy.audit_actions).
_PROFILE_FIELDS = {
    "name": "User.name",
    "phone": "User.phone",
    "locale": "User.locale",
    "time_zone": "User.timeZone",
}


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


async def register(principal: Principal, form: Registration, today: date | None = None) -> User:
    """Open a customer account; anyone under 16 is refused and nothing about them is kept."""
    today = today or datetime.now(UTC).date()
    birth = validation.date_of_birth(form.date_of_birth, today)
    if not validation.old_enough(birth, today):
        raise AgeRequirementNotMet(
            f"OCIS is not for anyone under {validation.MINIMUM_AGE}.", field="dateOfBirth"
        )
    name = validation.text(form.name, "name", max_length=200)
    email = validation.email(form.email)
    problem = password_problem(form.password)
    if problem:
        raise InvalidInput(problem, field="password")
    phone = validation.phone(form.phone)
    username = validation.username(form.username)
    locale = validation.locale(form.locale) or "en"
    time_zone = validation.time_zone(form.time_zone) or "UTC"
    if await User.exists(email_index=crypto.blind_index(email)):
        raise InvalidInput("This email address cannot be used to register.", field="email")
    if username and await User.exists(username_index=crypto.blind_index(username)):
        raise InvalidInput("This username is taken.", field="username")
    user = User(
        name=name,
        phone=phone,
        date_of_birth=birth.isoformat(),
        password_hash=await hash_password(form.password),
        locale=locale,
        time_zone=time_zone,
        roles=[Role.CUSTOMER.value],
        source="self",
    )
    user.set_email(email)
    user.set_username(username)
    async with in_transaction():
        await user.save()
        await audit.record(
            principal,
            action=AuditAction.ACCOUNT_CREATE,
            entity="User",
            entity_id=user.id,
            subject_id=user.id,
            field_names=[
                "User.name",
                "User.email",
                "User.phone",
                "User.username",
                "User.dateOfBirth",
                "User.password",
            ],
        )
    return user


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    name: str | None = None
    phone: str | None = None
    clear_phone: bool = False
    locale: str | None = None
    time_zone: str | None = None


async def update_profile(principal: Principal, changes: ProfileChanges) -> User:
    """Change one's own profile (rectification needs no request for these fields)."""
    user_id = require_user(principal)
    updates: dict[str, str | None] = {}
    if changes.name is not None:
        updates["name"] = validation.text(changes.name, "name", max_length=200)
    if changes.clear_phone:
        updates["phone"] = None
    elif changes.phone is not None:
        updates["phone"] = validation.phone(changes.phone)
    if changes.locale is not None:
        updates["locale"] = validation.locale(changes.locale)
    if changes.time_zone is not None:
        updates["time_zone"] = validation.time_zone(changes.time_zone)
    if not updates:
        raise InvalidInput("Nothing to change.")
    async with in_transaction():
        user = await User.select_for_update().get(id=user_id)
        for attribute, value in updates.items():
            setattr(user, attribute, value)
        await user.save(update_fields=[*updates.keys(), "updated_at"])
        await audit.record(
            principal,
            action=AuditAction.PROFILE_UPDATE,
            entity="User",
            entity_id=user.id,
            subject_id=user.id,
            field_names=[_PROFILE_FIELDS[name] for name in updates],
        )
    return user


async def get_me(principal: Principal) -> User | None:
    if principal.user_id is None:
        return None
    return await User.get_or_none(id=principal.user_id)


async def list_users(
    principal: Principal,
    *,
    first: int | None,
    after: str | None,
    role: Role | None = None,
    status: UserStatus | None = None,
) -> Page[User]:
    """The account directory, for staff with that scope."""
    if not principal.has(Scope.USERS_DIRECTORY):
        raise NotAllowed("Listing accounts needs the directory scope.")
    for name, given in (("roles", role), ("status", status)):
        if given is not None and not may_filter("User", name, principal):
            raise NotAllowed(f"Filtering accounts by {name} needs the right to read it.")
    query = scoping.readable_users(principal)
    if status is not None:
        query = query.filter(status=status)
    if role is not None:
        query = await scoping.with_role(query, role)
    # Ordered by creation only for callers who may read when accounts were created.
    by_id_only = not may_filter("User", "createdAt", principal)
    return await paginate(
        query, first=first, after=after, newest_first=False, by_id_only=by_id_only
    )


async def load_users(ids: list[UUID]) -> list[User | None]:
    """Batch: users by id, in key order (reached through already-scoped objects)."""
    found = {user.id: user for user in await User.filter(id__in=ids)}
    return [found.get(ident) for ident in ids]


async def create_staff_account(
    *, email: str, name: str, password: str, role: Role = Role.ADMINISTRATOR
) -> User:
    """Create (or promote) a staff account from the command line."""
    email = validation.email(email)
    name = validation.text(name, "name", max_length=200)
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem, field="password")
    existing = await User.get_or_none(email_index=crypto.blind_index(email))
    if existing is not None:
        if role.value not in existing.roles:
            existing.roles = [*existing.roles, role.value]
        existing.password_hash = await hash_password(password)
        await existing.save(update_fields=["roles", "password_hash", "updated_at"])
        return existing
    user = User(name=name, password_hash=await hash_password(password), roles=[role.value])
    user.set_email(email)
    await user.save()
    return user
