"""The base of every OCIS table: a client-generated UUID key and envelope-encrypted columns.

A row's encrypted values are sealed under the data key of its subject (``key_subject``).
Writes need that key before Tortoise's synchronous ``to_db_value`` runs, so ``save`` and the
bulk paths provision it first. Reads parse each ciphertext once as rows load and open it when
the attribute is first read (a page loads whole rows, a query selects a few fields), cached on
the instance; keys not cached are loaded after the query has returned, in one query for the
batch. A value whose key was destroyed reads as ``None``; one that fails to authenticate raises
``DecryptionError`` when read.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import OperationalError
from tortoise.manager import Manager
from tortoise.models import Model
from tortoise.queryset import BulkCreateQuery, BulkUpdateQuery, QuerySet

from models import crypto, keys
from models.fields import SEALING_CIPHER, EncryptedField, associated_data

MODEL = TypeVar("MODEL", bound=Model)

# Whose data a row holds, by model: the first of these attributes that is set names the subject
# whose data key seals the row. They belong on the models as ``key_subject`` class variables;
# until then (users.py, tickets.py and privacy.py are outside this change) they live here.
KEY_SUBJECTS: dict[str, tuple[str, ...]] = {
    "User": ("id",),
    # An email-only requester has no account: their walk-in row, or (before migration 0010
    # named one) the ticket itself.
    "Ticket": ("requester_id", "walk_in_id", "id"),
    "WalkInRequester": ("id",),
    "TicketMessage": ("author_id", "ticket_id"),
    "ExternalIdentity": ("user_id",),
    "SignInSession": ("user_id",),
    "PaymentMethod": ("user_id",),
    # An anonymous visitor's consent is sealed under the visitor's own key (its random id is a
    # UUID), erasable apart from any account; merged into an account, it is re-sealed under it.
    "ConsentEntry": ("user_id", "visitor_id", "id"),
    "PrivacyRequest": ("subject_id",),
    # A mail to an address without an account is its own subject.
    "Notice": ("user_id", "id"),
}
SHREDDED = "_shredded_fields"


@dataclass
class _Deferred:
    """Values of rows loaded by one query whose data keys were not cached."""

    values: list[tuple[Entity, str, str, str, bytes]] = field(default_factory=list)
    key_ids: set[str] = field(default_factory=set)
    related: set[UUID] = field(default_factory=set)

    async def open(self, db: BaseDBAsyncClient) -> None:
        await keys.load_ciphers(self.key_ids, db, self.related)
        for instance, attribute, aad, key_id, raw in self.values:
            instance._keep_sealed(attribute, aad, key_id, raw, final=True)


_deferred: ContextVar[_Deferred | None] = ContextVar("ocis_deferred_values", default=None)


@dataclass(frozen=True, slots=True)
class _Sealed:
    """A loaded value whose key is known, parsed and not yet opened (see ``OpenedOnRead``)."""

    cipher: crypto.DataCipher
    raw: bytes
    aad: str


class OpenedOnRead:
    """The attribute of an encrypted field: its value is opened when first read, then kept.

    A data descriptor, so that it sees every read; the value lives in the instance's
    ``__dict__`` under the same name, where Tortoise sets it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        values = instance.__dict__
        try:
            value = values[self.name]
        except KeyError:
            raise AttributeError(self.name) from None
        if type(value) is _Sealed:
            value = values[self.name] = value.cipher.open_parsed(value.raw, value.aad)
        return value

    def __set__(self, instance: object, value: Any) -> None:
        instance.__dict__[self.name] = value


class KeyedQuerySet(QuerySet[MODEL]):
    """A QuerySet that opens encrypted values after the rows arrive, one key query per batch."""

    async def _execute(self) -> list[MODEL]:
        batch = _Deferred()
        token = _deferred.set(batch)
        try:
            result = await super()._execute()
        finally:
            _deferred.reset(token)
        if batch.values:
            await batch.open(self._db)
        return result

    def bulk_create(
        self,
        objects: Iterable[MODEL],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_fields: Iterable[str] | None = None,
        on_conflict: Iterable[str] | None = None,
    ) -> BulkCreateQuery[MODEL]:
        objects = list(objects)
        super().bulk_create(objects, batch_size, ignore_conflicts, update_fields, on_conflict)
        return KeyedBulkCreateQuery(
            db=self._db,
            model=self.model,
            objects=objects,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_fields=update_fields,
            on_conflict=on_conflict,
        )

    def bulk_update(
        self, objects: Iterable[MODEL], fields: Iterable[str], batch_size: int | None = None
    ) -> BulkUpdateQuery[MODEL]:
        objects, fields = list(objects), list(fields)
        super().bulk_update(objects, fields, batch_size)
        return KeyedBulkUpdateQuery(
            db=self._db,
            model=self.model,
            q_objects=self._q_objects,
            annotations=self._annotations,
            custom_filters=self._custom_filters,
            limit=self._limit,
            orderings=self._orderings,
            objects=objects,
            fields=fields,
            batch_size=batch_size,
        )


class KeyedBulkCreateQuery(BulkCreateQuery[MODEL]):
    __slots__ = ()

    async def _execute_many(
        self,
        insert_sql: str,
        insert_sql_all: str,
        effective_columns: list[str],
        effective_columns_all: list[str],
    ) -> None:
        await provision_data_keys(self._objects, self._db, None)
        await super()._execute_many(
            insert_sql, insert_sql_all, effective_columns, effective_columns_all
        )


class KeyedBulkUpdateQuery(BulkUpdateQuery[MODEL]):
    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, int]:
        return self._provisioned().__await__()

    async def _provisioned(self) -> int:
        self._choose_db_if_not_chosen(True)
        await provision_data_keys(self._objects, self._db, self.fields)
        return await self._execute_many(self._make_queries())


class KeyedManager(Manager):
    def get_queryset(self) -> QuerySet[Any]:
        return KeyedQuerySet(self._model)


async def provision_data_keys(
    instances: Iterable[Model], db: BaseDBAsyncClient, attributes: Iterable[str] | None
) -> None:
    """Pin the current data key of each instance's subject, for the encrypted values written."""
    written = None if attributes is None else set(attributes)
    needing: list[tuple[Entity, UUID]] = []
    for instance in instances:
        if not isinstance(instance, Entity):
            continue
        if any(
            getattr(instance, attribute) is not None
            for attribute, _ in instance.encrypted_columns()
            if written is None or attribute in written
        ):
            needing.append((instance, instance.data_subject()))
    if not needing:
        return
    ciphers = await keys.sealing_ciphers({subject for _, subject in needing}, db)
    for instance, subject in needing:
        object.__setattr__(instance, SEALING_CIPHER, ciphers[subject])


class Entity(Model):
    id = fields.UUIDField(primary_key=True)

    key_subject: ClassVar[tuple[str, ...]] = ("id",)
    _encrypted_columns: ClassVar[tuple[tuple[str, str], ...] | None] = None
    _related_subjects: ClassVar[tuple[str, ...] | None] = None

    class Meta:
        abstract = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Tortoise reads the manager from each model's own Meta; every Entity gets the keyed one.
        cls._meta.manager = KeyedManager()
        if "key_subject" not in cls.__dict__:
            declared = KEY_SUBJECTS.get(cls.__name__)
            if declared is None and any(
                isinstance(f, EncryptedField) for f in cls._meta.fields_map.values()
            ):
                raise TypeError(f"{cls.__name__} has encrypted fields but no key_subject")
            cls.key_subject = declared or ("id",)
        for name, column in cls._meta.fields_map.items():
            if isinstance(column, EncryptedField):
                setattr(cls, name, OpenedOnRead(name))

    @classmethod
    def encrypted_columns(cls) -> tuple[tuple[str, str], ...]:
        """(attribute, column) pairs of this model's encrypted fields."""
        if cls.__dict__.get("_encrypted_columns") is None:
            cls._encrypted_columns = tuple(
                (name, f.source_field or name)
                for name, f in cls._meta.fields_map.items()
                if isinstance(f, EncryptedField)
            )
        return cls._encrypted_columns or ()

    @classmethod
    def related_subject_attributes(cls) -> tuple[str, ...]:
        """This row's subject and the rows with encrypted data it points at (their keys are
        the ones a request reading this row is likely to need next)."""
        if cls.__dict__.get("_related_subjects") is None:
            names = list(cls.key_subject)
            for name in sorted(cls._meta.fk_fields):
                relation = cls._meta.fields_map[name]
                target = getattr(relation, "related_model", None)
                if isinstance(target, type) and issubclass(target, Entity):
                    if target.encrypted_columns():
                        names.append(relation.source_field or f"{name}_id")
            cls._related_subjects = tuple(dict.fromkeys(names))
        return cls._related_subjects or ()

    def data_subject(self) -> UUID:
        """Whose data key seals this row's values."""
        for attribute in self.key_subject:
            value = getattr(self, attribute, None)
            if value is not None:
                return value if isinstance(value, UUID) else UUID(str(value))
        raise ValueError(f"{type(self).__name__} {self.pk} has no data subject")

    @property
    def shredded_fields(self) -> frozenset[str]:
        """Encrypted attributes that read as None because their data key was destroyed."""
        return frozenset(self.__dict__.get(SHREDDED, ()))

    @classmethod
    def _init_from_db(cls, **kwargs: Any) -> Self:
        instance = super()._init_from_db(**kwargs)
        table = cls._meta.db_table
        for attribute, column in cls.encrypted_columns():
            sealed = instance.__dict__.get(attribute)
            if sealed is not None:
                aad = associated_data(table, column, instance.pk)
                key_id, raw = crypto.parse(sealed)
                instance._keep_sealed(attribute, aad, key_id, raw, final=False)
        return instance

    def _keep_sealed(
        self, attribute: str, aad: str, key_id: str, raw: bytes, *, final: bool
    ) -> None:
        known, cipher = keys.cached_cipher(key_id, stale_ok=final)
        if not known:
            if final:
                raise crypto.DecryptionError(f"unknown data key {key_id}")
            batch = _deferred.get()
            if batch is None:
                raise RuntimeError(
                    f"{type(self).__name__} rows must be read through its manager's QuerySet,"
                    " which loads their data keys"
                )
            batch.values.append((self, attribute, aad, key_id, raw))
            batch.key_ids.add(key_id)
            for name in self.related_subject_attributes():
                value = self.__dict__.get(name)
                if value is not None:
                    batch.related.add(value if isinstance(value, UUID) else UUID(str(value)))
            object.__setattr__(self, attribute, None)
        elif cipher is None:
            object.__setattr__(self, attribute, None)
            self.__dict__.setdefault(SHREDDED, set()).add(attribute)
        else:
            object.__setattr__(self, attribute, _Sealed(cipher, raw, aad))

    async def save(
        self,
        using_db: BaseDBAsyncClient | None = None,
        update_fields: Iterable[str] | None = None,
        force_create: bool = False,
        force_update: bool = False,
    ) -> None:
        db = using_db or self._choose_db(True)
        updating = self._saved_in_db and not force_create
        if update_fields is None and updating and self.__dict__.get(SHREDDED):
            # Keep the unreadable ciphertexts rather than overwrite them with NULL.
            unchanged = {name for name in self.__dict__[SHREDDED] if getattr(self, name) is None}
            update_fields = [
                name
                for name in self._meta.fields_db_projection
                if name != self._meta.pk_attr and name not in unchanged
            ]
        written = update_fields if update_fields is not None and not force_create else None
        await provision_data_keys([self], db, written)
        await super().save(db, update_fields, force_create, force_update)

    async def refresh_from_db(
        self, fields: Iterable[str] | None = None, using_db: BaseDBAsyncClient | None = None
    ) -> None:
        if not self._saved_in_db:
            raise OperationalError("Can't refresh unpersisted record")
        query = KeyedQuerySet(type(self)).using_db(using_db or self._choose_db())
        if fields:
            query = query.only(*fields)
        fresh = await query.get(pk=self.pk)
        for name in fields or self._meta.db_fields:
            setattr(self, name, getattr(fresh, name, None))
        self.__dict__.pop(SHREDDED, None)
        if fresh.shredded_fields:
            self.__dict__[SHREDDED] = set(fresh.shredded_fields)
