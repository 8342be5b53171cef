"""Accounts: profile changes, reading people the caller may reach, staff accounts
(registration is in resolvers/local_accounts.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from tortoise.transactions import in_transaction

from auth import scoping
from auth.passwords import hash_password, password_problem
from auth.policy import may_filter
from auth.principal import Principal
from auth.scopes import Scope
from models import Role, User, UserStatus, crypto
from models.rows import fetch_rows
from privacy import audit
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.errors import InvalidInput, NotAllowed, NotAuthenticated
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


async def load_users(ids: list[UUID], *, rows: bool = False) -> list[User | None]:
    """Batch: users by id, in key order (reached through already-scoped objects); `rows`: read
    as rows without ORM instances (models/rows.py)."""
    query = User.filter(id__in=ids)
    found = {user.id: user for user in await (fetch_rows(query) if rows else query)}
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
        # The administrator typed the address: it counts as verified.
        existing.email_verified_at = existing.email_verified_at or datetime.now(UTC)
        await existing.save(
            update_fields=["roles", "password_hash", "email_verified_at", "updated_at"]
        )
        return existing
    user = User(
        name=name,
        password_hash=await hash_password(password),
        roles=[role.value],
        email_verified_at=datetime.now(UTC),
    )
    user.set_email(email)
    await user.save()
    return user
