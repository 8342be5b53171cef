"""Migration operations that keep rows on SQLite.

Tortoise changes a column on SQLite by rebuilding the table: create a copy, move the rows,
DROP the old table, rename the copy. With foreign keys on (as OCIS connects), that DROP
cascades: every row referring to the table (identities, sign-ins, notices of its users) is
deleted. These operations rebuild with foreign keys off, then check every reference still
holds. PostgreSQL alters columns in place and is unaffected.

``seal_plaintext`` and ``open_ciphertext`` convert a column's existing rows when it becomes an
EncryptedField (or stops being one), in batches of plain SQL: the models of the day may differ.
``name_walk_ins`` does the same for the walk-in requesters of migration 0010.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from tortoise.migrations import operations as ops

import settings as config
from models import crypto
from models.crypto import DataCipher
from models.fields import associated_data
from models.keys import KeyState


class ForeignKeyProblem(RuntimeError):
    """After a rebuild some row refers to one that is not there."""


class AlterFieldKeepingRows(ops.AlterField):
    # PRAGMA foreign_keys is ignored inside a transaction, so this runs outside one; the
    # migration that uses it sets atomic = False.
    atomic = False

    async def database_forward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None
    ) -> None:
        await _with_foreign_keys_off(
            state_editor, super().database_forward(app_label, old_state, new_state, state_editor)
        )

    async def database_backward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None
    ) -> None:
        await _with_foreign_keys_off(
            state_editor, super().database_backward(app_label, old_state, new_state, state_editor)
        )


class AddFieldKeepingRows(ops.AddField):
    """AddField whose undoing (a column dropped: a rebuild on SQLite) keeps the rows that refer
    to the table. The migration that uses it sets atomic = False."""

    atomic = False

    async def database_backward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None
    ) -> None:
        await _with_foreign_keys_off(
            state_editor, super().database_backward(app_label, old_state, new_state, state_editor)
        )


class AddNullableColumn(ops.AddField):
    """AddField of a nullable column whose undoing on SQLite drops the column in place
    (SQLite 3.35+), where Tortoise would rebuild the table and lose the indexes that later
    migrations' undoing then drops."""

    def __init__(self, *, table: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table

    async def database_backward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None
    ) -> None:
        if state_editor is not None and state_editor.client.capabilities.dialect == "sqlite":
            await state_editor.client.execute_script(
                f'ALTER TABLE "{self.table}" DROP COLUMN "{self.name}"'
            )
            return
        await super().database_backward(app_label, old_state, new_state, state_editor)


class DescribeEnumValues(ops.AlterField):
    """AlterField of an enum column that only gained values: its description changes, which
    SQLite does not store, so there the database is left as it is (Tortoise would rebuild the
    table and lose the indexes that later migrations' undoing drops). PostgreSQL gets the
    column's new comment."""

    async def database_forward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None
    ) -> None:
        if state_editor is not None and state_editor.client.capabilities.dialect == "sqlite":
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None
    ) -> None:
        if state_editor is not None and state_editor.client.capabilities.dialect == "sqlite":
            return
        await super().database_backward(app_label, old_state, new_state, state_editor)


async def _with_foreign_keys_off(state_editor: Any, change: Any) -> None:
    if state_editor is None or state_editor.client.capabilities.dialect != "sqlite":
        await change
        return
    client = state_editor.client
    await client.execute_script("PRAGMA foreign_keys = OFF")
    try:
        await change
        _, problems = await client.execute_query("PRAGMA foreign_key_check")
        if problems:
            raise ForeignKeyProblem(f"{len(problems)} rows lost their referenced row")
    finally:
        await client.execute_script("PRAGMA foreign_keys = ON")


BATCH = 500


class AddFieldFillingRows(ops.AddField):
    """AddField whose column default, in the database, fills the rows already there.

    A plain AddField adds a NOT NULL column without a database default, which both backends
    refuse on a table with rows; an UPDATE afterwards would also be refused by append-only tables.
    """

    def __init__(
        self, model_name: str, name: str, field: Any, *, table: str, column_sql: str
    ) -> None:
        super().__init__(model_name=model_name, name=name, field=field)
        self.table = table
        self.column_sql = column_sql

    async def database_forward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None
    ) -> None:
        if state_editor:
            await state_editor.client.execute_script(
                f'ALTER TABLE "{self.table}" ADD COLUMN {self.column_sql}'
            )


class AddColumnInPlace(AddFieldFillingRows):
    """AddFieldFillingRows whose undoing drops the column in place on both backends (SQLite
    3.35+), where Tortoise would rebuild the table on SQLite and lose the indexes that earlier
    migrations' undoing then drops. The column must not be in an index of its own."""

    async def database_backward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None
    ) -> None:
        if state_editor:
            await state_editor.client.execute_script(
                f'ALTER TABLE "{self.table}" DROP COLUMN "{self.name}"'
            )


def _keyring_ready() -> None:
    """Migrations run before the app has its keys: read them as the app would."""
    try:
        crypto.keyring()
    except RuntimeError:
        settings = config.from_environ()
        crypto.configure(settings.master_key, settings.previous_master_keys)


def _placeholder(client: Any, position: int) -> str:
    return f"${position}" if client.capabilities.dialect == "postgres" else "?"


async def _rows(client: Any, table: str, columns: list[str]) -> AsyncIterator[list[Any]]:
    """All rows of a table, a batch at a time, in id order."""
    names = ", ".join(f'"{column}"' for column in ["id", *columns])
    last: str | None = None
    while True:
        after = "" if last is None else f'WHERE "id" > {_placeholder(client, 1)} '
        _, batch = await client.execute_query(
            f'SELECT {names} FROM "{table}" {after}ORDER BY "id" LIMIT {BATCH}',  # noqa: S608
            [] if last is None else [last],
        )
        if not batch:
            return
        yield [dict(row) for row in batch]
        last = str(batch[-1]["id"])


async def _write(client: Any, table: str, pk: object, values: dict[str, str]) -> None:
    sets = ", ".join(
        f'"{column}" = {_placeholder(client, i)}' for i, column in enumerate(values, 1)
    )
    where = _placeholder(client, len(values) + 1)
    await client.execute_query(
        f'UPDATE "{table}" SET {sets} WHERE "id" = {where}',  # noqa: S608
        [*values.values(), str(pk)],
    )


async def _sealing_cipher(client: Any, subject: UUID) -> DataCipher:
    """The subject's active data key, created as models.keys would when there is none (the
    models are not set up while migrating, so this is plain SQL)."""
    p = _placeholder
    _, rows = await client.execute_query(
        f'SELECT "id", "state", "version", "wrapped_key", "kek_id" FROM "data_keys"'  # noqa: S608
        f' WHERE "purpose" = {p(client, 1)} AND "subject_id" = {p(client, 2)}',
        [crypto.KeyPurpose.DATA.value, str(subject)],
    )
    active = [dict(r) for r in rows if r["state"] == KeyState.ACTIVE.value and r["wrapped_key"]]
    if active:
        newest = max(active, key=lambda r: (r["version"], r["id"]))
        return crypto.keyring().open_data_key(
            newest["id"], subject, newest["wrapped_key"], newest["kek_id"]
        )
    cipher, wrapped = crypto.keyring().new_data_key(subject)
    now = datetime.now(UTC)
    values = [
        wrapped.key_id,
        crypto.KeyPurpose.DATA.value,
        str(subject),
        max((r["version"] for r in rows), default=0) + 1,
        KeyState.ACTIVE.value,
        wrapped.wrapped_key,
        wrapped.kek_id,
        now,
        now,
    ]
    places = ", ".join(p(client, i) for i in range(1, len(values) + 1))
    await client.execute_query(
        'INSERT INTO "data_keys" ("id", "purpose", "subject_id", "version", "state",'  # noqa: S608
        f' "wrapped_key", "kek_id", "created_at", "updated_at") VALUES ({places})',
        values,
    )
    return cipher


async def _opening_cipher(client: Any, key_id: str) -> DataCipher:
    _, rows = await client.execute_query(
        'SELECT "subject_id", "wrapped_key", "kek_id" FROM "data_keys"'  # noqa: S608
        f' WHERE "id" = {_placeholder(client, 1)}',
        [key_id],
    )
    if not rows or not rows[0]["wrapped_key"]:
        raise crypto.DecryptionError(f"data key {key_id} is not available")
    row = dict(rows[0])
    return crypto.keyring().open_data_key(
        key_id, UUID(str(row["subject_id"])), row["wrapped_key"], row["kek_id"]
    )


def _is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(f"{crypto.FORMAT}:")


async def seal_plaintext(client: Any, table: str, subject: str, columns: list[str]) -> None:
    """Encrypt the values of these columns still in plaintext, each under its row's subject's
    data key and bound to its table, column and row (as EncryptedField writes them)."""
    ready = False
    async for batch in _rows(client, table, [subject, *columns]):
        plain = [
            r for r in batch if any(r[c] is not None and not _is_sealed(r[c]) for c in columns)
        ]
        if not plain:
            continue
        if not ready:
            _keyring_ready()
            ready = True
        for row in plain:
            cipher = await _sealing_cipher(client, UUID(str(row[subject])))
            sealed = {
                column: cipher.seal(str(row[column]), associated_data(table, column, row["id"]))
                for column in columns
                if row[column] is not None and not _is_sealed(row[column])
            }
            await _write(client, table, row["id"], sealed)


async def open_ciphertext(client: Any, table: str, columns: list[str]) -> None:
    """Undo seal_plaintext: write these columns' values back in plaintext."""
    _keyring_ready()
    async for batch in _rows(client, table, columns):
        for row in batch:
            opened: dict[str, str] = {}
            for column in columns:
                value = row[column]
                if not _is_sealed(value):
                    continue
                cipher = await _opening_cipher(client, crypto.key_id_of(value))
                opened[column] = cipher.open(value, associated_data(table, column, row["id"]))
            if opened:
                await _write(client, table, row["id"], opened)


async def name_walk_ins(client: Any) -> None:
    """Give every email-only ticket its walk-in requester: one per email blind index, holding the
    address and name of its oldest ticket, sealed under the walk-in's own data key."""
    named: dict[str, str] = {}
    _, existing = await client.execute_query('SELECT "id", "email_index" FROM "walk_in_requesters"')
    named.update({str(row["email_index"]): str(row["id"]) for row in existing})
    columns = ["requester_id", "walk_in_id", "requester_email_index", "requester_email"]
    waiting: list[dict[str, Any]] = []
    async for batch in _rows(client, "tickets", [*columns, "requester_name", "created_at"]):
        waiting.extend(
            row
            for row in batch
            if row["requester_id"] is None
            and row["walk_in_id"] is None
            and row["requester_email_index"] is not None
            and row["requester_email"] is not None
        )
    waiting.sort(key=lambda row: (str(row["created_at"]), str(row["id"])))
    if waiting:
        _keyring_ready()
    for row in waiting:
        index = str(row["requester_email_index"])
        if index not in named:
            named[index] = await _new_walk_in(client, row)
        await _write(client, "tickets", row["id"], {"walk_in_id": named[index]})


async def _new_walk_in(client: Any, ticket: dict[str, Any]) -> str:
    walk_in = uuid4()
    cipher = await _sealing_cipher(client, walk_in)
    values: dict[str, Any] = {"id": str(walk_in)}
    for column in ("email", "name"):
        sealed = ticket[f"requester_{column}"]
        if sealed is None:
            continue
        plain = (
            (await _opening_cipher(client, crypto.key_id_of(sealed))).open(
                sealed, associated_data("tickets", f"requester_{column}", ticket["id"])
            )
            if _is_sealed(sealed)
            else str(sealed)
        )
        values[column] = cipher.seal(plain, associated_data("walk_in_requesters", column, walk_in))
    values["email_index"] = str(ticket["requester_email_index"])
    values["created_at"] = ticket["created_at"]
    names = ", ".join(f'"{column}"' for column in values)
    places = ", ".join(_placeholder(client, i) for i in range(1, len(values) + 1))
    await client.execute_query(
        f'INSERT INTO "walk_in_requesters" ({names}) VALUES ({places})',  # noqa: S608
        list(values.values()),
    )
    return str(walk_in)
