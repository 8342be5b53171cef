"""Staff invitations: a single-use, expiring link that makes its holder a staff member."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from tortoise import fields

from models.base import Entity
from models.fields import EncryptedField
from models.users import Team, User


class Invitation(Entity):
    """An administrator's invitation of one address to some staff roles (and a team).

    Only the SHA-256 of the link's token is kept. The address is sealed and cleared, with its
    blind index, once the invitation is accepted: the account holds it from then on.
    """

    # The invitee has no account yet: the invitation is its own data subject.
    key_subject: ClassVar[tuple[str, ...]] = ("id",)

    email = EncryptedField(null=True)
    email_index = fields.CharField(max_length=64, null=True, db_index=True)
    roles = fields.JSONField[list[str]](default=list)
    team: fields.ForeignKeyNullableRelation[Team] = fields.ForeignKeyField(
        "ocis.Team", related_name="invitations", null=True, on_delete=fields.SET_NULL
    )
    team_id: UUID | None
    invited_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="invitations_sent", null=True, on_delete=fields.SET_NULL
    )
    invited_by_id: UUID | None
    accepted_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="invitations_accepted", null=True, on_delete=fields.SET_NULL
    )
    accepted_by_id: UUID | None
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    accepted_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invitations"
