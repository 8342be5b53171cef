"""Accounts, teams, external identities, sign-in sessions and payment methods."""

from __future__ import annotations

from uuid import UUID

from tortoise import fields

from models import crypto
from models.base import Entity
from models.enums import AccountTokenPurpose, UserStatus
from models.fields import EncryptedField


class Team(Entity):
    # Unique among all teams, archived ones too: an old name keeps meaning one team.
    name = fields.CharField(max_length=100, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # An archived team takes no new members, invitations or tickets.
    archived_at = fields.DatetimeField(null=True)

    class Meta:
        table = "teams"


class User(Entity):
    name = EncryptedField()
    email = EncryptedField()
    # Null when the email must not find this account (an unverified provider email).
    email_index = fields.CharField(max_length=64, unique=True, null=True)
    # When its owner proved control of the address (a mailed link, a provider that vouched for
    # it, an administrator who typed it); until then it gets no mail but the verification.
    email_verified_at = fields.DatetimeField(null=True)
    phone = EncryptedField(null=True)
    username = EncryptedField(null=True)
    username_index = fields.CharField(max_length=64, unique=True, null=True)
    password_hash = fields.CharField(max_length=255, null=True)
    date_of_birth = EncryptedField(null=True)
    locale = EncryptedField(default="en")
    time_zone = EncryptedField(default="UTC")
    roles = fields.JSONField[list[str]](default=list)
    status = fields.CharEnumField(UserStatus, default=UserStatus.ACTIVE, max_length=16)
    # While disabled: the status to return to when enabled (a restriction must survive).
    status_before_disable = fields.CharEnumField(UserStatus, max_length=16, null=True)
    source = fields.CharField(max_length=100, default="self")
    team: fields.ForeignKeyNullableRelation[Team] = fields.ForeignKeyField(
        "ocis.Team", related_name="members", null=True, on_delete=fields.SET_NULL
    )
    team_id: UUID | None
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users"

    def set_email(self, email: str) -> None:
        self.email = email.strip()
        self.email_index = crypto.blind_index(email)

    def set_username(self, username: str | None) -> None:
        self.username = username.strip() if username else None
        self.username_index = crypto.blind_index(username) if username else None


class AccountToken(Entity):
    """A single-use mailed link: verify an address, reset a password, confirm a new address."""

    # Only the token's hash is kept; the token itself is in the mail alone.
    key_subject = ("user_id",)

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="account_tokens", on_delete=fields.CASCADE
    )
    user_id: UUID
    purpose = fields.CharEnumField(AccountTokenPurpose, max_length=16)
    token_hash = fields.CharField(max_length=64, unique=True)
    # An email change: the address that takes effect once its owner follows the link.
    new_email = EncryptedField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "account_tokens"


class ExternalIdentity(Entity):
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="identities", on_delete=fields.CASCADE
    )
    user_id: UUID
    issuer = fields.CharField(max_length=255)
    subject = fields.CharField(max_length=255)
    tenant_id = fields.CharField(max_length=64, default="")
    provider = fields.CharField(max_length=50)
    email = EncryptedField(null=True)
    email_verified = fields.BooleanField(default=False)
    linked_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "external_identities"
        unique_together = (("issuer", "subject", "tenant_id"),)


class SignInSession(Entity):
    """One sign-in and the metadata collected with it (P04)."""

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="sign_ins", on_delete=fields.CASCADE
    )
    user_id: UUID
    token_hash = fields.CharField(max_length=64, unique=True)
    method = fields.CharField(max_length=30, default="password")
    ip_address = EncryptedField(null=True)
    browser = EncryptedField(null=True)
    browser_version = EncryptedField(null=True)
    os = EncryptedField(null=True)
    device_type = EncryptedField(null=True)
    time_zone = EncryptedField(null=True)
    referrer = EncryptedField(null=True)
    location = EncryptedField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sign_in_sessions"


class PaymentMethod(Entity):
    """A card known only by its gateway token, brand, last four digits and expiry (P03)."""

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="payment_methods", on_delete=fields.CASCADE
    )
    user_id: UUID
    gateway_token = EncryptedField()
    brand = EncryptedField()
    last4 = EncryptedField()
    exp_month = fields.SmallIntField()
    exp_year = fields.SmallIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment_methods"
