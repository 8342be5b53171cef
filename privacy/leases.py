"""Claiming due rows with a lease: the one mechanism behind every piece of durable work.

Mail delivery (privacy/mail.py), notices owed to everyone (privacy/fanout.py) and jobs
(privacy/jobs.py) keep their work as rows and hand it out here. A claim is one statement: it
picks due rows and marks them taken (a lease that runs out, an attempt counted) at once, so two
processes never take the same row. On PostgreSQL the pick is ``FOR UPDATE SKIP LOCKED``, so
concurrent claimers pass over each other's rows instead of waiting for them; on SQLite (the
embedded default, one process) the write lock serialises claims and ``UPDATE ... RETURNING``
answers what was taken.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from tortoise import Tortoise

_MARKER = re.compile(r":([a-z_][a-z0-9_]*)")


def backoff(attempt: int) -> timedelta:
    """30 s after the first failure, doubling, at most 6 hours."""
    return min(timedelta(seconds=30 * 2 ** (attempt - 1)), timedelta(hours=6))


@dataclass(frozen=True, slots=True)
class Queue:
    """A table whose rows are claimed: which are due, what taking one writes, in what order.

    ``due`` and ``take`` are SQL written here in the codebase with ``:name`` markers for values
    (bound as parameters, never spliced in); ``attempts`` is the column the claim counts up, if
    the queue counts attempts.
    """

    table: str
    due: str
    take: str
    order: str
    attempts: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    id: UUID
    attempt: int


def _bind(sql: str, values: Mapping[str, Any], postgres: bool) -> tuple[str, list[Any]]:
    bound: list[Any] = []

    def place(match: re.Match[str]) -> str:
        bound.append(values[match.group(1)])
        return f"${len(bound)}" if postgres else "?"

    return _MARKER.sub(place, sql), bound


async def claim(
    queue: Queue, *, limit: int, skip: Collection[UUID] = (), **values: Any
) -> list[Claimed]:
    """Take up to `limit` due rows of `queue` (none of `skip`); answer their ids and the attempt
    each claim counted. `values` fill the queue's markers."""
    connection = Tortoise.get_connection("default")
    postgres = connection.capabilities.dialect == "postgres"
    due = queue.due
    named = dict(values, limit=limit)
    if skip:
        markers = []
        for index, ident in enumerate(skip):
            named[f"skip_{index}"] = ident if postgres else str(ident)
            markers.append(f":skip_{index}")
        due = f'({due}) AND "id" NOT IN ({", ".join(markers)})'
    attempts = queue.attempts
    counted = f', "{attempts}"' if attempts else ""
    if postgres:
        sql = (
            f'WITH due AS (SELECT "id" FROM "{queue.table}" WHERE {due}'  # noqa: S608 - our SQL
            f" ORDER BY {queue.order} LIMIT :limit FOR UPDATE SKIP LOCKED)"
            f' UPDATE "{queue.table}" AS taken SET {queue.take} FROM due'
            f' WHERE taken."id" = due."id" RETURNING taken."id"{counted.replace(", ", ", taken.")}'
        )
    else:
        sql = (
            f'UPDATE "{queue.table}" SET {queue.take} WHERE "id" IN'  # noqa: S608 - our SQL
            f' (SELECT "id" FROM "{queue.table}" WHERE {due} ORDER BY {queue.order}'
            f' LIMIT :limit) RETURNING "id"{counted}'
        )
    statement, bound = _bind(sql, named, postgres)
    # Inside a transaction this runs on its connection: the claim commits or rolls back with it.
    _, rows = await connection.execute_query(statement, bound)
    return [Claimed(UUID(str(row["id"])), int(row[attempts]) if attempts else 0) for row in rows]
