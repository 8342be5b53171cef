"""Who is calling: the typed principal every use case receives."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from uuid import UUID

from auth.scopes import STAFF_ROLES, Scope, scopes_for
from models.enums import Role


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID | None = None
    roles: frozenset[Role] = frozenset()
    team_id: UUID | None = None
    session_id: UUID | None = None
    scopes: frozenset[Scope] = field(default=frozenset())
    request_id: str | None = None

    @classmethod
    def for_user(
        cls,
        user_id: UUID,
        roles: frozenset[Role],
        team_id: UUID | None,
        session_id: UUID | None = None,
        request_id: str | None = None,
    ) -> Principal:
        return cls(user_id, roles, team_id, session_id, scopes_for(roles), request_id)

    def with_request_id(self, request_id: str) -> Principal:
        return replace(self, request_id=request_id)

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    def works_in(self, team_id: UUID | None) -> bool:
        """A member or the lead of this team: staff who work tickets, in that team."""
        return team_id is not None and team_id == self.team_id and self.has(Scope.TICKETS_WORK)

    def leads(self, team_id: UUID | None) -> bool:
        """The lead of this team: the team-lead role, in that team."""
        return team_id is not None and team_id == self.team_id and Role.TEAM_LEAD in self.roles


ANONYMOUS = Principal()


def parse_roles(raw: list[str]) -> frozenset[Role]:
    return frozenset(Role(value) for value in raw if value in Role.__members__.values())
