"""Notices: what the platform told one person, shown in-platform and sent by email."""

from __future__ import annotations

from uuid import UUID

from tortoise import fields

from models.base import Entity
from models.enums import CampaignState, MailStatus
from models.fields import EncryptedField
from models.users import User


class Notice(Entity):
    """One notice to one account, or one mail to an address that has none.

    Its params never hold personal data, only names and times. A notice to an address (an
    invitation, a walk-in requester) has no account and is never shown in-platform.
    """

    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="notices", null=True, on_delete=fields.CASCADE
    )
    user_id: UUID | None
    # Set only when there is no account to read the address from.
    address = EncryptedField(null=True)
    # A secret link the mail carries (an invitation, a verification, a reset): sealed like
    # personal data and cleared once the mail is sent or given up, so no copy stays behind.
    link = EncryptedField(null=True)
    kind = fields.CharField(max_length=50)
    params = fields.JSONField[dict[str, str]](default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    read_at = fields.DatetimeField(null=True)
    mail_status = fields.CharEnumField(
        MailStatus, default=MailStatus.PENDING, max_length=10, db_index=True
    )
    # Bumped by every delivery claim, so two senders never claim the same attempt.
    mail_attempts = fields.SmallIntField(default=0)
    # When a pending mail is next due, or when a claimed one's lease runs out.
    mail_due_at = fields.DatetimeField()
    mail_sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notices"


class NoticePreference(Entity):
    """One person's choice for one kind of notice they may turn off: by mail, or only here.

    A kind without a row is mailed. Security notices have no choice to store.
    """

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="notice_preferences", on_delete=fields.CASCADE
    )
    user_id: UUID
    kind = fields.CharField(max_length=50)
    by_mail = fields.BooleanField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "notice_preferences"
        unique_together = (("user", "kind"),)


class Announcement(Entity):
    """What an administrator told every user (a business transfer, a change of ownership).

    Written once: each user's notice refers to it by id, so its text is no one's personal data
    and is not copied ten thousand times.
    """

    title = fields.CharField(max_length=150)
    body = fields.TextField()
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="announcements", null=True, on_delete=fields.SET_NULL
    )
    created_by_id: UUID | None
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "announcements"


class NoticeFanout(Entity):
    """A notice owed to every account that existed when it was asked for, written in batches.

    A job claims it with a lease and writes the notices of the next accounts in id order,
    moving ``cursor`` in the same transaction, so a crash or a second worker never writes a
    notice twice and the request that asked returns at once.
    """

    kind = fields.CharField(max_length=50)
    params = fields.JSONField[dict[str, str]](default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    # The last account (by id) whose notice is written; null before the first batch.
    cursor = fields.UUIDField(null=True)
    notified = fields.IntField(default=0)
    lease_until = fields.DatetimeField()
    done_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notice_fanouts"


class Campaign(Entity):
    """A marketing mail written by staff (P12), sent once to every account that consents.

    Its words are about OCIS, no one's personal data. It keeps counts of who was owed it,
    never who: each mail is a notice of its own, written by the fan-out job.
    """

    subject = fields.CharField(max_length=150)
    body = fields.TextField()
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="campaigns", null=True, on_delete=fields.SET_NULL
    )
    created_by_id: UUID | None
    created_at = fields.DatetimeField(auto_now_add=True)
    # When sending was asked for; the state says whether every mail is written yet.
    sent_at = fields.DatetimeField(null=True)
    state = fields.CharEnumField(CampaignState, default=CampaignState.DRAFT, max_length=10)
    # Accounts eligible when it was sent, and mails written for it so far.
    eligible = fields.IntField(default=0)
    queued = fields.IntField(default=0)

    class Meta:
        table = "campaigns"
