"""Legal holds and legal disclosures (P13): what the law makes OCIS keep, and what it made
OCIS hand over."""

from __future__ import annotations

from uuid import UUID

from tortoise import fields

from models.base import Entity
from models.fields import EncryptedField
from models.users import User


class LegalHold(Entity):
    """A hold on a subject's data: while active (not lifted), erasure and retention skip it."""

    key_subject = ("subject_id",)

    subject: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="legal_holds", on_delete=fields.CASCADE
    )
    subject_id: UUID
    # Who requires it (a court, a regulator, the police): a body, not a person.
    authority = fields.CharField(max_length=200)
    # The authority's case or order number and the why: sealed, they may say much of the person.
    reference = EncryptedField()
    reason = EncryptedField()
    # When staff must look again at whether the hold is still needed.
    review_on = fields.DateField()
    placed_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="legal_holds_placed", null=True, on_delete=fields.SET_NULL
    )
    placed_by_id: UUID | None
    placed_at = fields.DatetimeField()
    lifted_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="legal_holds_lifted", null=True, on_delete=fields.SET_NULL
    )
    lifted_by_id: UUID | None
    lifted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "legal_holds"
        indexes = (("subject_id", "lifted_at"),)


class LegalDisclosure(Entity):
    """Personal data handed to an authority because the law required it."""

    # Its subject sees it in their export from ``subject_may_be_told_on`` (the authority may
    # forbid telling them sooner).

    key_subject = ("subject_id",)

    subject: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="legal_disclosures", on_delete=fields.CASCADE
    )
    subject_id: UUID
    authority = fields.CharField(max_length=200)
    # The provision or order that required it, sealed like the hold's reason.
    legal_basis = EncryptedField()
    data_categories = fields.JSONField[list[str]](default=list)
    disclosed_on = fields.DateField()
    # Null: the subject may be told at once.
    subject_may_be_told_on = fields.DateField(null=True)
    recorded_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "ocis.User", related_name="legal_disclosures_recorded", null=True, on_delete=fields.SET_NULL
    )
    recorded_by_id: UUID | None
    recorded_at = fields.DatetimeField()

    class Meta:
        table = "legal_disclosures"
