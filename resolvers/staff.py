"""Staff administration: invitations, staff roles, teams and their members and lead.

Every use case but accepting an invitation is an administrator's (``Scope.STAFF_ADMIN``); a team
lead may also set which agents are in their own team.
Roles live on the account row, and every request reads them from there (auth/sessions.py,
auth/tokens/access.py), so a granted or revoked role takes effect at once in every process.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from tortoise.transactions import in_transaction

from auth import scoping
from auth.passwords import hash_password, password_problem
from auth.principal import Principal
from auth.scopes import STAFF_ROLES, Scope
from models import Invitation, Role, Team, User, UserStatus, crypto
from privacy import audit, notices
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.errors import InvalidInput, NotAllowed, NotFound
from resolvers.restriction import refuse_if_restricted
from resolvers.users import require_user

INVITATION_TTL = timedelta(days=7)
MAX_TOKEN_LENGTH = 128
MAX_TEAM_NAME = 100
MAX_MEMBERS = 200
MAX_LISTED = 200
INVITATION_PATH = "/invitation#"
_STAFF_ROLE_VALUES = frozenset(role.value for role in STAFF_ROLES)
_ROLE_NAMES = {
    Role.AGENT: "an agent",
    Role.TEAM_LEAD: "a team lead",
    Role.PRIVACY_OFFICER: "a privacy officer",
    Role.ADMINISTRATOR: "an administrator",
}
# Whoever holds a wrong, used, expired or revoked link learns nothing about which it is.
INVALID_LINK = "This invitation link is not valid: it may have expired, been used or revoked."


def _refuse_without_scope(principal: Principal) -> None:
    if not principal.has(Scope.STAFF_ADMIN):
        raise NotAllowed("Only an administrator may manage staff and teams.")


def require_staff_admin(principal: Principal) -> UUID:
    user_id = require_user(principal)
    _refuse_without_scope(principal)
    return user_id


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _staff_roles(roles: Iterable[Role], field: str) -> list[Role]:
    chosen = list(dict.fromkeys(roles))
    if not chosen:
        raise InvalidInput("Choose at least one staff role.", field=field)
    if any(role not in STAFF_ROLES for role in chosen):
        raise InvalidInput("Only staff roles can be given here.", field=field)
    return sorted(chosen)


def _staff_role(role: Role, field: str = "role") -> Role:
    if role not in STAFF_ROLES:
        raise InvalidInput("Only staff roles can be granted or revoked.", field=field)
    return role


def _holds_staff_role(roles: Iterable[str]) -> bool:
    return any(role in STAFF_ROLES for role in roles)


async def _active_team(team_id: UUID, field: str = "teamId") -> Team:
    team = await Team.get_or_none(id=team_id)
    if team is None:
        raise NotFound("No such team.", field=field)
    if team.archived_at is not None:
        raise InvalidInput("This team is archived.", field=field)
    return team


async def _account(user_id: UUID, field: str = "userId") -> User:
    user = await User.get_or_none(id=user_id).only("id", "roles", "team_id", "status")
    if user is None or user.status == UserStatus.ERASED:
        raise NotFound("No such account.", field=field)
    return user


async def ensure_not_last_administrator(user_id: UUID) -> None:
    """Refuse to demote or disable the account if it is the last active administrator.

    Call inside the transaction of the change: on PostgreSQL the administrators' rows stay
    locked until it commits, so two administrators removing each other at once cannot both pass.
    """
    active = User.filter(status=UserStatus.ACTIVE)
    admins = await scoping.with_role(active, Role.ADMINISTRATOR)
    ids = await admins.select_for_update().values_list("id", flat=True)
    others = {UUID(str(ident)) for ident in ids} - {user_id}
    if len(others) < len(ids) and not others:
        raise InvalidInput(
            "The last active administrator cannot be removed or demoted.", field="userId"
        )


# --- Invitations. ---


@dataclass(frozen=True, slots=True)
class NewInvitation:
    invitation: Invitation
    link: str


async def invite_staff(
    principal: Principal, *, email: str, roles: list[Role], team_id: UUID | None, public_url: str
) -> NewInvitation:
    """Invite an address to staff roles (and a team); the link goes out through the outbox."""
    inviter = require_staff_admin(principal)
    address = validation.email(email)
    chosen = _staff_roles(roles, "roles")
    team = await _active_team(team_id) if team_id is not None else None
    index = crypto.blind_index(address)
    now = datetime.now(UTC)
    if await Invitation.exists(
        email_index=index, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    ):
        raise InvalidInput(
            "This address already has an open invitation: revoke it to send another.",
            field="email",
        )
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        email=address,
        email_index=index,
        roles=[role.value for role in chosen],
        team_id=team.id if team else None,
        invited_by_id=inviter,
        token_hash=token_hash(token),
        expires_at=now + INVITATION_TTL,
    )
    link = f"{public_url.rstrip('/')}{INVITATION_PATH}{token}"
    async with in_transaction():
        await invitation.save()
        await notices.notify_address(
            address,
            "staff.invited",
            link=link,
            roles=" and ".join(_ROLE_NAMES[role] for role in chosen),
            team=f" in the team {team.name}" if team else "",
            expires=(now + INVITATION_TTL).strftime("%Y-%m-%d %H:%M UTC"),
        )
        await audit.record(
            principal,
            action=AuditAction.STAFF_INVITE,
            entity="Invitation",
            entity_id=invitation.id,
            subject_id=None,
            field_names=["Invitation.email", "Invitation.roles", "Invitation.team"],
        )
    return NewInvitation(invitation, link)


@dataclass(frozen=True, slots=True)
class AcceptedInvitation:
    user: User
    created: bool


async def accept_invitation(
    principal: Principal, *, token: str, name: str | None, password: str | None
) -> AcceptedInvitation:
    """Take up an invitation: signed in to the invited address's account, it gains the roles;
    signed out, a staff account is created with this name and password (sign in next)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidInput(INVALID_LINK, field="token")
    signed_in = principal.user_id
    if signed_in is None:
        # Checked before the link is used up: a typo must not cost the invitation.
        name = validation.text(name or "", "name", max_length=200)
        problem = password_problem(password or "")
        if problem:
            raise InvalidInput(problem, field="password")
    now = datetime.now(UTC)
    async with in_transaction():
        invitation = (
            await Invitation.filter(
                token_hash=token_hash(token),
                accepted_at__isnull=True,
                revoked_at__isnull=True,
                expires_at__gt=now,
            )
            .select_for_update()
            .first()
        )
        if invitation is None or invitation.email is None:
            raise InvalidInput(INVALID_LINK, field="token")
        if invitation.team_id is not None and await Team.exists(
            id=invitation.team_id, archived_at__not_isnull=True
        ):
            raise InvalidInput("The team of this invitation was archived.", field="token")
        existing = await User.get_or_none(email_index=invitation.email_index)
        if signed_in is not None:
            # Only a verified address proves the signed-in account is the invitee.
            if existing is None or existing.id != signed_in or existing.email_verified_at is None:
                raise InvalidInput(
                    "This invitation is for another address: sign in to the account that"
                    " uses it, or sign out to create one.",
                    field="token",
                )
            user, created = existing, False
            user.roles = sorted({*user.roles, *invitation.roles})
            if invitation.team_id is not None:
                user.team_id = invitation.team_id
            await user.save(update_fields=["roles", "team_id", "updated_at"])
        else:
            if existing is not None:
                raise InvalidInput(
                    "An account already uses this address: sign in to it, then open the link"
                    " again.",
                    field="token",
                )
            user = User(
                name=name,
                password_hash=await hash_password(password or ""),
                roles=list(invitation.roles),
                team_id=invitation.team_id,
            )
            user.set_email(invitation.email)
            # The link reached this address: that verifies it (resolvers/local_accounts.py).
            user.email_verified_at = now
            await user.save()
            created = True
        # Conditional: of two acceptances at once, only one finds the invitation still open.
        taken = await Invitation.filter(id=invitation.id, accepted_at__isnull=True).update(
            accepted_at=now, accepted_by_id=user.id, email=None, email_index=None
        )
        if not taken:
            raise InvalidInput(INVALID_LINK, field="token")
        actor = (
            principal
            if signed_in is not None
            else Principal.for_user(user.id, frozenset(), None, request_id=principal.request_id)
        )
        if created:
            await audit.record(
                actor,
                action=AuditAction.ACCOUNT_CREATE,
                entity="User",
                entity_id=user.id,
                subject_id=user.id,
                field_names=["User.name", "User.email", "User.password"],
            )
        await audit.record(
            actor,
            action=AuditAction.STAFF_INVITATION_ACCEPT,
            entity="Invitation",
            entity_id=invitation.id,
            subject_id=user.id,
            field_names=["User.roles", "User.team"],
        )
    return AcceptedInvitation(user, created)


async def revoke_invitation(principal: Principal, invitation_id: UUID) -> Invitation:
    """Make an open invitation's link useless."""
    require_staff_admin(principal)
    async with in_transaction():
        invitation = await Invitation.filter(id=invitation_id).select_for_update().first()
        if invitation is None:
            raise NotFound("No such invitation.", field="id")
        if invitation.accepted_at is not None or invitation.revoked_at is not None:
            raise InvalidInput("This invitation was already accepted or revoked.", field="id")
        invitation.revoked_at = datetime.now(UTC)
        await invitation.save(update_fields=["revoked_at"])
        await audit.record(
            principal,
            action=AuditAction.STAFF_INVITATION_REVOKE,
            entity="Invitation",
            entity_id=invitation.id,
            subject_id=None,
            field_names=["Invitation.revokedAt"],
        )
    return invitation


async def list_invitations(principal: Principal, *, open_only: bool = False) -> list[Invitation]:
    """The newest invitations, for administrators."""
    _refuse_without_scope(principal)
    query = Invitation.all()
    if open_only:
        query = query.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=datetime.now(UTC)
        )
    return await query.order_by("-created_at", "-id").limit(MAX_LISTED)


# --- Roles. ---


async def grant_role(principal: Principal, user_id: UUID, role: Role) -> User:
    """Give an account a staff role (not while its processing is restricted: P25)."""
    require_staff_admin(principal)
    role = _staff_role(role)
    async with in_transaction():
        await _account(user_id)
        await refuse_if_restricted(user_id)
        user = await User.select_for_update().get(id=user_id)
        if role.value in user.roles:
            raise InvalidInput("This account already holds this role.", field="role")
        user.roles = sorted({*user.roles, role.value})
        await user.save(update_fields=["roles", "updated_at"])
        await _audit_roles(principal, AuditAction.ROLE_GRANT, user.id, ["User.roles"])
    return user


async def revoke_role(principal: Principal, user_id: UUID, role: Role) -> User:
    """Take a staff role away; an account left without one leaves its team too."""
    require_staff_admin(principal)
    role = _staff_role(role)
    async with in_transaction():
        await _account(user_id)
        user = await User.select_for_update().get(id=user_id)
        if role.value not in user.roles:
            raise InvalidInput("This account does not hold this role.", field="role")
        if role == Role.ADMINISTRATOR:
            await ensure_not_last_administrator(user.id)
        user.roles = [held for held in user.roles if held != role.value]
        changed = ["User.roles"]
        if not _holds_staff_role(user.roles) and user.team_id is not None:
            user.team_id = None
            changed.append("User.team")
        await user.save(update_fields=["roles", "team_id", "updated_at"])
        await _audit_roles(principal, AuditAction.ROLE_REVOKE, user.id, changed)
    return user


async def _audit_roles(
    principal: Principal, action: AuditAction, user_id: UUID, field_names: list[str]
) -> None:
    await audit.record(
        principal,
        action=action,
        entity="User",
        entity_id=user_id,
        subject_id=user_id,
        field_names=field_names,
    )


# --- Teams. ---


async def _team_name(name: str, *, except_id: UUID | None = None) -> str:
    cleaned = validation.text(name, "name", max_length=MAX_TEAM_NAME)
    taken = Team.filter(name__iexact=cleaned)
    if except_id is not None:
        taken = taken.exclude(id=except_id)
    if await taken.exists():
        raise InvalidInput("Another team has this name.", field="name")
    return cleaned


async def _audit_team(
    principal: Principal, action: AuditAction, team_id: UUID, field_names: list[str]
) -> None:
    await audit.record(
        principal,
        action=action,
        entity="Team",
        entity_id=team_id,
        subject_id=None,
        field_names=field_names,
    )


async def create_team(principal: Principal, name: str) -> Team:
    require_staff_admin(principal)
    cleaned = await _team_name(name)
    async with in_transaction():
        team = await Team.create(name=cleaned)
        await _audit_team(principal, AuditAction.TEAM_CREATE, team.id, ["Team.name"])
    return team


async def rename_team(principal: Principal, team_id: UUID, name: str) -> Team:
    require_staff_admin(principal)
    team = await _active_team(team_id, "id")
    cleaned = await _team_name(name, except_id=team.id)
    if cleaned == team.name:
        raise InvalidInput("The team already has this name.", field="name")
    async with in_transaction():
        team.name = cleaned
        await team.save(update_fields=["name"])
        await _audit_team(principal, AuditAction.TEAM_RENAME, team.id, ["Team.name"])
    return team


async def archive_team(principal: Principal, team_id: UUID) -> Team:
    """Archive a team: it keeps its name, members and tickets, and takes no new ones."""
    require_staff_admin(principal)
    team = await _active_team(team_id, "id")
    async with in_transaction():
        team.archived_at = datetime.now(UTC)
        await team.save(update_fields=["archived_at"])
        await _audit_team(principal, AuditAction.TEAM_ARCHIVE, team.id, ["Team.archivedAt"])
    return team


async def _audit_membership(
    principal: Principal, action: AuditAction, team_id: UUID, user_id: UUID, fields: list[str]
) -> None:
    await audit.record(
        principal,
        action=action,
        entity="Team",
        entity_id=team_id,
        subject_id=user_id,
        field_names=fields,
    )


async def set_team_members(principal: Principal, team_id: UUID, user_ids: list[UUID]) -> Team:
    """Make exactly these staff members the team's members (others leave it).

    Administrators set any team's members; a team lead sets their own team's, where only agents
    join or leave by their hand, and none taken from another team.
    """
    by_lead = _refuse_unless_admin_or_its_lead(principal, team_id)
    team = await _active_team(team_id)
    wanted = list(dict.fromkeys(user_ids))
    if len(wanted) > MAX_MEMBERS:
        raise InvalidInput(f"At most {MAX_MEMBERS} members.", field="userIds")
    async with in_transaction():
        found = User.filter(id__in=wanted).exclude(status=UserStatus.ERASED)
        people = {
            person.id: person
            for person in await found.select_for_update().only("id", "roles", "team_id")
        }
        if len(people) != len(wanted):
            raise NotFound("No such account.", field="userIds")
        if not all(_holds_staff_role(people[ident].roles) for ident in wanted):
            raise InvalidInput("Only staff members can be in a team.", field="userIds")
        current = User.filter(team_id=team.id).exclude(id__in=wanted)
        leaving = await current.select_for_update().only("id", "roles", "team_id")
        joining = [people[ident] for ident in wanted if people[ident].team_id != team.id]
        if by_lead:
            _refuse_what_a_lead_may_not_change(leaving, joining)
        if leaving:
            await User.filter(id__in=[person.id for person in leaving]).update(team_id=None)
        if joining:
            await User.filter(id__in=[person.id for person in joining]).update(team_id=team.id)
        for person in [*leaving, *joining]:
            await _audit_membership(
                principal, AuditAction.TEAM_MEMBERSHIP, team.id, person.id, ["User.team"]
            )
    return team


def _refuse_unless_admin_or_its_lead(principal: Principal, team_id: UUID) -> bool:
    """Whether the caller acts as the team's lead; refuses whoever is neither that nor an admin."""
    require_user(principal)
    if principal.has(Scope.STAFF_ADMIN):
        return False
    if Role.TEAM_LEAD not in principal.roles:
        raise NotAllowed("Only administrators and team leads set a team's members.")
    if not principal.leads(team_id):
        raise NotAllowed("A team lead sets the members of their own team only.")
    return True


def _is_agent_only(roles: Iterable[str]) -> bool:
    return {role for role in roles if role in _STAFF_ROLE_VALUES} == {Role.AGENT.value}


def _refuse_what_a_lead_may_not_change(leaving: list[User], joining: list[User]) -> None:
    if not all(_is_agent_only(person.roles) for person in [*leaving, *joining]):
        raise NotAllowed(
            "A team lead adds or removes only agents: keep every other member in the list."
        )
    if any(person.team_id is not None for person in joining):
        raise NotAllowed(
            "An agent of another team joins yours once its lead or an administrator lets them go."
        )


async def set_team_lead(principal: Principal, team_id: UUID, user_id: UUID) -> Team:
    """Make a staff member the team's lead: a member with the team lead role; whoever led it
    before stays in it as an agent."""
    require_staff_admin(principal)
    team = await _active_team(team_id)
    person = await _account(user_id)
    if not _holds_staff_role(person.roles):
        raise InvalidInput("Only a staff member can lead a team.", field="userId")
    async with in_transaction():
        lead = await User.select_for_update().get(id=user_id)
        if lead.team_id == team.id and Role.TEAM_LEAD.value in lead.roles:
            raise InvalidInput("This account already leads this team.", field="userId")
        previous = await scoping.with_role(
            User.filter(team_id=team.id).exclude(id=lead.id), Role.TEAM_LEAD
        )
        for former in await previous.select_for_update():
            former.roles = sorted(
                {*(held for held in former.roles if held != Role.TEAM_LEAD.value), Role.AGENT.value}
            )
            await former.save(update_fields=["roles", "updated_at"])
            await _audit_membership(
                principal, AuditAction.TEAM_LEAD, team.id, former.id, ["User.roles"]
            )
        lead.roles = sorted({*lead.roles, Role.TEAM_LEAD.value})
        lead.team_id = team.id
        await lead.save(update_fields=["roles", "team_id", "updated_at"])
        await _audit_membership(
            principal, AuditAction.TEAM_LEAD, team.id, lead.id, ["User.roles", "User.team"]
        )
    return team


async def list_teams(principal: Principal, *, include_archived: bool = False) -> list[Team]:
    _refuse_without_scope(principal)
    query = Team.all() if include_archived else Team.filter(archived_at__isnull=True)
    return await query.order_by("name")


async def team_members(principal: Principal, team_id: UUID) -> list[User]:
    """A team's members, as far as the caller reaches accounts."""
    return await scoping.readable_users(principal).filter(team_id=team_id).order_by("id")
