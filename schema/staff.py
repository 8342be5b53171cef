"""Staff administration: invitations, staff roles, teams (administrators; accepting: anyone)."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry

from auth.policy import Relation
from auth.relations import NO_RELATION
from models import Invitation, Team, User
from resolvers import staff
from schema.attributes import attribute
from schema.context import Info
from schema.enums import Role
from schema.errors import AccountRestrictedError, MutationError, coded_errors
from schema.need_to_know import personal_data
from schema.relay import from_global_id, to_global_id
from schema.users import UserType, own_account, user_node


@personal_data
@strawberry.type(name="Team", description="A team of staff members and its ticket queue.")
class TeamType:
    model: strawberry.Private[Team]
    relation: strawberry.Private[Relation]
    name: str | None = attribute()
    archived_at: datetime | None = attribute("Set once archived: it takes no new members.")
    created_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        return None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Team", self.model.id)

    @strawberry.field(description="Its members, as far as you reach accounts.")
    async def members(self, info: Info) -> list[UserType] | None:
        people = await staff.team_members(info.context.principal, self.model.id)
        loaders = info.context.loaders
        for person in people:
            loaders.users.prime(person.id, person)
        relations = await loaders.relations.load_many([person.id for person in people])
        return [
            UserType(model=person, relation=relation)
            for person, relation in zip(people, relations, strict=True)
        ]


def team_node(team: Team) -> TeamType:
    return TeamType(model=team, relation=NO_RELATION)


@personal_data
@strawberry.type(name="Invitation", description="An invitation of an address to staff roles.")
class InvitationType:
    model: strawberry.Private[Invitation]
    relation: strawberry.Private[Relation]
    email: str | None = attribute("Cleared once accepted: the account holds it then.")
    created_at: datetime | None = attribute()
    expires_at: datetime | None = attribute()
    accepted_at: datetime | None = attribute()
    revoked_at: datetime | None = attribute()

    @property
    def subject_id(self) -> UUID | None:
        # The invitee has no account: the invitation is their record.
        return self.model.id

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Invitation", self.model.id)

    @strawberry.field
    def roles(self) -> list[Role] | None:
        return [Role(role) for role in self.model.roles]

    @strawberry.field
    async def team(self) -> TeamType | None:
        if self.model.team_id is None:
            return None
        team = await Team.get_or_none(id=self.model.team_id)
        return team_node(team) if team else None

    @strawberry.field
    async def invited_by(self, info: Info) -> UserType | None:
        return await user_node(info, self.model.invited_by_id)


def invitation_node(invitation: Invitation) -> InvitationType:
    return InvitationType(model=invitation, relation=NO_RELATION)


def _optional_id(value: strawberry.ID | None, type_name: str, field: str) -> UUID | None:
    return None if value is None else from_global_id(value, type_name, field)[1]


@strawberry.type
class InviteStaffSuccess:
    invitation: InvitationType


InviteStaffResult = Annotated[
    InviteStaffSuccess | MutationError, strawberry.union("InviteStaffResult")
]


@strawberry.type
class AcceptInvitationSuccess:
    user: UserType


AcceptInvitationResult = Annotated[
    AcceptInvitationSuccess | MutationError, strawberry.union("AcceptInvitationResult")
]


@strawberry.type
class RevokeInvitationSuccess:
    invitation: InvitationType


RevokeInvitationResult = Annotated[
    RevokeInvitationSuccess | MutationError, strawberry.union("RevokeInvitationResult")
]


@strawberry.type
class StaffRoleSuccess:
    user: UserType


StaffRoleResult = Annotated[
    StaffRoleSuccess | AccountRestrictedError | MutationError, strawberry.union("StaffRoleResult")
]


@strawberry.type
class TeamSuccess:
    team: TeamType


TeamResult = Annotated[TeamSuccess | MutationError, strawberry.union("TeamResult")]


@strawberry.type
class StaffQuery:
    @strawberry.field(description="The newest invitations, without their links (administrator).")
    @coded_errors
    async def invitations(self, info: Info, open_only: bool = False) -> list[InvitationType] | None:
        found = await staff.list_invitations(info.context.principal, open_only=open_only)
        return [invitation_node(invitation) for invitation in found]

    @strawberry.field(description="The teams, by name (administrator).")
    @coded_errors
    async def teams(self, info: Info, include_archived: bool = False) -> list[TeamType] | None:
        found = await staff.list_teams(info.context.principal, include_archived=include_archived)
        return [team_node(team) for team in found]


@strawberry.type
class StaffMutation:
    @strawberry.mutation(
        description="Invite an address to staff roles and a team; the link goes by mail"
        " (administrator)."
    )
    async def invite_staff(
        self,
        info: Info,
        email: str,
        roles: list[Role],
        team_id: strawberry.ID | None = None,
    ) -> InviteStaffResult:
        context = info.context
        created = await staff.invite_staff(
            context.principal,
            email=email,
            roles=roles,
            team_id=_optional_id(team_id, "Team", "teamId"),
            public_url=context.public_url,
        )
        return InviteStaffSuccess(invitation=invitation_node(created.invitation))

    @strawberry.mutation(
        description="Take up an invitation: signed in, your account gains its roles; signed"
        " out, name and password create the staff account (then sign in with them)."
    )
    async def accept_invitation(
        self, info: Info, token: str, name: str | None = None, password: str | None = None
    ) -> AcceptInvitationResult:
        accepted = await staff.accept_invitation(
            info.context.principal, token=token, name=name, password=password
        )
        return AcceptInvitationSuccess(user=own_account(accepted.user))

    @strawberry.mutation(description="Make an open invitation's link useless (administrator).")
    async def revoke_invitation(self, info: Info, id: strawberry.ID) -> RevokeInvitationResult:
        _, ident = from_global_id(id, "Invitation", "id")
        revoked = await staff.revoke_invitation(info.context.principal, ident)
        return RevokeInvitationSuccess(invitation=invitation_node(revoked))

    @strawberry.mutation(description="Give an account a staff role (administrator).")
    async def grant_role(self, info: Info, user_id: strawberry.ID, role: Role) -> StaffRoleResult:
        _, ident = from_global_id(user_id, "User", "userId")
        user = await staff.grant_role(info.context.principal, ident, role)
        return StaffRoleSuccess(user=await _person(info, user))

    @strawberry.mutation(
        description="Take a staff role away at once, in every session (administrator)."
    )
    async def revoke_role(self, info: Info, user_id: strawberry.ID, role: Role) -> StaffRoleResult:
        _, ident = from_global_id(user_id, "User", "userId")
        user = await staff.revoke_role(info.context.principal, ident, role)
        return StaffRoleSuccess(user=await _person(info, user))

    @strawberry.mutation(description="Create a team (administrator).")
    async def create_team(self, info: Info, name: str) -> TeamResult:
        return TeamSuccess(team=team_node(await staff.create_team(info.context.principal, name)))

    @strawberry.mutation(description="Rename a team (administrator).")
    async def rename_team(self, info: Info, id: strawberry.ID, name: str) -> TeamResult:
        _, ident = from_global_id(id, "Team", "id")
        team = await staff.rename_team(info.context.principal, ident, name)
        return TeamSuccess(team=team_node(team))

    @strawberry.mutation(description="Archive a team: it takes no new members (administrator).")
    async def archive_team(self, info: Info, id: strawberry.ID) -> TeamResult:
        _, ident = from_global_id(id, "Team", "id")
        return TeamSuccess(team=team_node(await staff.archive_team(info.context.principal, ident)))

    @strawberry.mutation(
        description="Make exactly these staff members the team's members (administrator; a"
        " team's lead for its own team, adding or removing only agents of no other team)."
    )
    async def set_team_members(
        self, info: Info, team_id: strawberry.ID, user_ids: list[strawberry.ID]
    ) -> TeamResult:
        _, team = from_global_id(team_id, "Team", "teamId")
        people = [from_global_id(each, "User", "userIds")[1] for each in user_ids]
        return TeamSuccess(
            team=team_node(await staff.set_team_members(info.context.principal, team, people))
        )

    @strawberry.mutation(description="Make a staff member the team's lead (administrator).")
    async def set_team_lead(
        self, info: Info, team_id: strawberry.ID, user_id: strawberry.ID
    ) -> TeamResult:
        _, team = from_global_id(team_id, "Team", "teamId")
        _, person = from_global_id(user_id, "User", "userId")
        return TeamSuccess(
            team=team_node(await staff.set_team_lead(info.context.principal, team, person))
        )


async def _person(info: Info, user: User) -> UserType:
    """The account just changed, as the caller sees it (its fresh row, not a cached one)."""
    loaders = info.context.loaders
    loaders.users.prime(user.id, user, force=True)
    return UserType(model=user, relation=await loaders.relations.load(user.id))
