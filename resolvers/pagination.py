"""Keyset pagination with opaque, authenticated cursors and a bounded page size.

A cursor is the row's position sealed with AES-SIV under a key derived from the master key and
bound to the kind of row it pages, so nothing inside is readable and a tampered cursor, or one
issued for another connection, is refused. AES-SIV is deterministic: one row's cursor is the
same string wherever it is issued (an edge's and the page's end cursor agree).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models import crypto
from resolvers.errors import InvalidInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


T = TypeVar("T")
M = TypeVar("M", bound=Model)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    has_next_page: bool
    by_id_only: bool = False
    # For an ordering other than (created_at, id): how a row's cursor is sealed.
    cursor_of: Callable[[T], str] | None = None

    def cursor(self, item: T) -> str:
        if self.cursor_of is not None:
            return self.cursor_of(item)
        return encode_cursor(item, by_id_only=self.by_id_only)

    @property
    def end_cursor(self) -> str | None:
        return self.cursor(self.items[-1]) if self.items else None


def _cursor_keys() -> list[AESSIV]:
    """The current master key's cursor key first, then the previous ones'."""
    ring = crypto.keyring()
    # Derived from the master key's own derivation, so no raw master key is kept for this.
    return [
        AESSIV(
            crypto.derive(master.initial_blind_index_key, "ocis/cursor/mac")
            + crypto.derive(master.initial_blind_index_key, "ocis/cursor/encryption")
        )
        for master in (ring.current, *ring.previous)
    ]


def _cursor_aad(kind: str) -> bytes:
    return f"ocis/cursor/{kind}".encode()


def seal_position(kind: str, position: list[Any]) -> str:
    """An opaque cursor for a position (JSON values) in a list of this kind."""
    raw = json.dumps(position, separators=(",", ":")).encode()
    sealed = _cursor_keys()[0].encrypt(raw, [_cursor_aad(kind)])
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_position(cursor: str, kind: str) -> list[Any]:
    """The position a cursor of this kind names; anything else is invalid input."""
    refused = InvalidInput("This cursor is not one this API issued.", field="after")
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
    except (ValueError, binascii.Error) as exc:
        raise refused from exc
    for key in _cursor_keys():
        try:
            opened = key.decrypt(raw, [_cursor_aad(kind)])
        except (InvalidTag, ValueError):
            continue
        position = json.loads(opened)
        if not isinstance(position, list):
            raise refused
        return position
    raise refused


def encode_cursor(item: Any, *, by_id_only: bool = False) -> str:
    """An opaque cursor for a row ordered by (created_at, id), or by id alone."""
    position = [None if by_id_only else item.created_at.isoformat(), str(item.id)]
    return seal_position(type(item).__name__, position)


def decode_cursor(cursor: str, kind: str) -> tuple[datetime | None, UUID]:
    """The (created_at, id) position a cursor of this kind of row names."""
    created, ident = open_position(cursor, kind)
    return (datetime.fromisoformat(created) if created else None), UUID(ident)


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE_SIZE}.", field="first")
    return first


def after_clause(cursor: str | None, kind: str, *, newest_first: bool) -> Q:
    """Rows strictly after the cursor in (created_at, id) order, or in id order."""
    if cursor is None:
        return Q()
    return _after(*decode_cursor(cursor, kind), newest_first=newest_first)


def _after(created: datetime | None, ident: UUID, *, newest_first: bool) -> Q:
    if created is None:
        return Q(id__lt=ident) if newest_first else Q(id__gt=ident)
    if newest_first:
        return Q(created_at__lt=created) | Q(created_at=created, id__lt=ident)
    return Q(created_at__gt=created) | Q(created_at=created, id__gt=ident)


async def paginate(
    query: QuerySet[M],
    *,
    first: int | None,
    after: str | None,
    newest_first: bool,
    by_id_only: bool = False,
    read: Callable[[QuerySet[M]], Awaitable[list[M]]] | None = None,
) -> Page[M]:
    """A page of rows after the cursor; `by_id_only` for callers who may not see creation times;
    `read` runs the query instead of the ORM (models.rows.fetch_rows)."""
    size = page_size(first)
    sign = "-" if newest_first else ""
    ordering = (f"{sign}id",) if by_id_only else (f"{sign}created_at", f"{sign}id")
    clause = Q()
    if after is not None:
        created, ident = decode_cursor(after, query.model.__name__)
        if (created is None) != by_id_only:
            raise InvalidInput("This cursor is not one this API issued.", field="after")
        clause = _after(created, ident, newest_first=newest_first)
    page = query.filter(clause).order_by(*ordering).limit(size + 1)
    rows = await (read(page) if read is not None else page)
    return Page(rows[:size], len(rows) > size, by_id_only)
