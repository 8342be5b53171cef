"""Rows read without ORM instances: the compiled plans' hot reads (schema/plan.py).

`fetch_rows(query)` runs a QuerySet's own SQL (the scoping, filters, order and limit exactly as
the ORM would send them) and answers each record as a row of a slotted class made for its
model: every column converted by the model's own field (so each value reads as the ORM reads
it), each encrypted column parsed as it arrives (as the ORM parses it) and opened when first
read. Data keys are resolved as the rows arrive, from the process's cache or in one query for
the whole batch (`models.keys.load_ciphers`); a destroyed key reads as None, as a shredded ORM
field does.

A row reads like its model and is named like it (cursors name the kind of row), but it is no
model: it has no methods, and is never saved. Tortoise stays for every write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.queryset import QuerySet

from models import crypto, keys
from models.base import Entity
from models.crypto import DataCipher
from models.fields import associated_data

M = TypeVar("M", bound=Entity)
ROW_OF = "__row_of__"


class _Pending(tuple[DataCipher, bytes, str, str, object]):
    """An encrypted value whose key is bound, not yet opened: (cipher, nonce | sealed bytes,
    table, column, row id). What binds it to its table, column and row is spelled out only
    when it is opened: most of a row's sealed columns are never read. A tuple, so that the
    hundreds a page holds are made without a Python call each."""

    __slots__ = ()

    def open(self) -> str:
        cipher, raw, table, column, row_id = self
        return cipher.open_parsed(raw, associated_data(table, column, row_id))


class _Opened:
    """An encrypted column of a row: opened on its first read, then kept."""

    __slots__ = ("name", "slot")

    def __init__(self, name: str, slot: Any) -> None:
        self.name = name
        self.slot = slot  # the member descriptor of the slot that holds the value

    def __get__(self, row: object, owner: type | None = None) -> Any:
        if row is None:
            return self
        value = self.slot.__get__(row, owner)
        if type(value) is _Pending:
            value = value.open()
            self.slot.__set__(row, value)
        return value


class _Layout:
    """How a model's records become rows: each column's converter and the encrypted ones."""

    __slots__ = ("build", "encrypted", "fields", "model", "plain", "related", "row", "table")

    def __init__(self, model: type[Entity]) -> None:
        meta = model._meta
        self.model = model
        # Tortoise's own lists, refilled as it starts for the backend in use: a process that
        # starts it again on another backend gets a new layout.
        self.fields = _conversions(model)
        self.table = meta.db_table
        encrypted = dict(model.encrypted_columns())  # attribute -> column
        self.encrypted = [
            (attribute, column, f"_sealed_{attribute}") for attribute, column in encrypted.items()
        ]
        plain: list[tuple[str, str, Callable[[Any], Any] | None]] = []
        for key, attribute, _ in meta.db_native_fields:
            if attribute not in encrypted:
                plain.append((key, attribute, None))
        for key, attribute, field in meta.db_default_fields:
            if attribute not in encrypted:
                plain.append((key, attribute, _default(field.field_type)))
        for key, attribute, field in meta.db_complex_fields:
            if attribute not in encrypted:
                plain.append((key, attribute, field.to_python_value))
        self.plain = plain
        self.related = model.related_subject_attributes()
        slots = [attribute for _, attribute, _ in plain] + [slot for _, _, slot in self.encrypted]
        row: type = type(model.__name__, (), {"__slots__": tuple(slots), ROW_OF: model})
        for attribute, _, slot in self.encrypted:
            setattr(row, attribute, _Opened(attribute, row.__dict__[slot]))
        row.__doc__ = f"A {model.__name__} row for reading (models/rows.py)."
        self.row = row
        self.build = _builder(row, self.table, plain, self.encrypted)


# Values whose data key was not cached when they arrived: row, slot, column, key id, and the
# nonce | sealed bytes, bound once the batch's missing keys are loaded.
Sealed = list[tuple[Any, str, str, str, bytes]]
# Each data key a batch names: whether it is known, and its cipher (None once destroyed).
Bound = dict[str, tuple[bool, DataCipher | None]]


def _builder(
    row: type,
    table: str,
    plain: Sequence[tuple[str, str, Callable[[Any], Any] | None]],
    encrypted: Sequence[tuple[str, str, str]],
) -> Callable[[Mapping[str, Any], Sealed, Bound], Any]:
    """`build(record, sealed, bound)`: the record as a row of `row`, written out as
    straight-line code once per layout (as dataclasses write their __init__): a loop over the
    columns with a setattr call each was most of what reading a page cost.

    Each encrypted column's ciphertext is parsed as it arrives, as the ORM parses it (a
    malformed one fails the read), and bound to its key when the key is cached (`bound`
    remembers each key the batch named); else it goes to `sealed` and its slot holds None
    until the batch's missing keys are loaded."""
    names = [attribute for _, attribute, _ in plain] + [slot for _, _, slot in encrypted]
    if not all(name.isidentifier() for name in names):  # pragma: no cover - Tortoise's names
        raise ValueError("a column's attribute is not an identifier")
    scope: dict[str, Any] = {
        "new": object.__new__,
        "Row": row,
        "parse": crypto.parse,
        "lookup": keys.cached_cipher,
        "Pending": _Pending,
    }
    lines = ["def build(record, sealed, bound):", "    row = new(Row)"]
    for number, (key, attribute, convert) in enumerate(plain):
        if convert is None:
            lines.append(f"    row.{attribute} = record[{key!r}]")
        else:
            scope[f"convert_{number}"] = convert
            lines.append(f"    row.{attribute} = convert_{number}(record[{key!r}])")
    for _, column, slot in encrypted:
        lines += [
            f"    value = record[{column!r}]",
            "    if value is None:",
            f"        row.{slot} = None",
            "    else:",
            "        key_id, raw = parse(value)",
            "        entry = bound.get(key_id)",
            "        if entry is None:",
            "            entry = bound[key_id] = lookup(key_id)",
            "        if entry[0]:",
            "            cipher = entry[1]",
            f"            row.{slot} = None if cipher is None else"
            f" Pending((cipher, raw, {table!r}, {column!r}, row.id))",
            "        else:",
            f"            row.{slot} = None",
            f"            sealed.append((row, {slot!r}, {column!r}, key_id, raw))",
        ]
    lines.append("    return row")
    exec("\n".join(lines), scope)  # noqa: S102 - our own names, checked above
    build: Callable[[Mapping[str, Any], Sealed, Bound], Any] = scope["build"]
    return build


def _default(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return None if value is None else kind(value)

    return convert


_LAYOUTS: dict[type[Entity], _Layout] = {}


def _layout(model: type[Entity]) -> _Layout:
    layout = _LAYOUTS.get(model)
    if layout is None or layout.fields != _conversions(model):
        layout = _LAYOUTS[model] = _Layout(model)
    return layout


def _conversions(model: type[Entity]) -> tuple[object, ...]:
    meta = model._meta
    return (*meta.db_native_fields, None, *meta.db_default_fields, None, *meta.db_complex_fields)


def model_of(row: object) -> type:
    """The model a row reads as (an ORM instance's own class)."""
    kind = type(row)
    model: type = getattr(kind, ROW_OF, kind)
    return model


async def rows_of(
    model: type[M], db: BaseDBAsyncClient, records: Sequence[Mapping[str, Any]]
) -> list[M]:
    """Records of the model's table (every column, as the driver answers them) as rows."""
    layout = _layout(model)
    build, table = layout.build, layout.table
    sealed: Sealed = []
    bound: Bound = {}
    rows = [build(record, sealed, bound) for record in records]
    if sealed:
        missing = {key_id for *_, key_id, _ in sealed}
        related = {
            value if isinstance(value, UUID) else UUID(str(value))
            for row in rows
            for value in (getattr(row, name, None) for name in layout.related)
            if value is not None
        }
        await keys.load_ciphers(missing, db, related)
        setter = object.__setattr__
        loaded = {key_id: keys.cached_cipher(key_id, stale_ok=True) for key_id in missing}
        for row, slot, column, key_id, raw in sealed:
            known, cipher = loaded[key_id]
            if not known:
                raise crypto.DecryptionError(f"unknown data key {key_id}")
            if cipher is not None:
                setter(row, slot, _Pending((cipher, raw, table, column, row.id)))
    return cast("list[M]", rows)


async def fetch_rows(query: QuerySet[M]) -> list[M]:
    """The QuerySet's rows, read as rows (its own SQL, sent as the ORM would send it)."""
    query._choose_db_if_not_chosen()
    query._make_query()
    if query._prefetch_map or query._select_related or query._annotations:
        raise ValueError("fetch_rows reads plain QuerySets (no prefetch, joins or annotations)")
    db = query._db
    _, records = await db.execute_query(*query.query.get_parameterized_sql())
    return await rows_of(query.model, db, records)


def columns_of(model: type[Entity]) -> tuple[str, ...]:
    """Every column of the model's table, as `rows_of` needs them selected."""
    layout = _layout(model)
    return tuple(key for key, _, _ in layout.plain) + tuple(
        column for _, column, _ in layout.encrypted
    )
