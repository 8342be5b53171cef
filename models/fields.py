"""The one encrypted field type for personal-data columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from tortoise.fields.base import Field

if TYPE_CHECKING:
    from tortoise.models import Model

    from models.crypto import DataCipher

# The instance attribute holding the data key its next write seals under (models.base.Entity).
SEALING_CIPHER = "_sealing_cipher"


def associated_data(table: str, column: str, pk: object) -> str:
    """What binds a ciphertext to its table, column and row."""
    return f"{table}/{column}/{pk}"


T_TEXT = TypeVar("T_TEXT", str, str | None)


class EncryptedField(Field[T_TEXT]):
    """A text value stored as AES-256-GCM ciphertext bound to its table, column and row.

    Values are sealed under the row's subject's data key when written through a model
    instance and opened when a row is loaded (see ``models.base.Entity``); query-level
    ``update()`` cannot bind the row and is refused.
    """

    SQL_TYPE = "TEXT"
    field_type = str
    indexable = False

    @overload
    def __init__(
        self: EncryptedField[str], *, null: Literal[False] = False, **kwargs: Any
    ) -> None: ...

    @overload
    def __init__(
        self: EncryptedField[str | None], *, null: Literal[True], **kwargs: Any
    ) -> None: ...

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def to_db_value(self, value: Any, instance: type[Model] | Model) -> str | None:
        if value is None:
            return None
        if isinstance(instance, type):
            raise TypeError("encrypted columns are written through a model instance only")
        cipher: DataCipher | None = instance.__dict__.get(SEALING_CIPHER)
        if cipher is None:
            raise RuntimeError(
                f"{type(instance).__name__} has no data key for this write: save it with"
                " save() or the model's bulk_create/bulk_update, which provision one"
            )
        column = self.source_field or self.model_field_name
        aad = associated_data(instance._meta.db_table, column, instance.pk)
        return cipher.seal(str(value), aad)
