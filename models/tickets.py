"""Support tickets and their messages."""

from __future__ import annotations

from uuid import UUID

from tortoise import fields

from models.base import Entity
from models.enums import Channel, TicketPriority, TicketStatus
from models.fields import EncryptedField
from models.users import Team, User


class WalkInRequester(Entity):
    """Someone who wrote in by email without an account: the person the audit names for them.

    Found again by the email's blind index, so every ticket of one address names one walk-in
    (and a later erasure finds everything about that address through this row).
    """

    email = EncryptedField()
    email_index = fields.CharField(max_length=64, unique=True)
    name = EncryptedField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "walk_in_requesters"


class Ticket(Entity):
    subject = EncryptedField()
    status = fields.CharEnumField(TicketStatus, default=TicketStatus.OPEN, max_length=16)
    priority = fields.CharEnumField(TicketPriority, default=TicketPriority.NORMAL, max_length=16)
    channel = fields.CharEnumField(Channel, default=Channel.WEB, max_length=16)
    requester: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="requested_tickets", null=True, on_delete=fields.SET_NULL
    )
    requester_id: UUID | None
    # Without an account: who the ticket is about. The ticket keeps the name and address typed
    # on it; the walk-in is the subject its reads and changes are recorded against.
    walk_in: fields.ForeignKeyNullableRelation[WalkInRequester] = fields.ForeignKeyField(
        "ocis.WalkInRequester", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    walk_in_id: UUID | None
    requester_name = EncryptedField(null=True)
    requester_email = EncryptedField(null=True)
    requester_email_index = fields.CharField(max_length=64, null=True, db_index=True)
    # Opened on someone's behalf: their contact details wait for a step the opener does not control.
    awaiting_requester = fields.BooleanField(default=False)
    assignee: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="assigned_tickets", null=True, on_delete=fields.SET_NULL
    )
    assignee_id: UUID | None
    team: fields.ForeignKeyNullableRelation[Team] = fields.ForeignKeyField(
        "ocis.Team", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    team_id: UUID | None
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)
    closed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "tickets"
        indexes = (("requester_id", "created_at"), ("assignee_id", "created_at"))


class TicketMessage(Entity):
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "ocis.Ticket", related_name="messages", on_delete=fields.CASCADE
    )
    ticket_id: UUID
    author: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    author_id: UUID | None
    body = EncryptedField()
    internal = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ticket_messages"
        indexes = (("ticket_id", "created_at"),)
