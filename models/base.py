"""The base of every OCIS table: a client-generated UUID key and transparent decryption."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from tortoise import fields
from tortoise.models import Model

from models import crypto
from models.fields import EncryptedField, associated_data


class Entity(Model):
    id = fields.UUIDField(primary_key=True)

    _encrypted_columns: ClassVar[tuple[tuple[str, str], ...] | None] = None

    class Meta:
        abstract = True

    @classmethod
    def encrypted_columns(cls) -> tuple[tuple[str, str], ...]:
        """(attribute, column) pairs of this model's encrypted fields."""
        if cls.__dict__.get("_encrypted_columns") is None:
            cls._encrypted_columns = tuple(
                (name, field.source_field or name)
                for name, field in cls._meta.fields_map.items()
                if isinstance(field, EncryptedField)
            )
        return cls._encrypted_columns or ()

    @classmethod
    def _init_from_db(cls, **kwargs: Any) -> Self:
        instance = super()._init_from_db(**kwargs)
        ring = crypto.keyring()
        table = cls._meta.db_table
        for attribute, column in cls.encrypted_columns():
            sealed = instance.__dict__.get(attribute)
            if sealed is not None:
                opened = ring.open(sealed, associated_data(table, column, instance.pk))
                object.__setattr__(instance, attribute, opened)
        return instance
