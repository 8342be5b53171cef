"""Access and portability exports: the export's row, and its JSON in sealed parts."""

from __future__ import annotations

from uuid import UUID, uuid5

from tortoise import fields

from models.base import Entity
from models.enums import ExportStatus, PrivacyRequestKind
from models.fields import EncryptedField
from models.privacy import PrivacyRequest
from models.users import User


def part_id(export_id: UUID, index: int) -> UUID:
    """A part's key, derived from its export and position: the associated data of its
    ciphertext binds the row key, so a part moved to another export or index fails to open."""
    return uuid5(export_id, f"part/{index}")


class Export(Entity):
    """One export of a subject's data (access or portability), built by the privacy.export job."""

    key_subject = ("subject_id",)

    request: fields.ForeignKeyRelation[PrivacyRequest] = fields.ForeignKeyField(
        "ocis.PrivacyRequest", related_name="exports", on_delete=fields.CASCADE
    )
    request_id: UUID
    subject: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="exports", on_delete=fields.CASCADE
    )
    subject_id: UUID
    kind = fields.CharEnumField(PrivacyRequestKind, max_length=20)
    status = fields.CharEnumField(ExportStatus, default=ExportStatus.BUILDING, max_length=10)
    # The download link's secret is in the mail alone; this is its SHA-256.
    token_hash = fields.CharField(max_length=64, null=True, unique=True)
    part_count = fields.IntField(default=0)
    size_bytes = fields.BigIntField(default=0)
    downloads_left = fields.SmallIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    ready_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "exports"


class ExportPart(Entity):
    """One chunk of an export's JSON, sealed under its subject's data key."""

    key_subject = ("subject_id",)

    export: fields.ForeignKeyRelation[Export] = fields.ForeignKeyField(
        "ocis.Export", related_name="parts", on_delete=fields.CASCADE
    )
    export_id: UUID
    subject: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="export_parts", on_delete=fields.CASCADE
    )
    subject_id: UUID
    index = fields.IntField()
    data = EncryptedField()

    class Meta:
        table = "export_parts"
        unique_together = (("export_id", "index"),)
