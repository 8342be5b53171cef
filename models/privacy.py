"""Consent ledger, policy versions, privacy requests and the audit trail."""

from __future__ import annotations

from uuid import UUID

from tortoise import fields
from tortoise.models import Model

from models.base import Entity
from models.enums import (
    ConsentPurpose,
    ConsentSource,
    IdentityVerificationMethod,
    PrivacyRequestAction,
    PrivacyRequestChannel,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    TransferSafeguard,
)
from models.fields import EncryptedField
from models.users import User


class PolicyVersion(Entity):
    """One published version of the privacy policy; in effect from ``effective_at``."""

    version = fields.CharField(max_length=30, unique=True)
    published_at = fields.DatetimeField()
    effective_at = fields.DatetimeField()
    significant = fields.BooleanField(default=False)
    summary = fields.TextField(default="")
    # Where it is read: an https URL or a path of ours, or its text kept here (or both).
    url = fields.CharField(max_length=500, null=True)
    text = fields.TextField(null=True)

    class Meta:
        table = "policy_versions"


class ConsentEntry(Entity):
    """One append-only line of the consent ledger: a grant or a withdrawal."""

    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="consents", null=True, on_delete=fields.CASCADE
    )
    user_id: UUID | None
    # The random id of an anonymous visitor's consent id (auth/visitor_ids.py). Kept when the
    # entry is merged into an account at sign-in, for the record.
    visitor_id = fields.CharField(max_length=64, null=True, db_index=True)
    purpose = fields.CharEnumField(ConsentPurpose, max_length=20)
    granted = fields.BooleanField()
    # A withdrawal that is an objection (GDPR Art. 21, the GPC signal): granted is False too.
    objection = fields.BooleanField(default=False)
    policy_version = fields.CharField(max_length=30)
    source = fields.CharEnumField(ConsentSource, max_length=30)
    ip_address = EncryptedField(null=True)
    user_agent = EncryptedField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "consent_entries"
        indexes = (("user_id", "purpose", "created_at"),)


class PrivacyRequest(Entity):
    """A request to exercise a GDPR right; its status moves only through privacy/requests.py."""

    subject: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="privacy_requests", on_delete=fields.CASCADE
    )
    subject_id: UUID
    kind = fields.CharEnumField(PrivacyRequestKind, max_length=20)
    status = fields.CharEnumField(
        PrivacyRequestStatus, default=PrivacyRequestStatus.RECEIVED, max_length=20
    )
    details = EncryptedField(null=True)
    received_at = fields.DatetimeField()
    due_at = fields.DatetimeField()
    closed_at = fields.DatetimeField(null=True)
    assignee: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="assigned_privacy_requests", null=True, on_delete=fields.SET_NULL
    )
    assignee_id: UUID | None
    outcome = EncryptedField(null=True)
    channel = fields.CharEnumField(
        PrivacyRequestChannel, default=PrivacyRequestChannel.SELF_SERVICE, max_length=20
    )
    # Staff who registered a request received at the contact address (P28).
    registered_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User",
        related_name="registered_privacy_requests",
        null=True,
        on_delete=fields.SET_NULL,
    )
    registered_by_id: UUID | None
    verification_method = fields.CharEnumField(IdentityVerificationMethod, max_length=20, null=True)
    # Months added to the one-month answer window (GDPR Art. 12(3): once, two at the most).
    extension_months = fields.SmallIntField(default=0)
    duplicate_of: fields.ForeignKeyNullableRelation[PrivacyRequest] = fields.ForeignKeyField(
        "ocis.PrivacyRequest", related_name="duplicates", null=True, on_delete=fields.SET_NULL
    )
    duplicate_of_id: UUID | None
    # A rectification's proposed corrections and, once decided, each one's decision: JSON of
    # [{"field", "value", "accepted", "reason"}] (privacy/rectification.py), sealed like the
    # profile's own values.
    corrections = EncryptedField(null=True)
    # The officer's decision, when starting an access request, that the internal notes on the
    # subject's tickets go into their export (staff's working data stays out otherwise).
    internal_notes_released = fields.BooleanField(default=False)

    class Meta:
        table = "privacy_requests"
        indexes = (("status", "due_at"),)


class PrivacyRequestStep(Entity):
    """One append-only step of a request's history: a change of status, who made it, why."""

    key_subject = ("subject_id",)

    request: fields.ForeignKeyRelation[PrivacyRequest] = fields.ForeignKeyField(
        "ocis.PrivacyRequest", related_name="steps", on_delete=fields.CASCADE
    )
    request_id: UUID
    action = fields.CharEnumField(PrivacyRequestAction, max_length=20)
    # Whose request it is: the note is sealed under their data key.
    subject: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="privacy_request_steps", on_delete=fields.CASCADE
    )
    subject_id: UUID
    # Null for the step that created the request.
    from_status = fields.CharEnumField(PrivacyRequestStatus, max_length=20, null=True)
    to_status = fields.CharEnumField(PrivacyRequestStatus, max_length=20)
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="privacy_request_actions", null=True, on_delete=fields.SET_NULL
    )
    actor_id: UUID | None
    at = fields.DatetimeField()
    note = EncryptedField(null=True)

    class Meta:
        table = "privacy_request_steps"
        indexes = (("request_id", "at"),)


class AuditEvent(Model):
    """One hash-chained audit record: references and field names, never values."""

    seq = fields.BigIntField(primary_key=True)
    occurred_at = fields.DatetimeField()
    actor_id = fields.UUIDField(null=True)
    actor_roles = fields.JSONField[list[str]](default=list)
    subject_id = fields.UUIDField(null=True, db_index=True)
    action = fields.CharField(max_length=40)
    entity = fields.CharField(max_length=40)
    entity_id = fields.CharField(max_length=64, null=True)
    field_names = fields.JSONField[list[str]](default=list)
    purpose = fields.CharField(max_length=100, null=True)
    request_id = fields.CharField(max_length=64, null=True)
    # Unique: two appends after the same record collide instead of forking its chain (every
    # chain starts from a genesis of its own, so chains never collide with each other).
    prev_hash = fields.CharField(max_length=64, unique=True)
    hash = fields.CharField(max_length=64, unique=True)
    # One chain per writer (privacy/audit.py); rows from before migration 0007 form the unkeyed
    # "legacy" chain, ordered by seq, which is why these have defaults.
    chain = fields.CharField(max_length=40, default="legacy")
    position = fields.BigIntField(default=0)
    key_id = fields.CharField(max_length=16, default="sha256")

    class Meta:
        table = "audit_events"
        indexes = (("chain", "position"),)


class Processor(Entity):
    """A processor OCIS hands personal data to, under contract (P15), and where it is (P30)."""

    name = fields.CharField(max_length=200, unique=True)
    purpose = fields.TextField()
    data_categories = fields.JSONField[list[str]](default=list)
    # ISO 3166-1 alpha-2, upper case.
    country = fields.CharField(max_length=2)
    safeguard = fields.CharEnumField(TransferSafeguard, max_length=30)
    contract_date = fields.DateField(null=True)
    # Set on the rows OCIS itself depends on (the mail transport): registered at start-up,
    # never removed, their details the privacy officer's to correct.
    system_role = fields.CharField(max_length=30, null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "processors"
