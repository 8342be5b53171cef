"""Migration operations that keep rows on SQLite.

Tortoise changes a column on SQLite by rebuilding the table: create a copy, move the rows,
DROP the old table, rename the copy. With foreign keys on (as OCIS connects), that DROP
cascades: every row referring to the table (identities, sign-ins, notices of its users) is
deleted. These operations rebuild with foreign keys off, then check every reference still
holds. PostgreSQL alters columns in place and is unaffected.
"""

from __future__ import annotations

from typing import Any

from tortoise.migrations import operations as ops


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
