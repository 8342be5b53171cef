"""Keyset pagination with opaque cursors and a bounded page size."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from resolvers.errors import InvalidInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


T = TypeVar("T")
M = TypeVar("M", bound=Model)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return encode_cursor(self.items[-1]) if self.items else None


def encode_cursor(item: Any) -> str:
    """An opaque cursor for a row ordered by (created_at, id)."""
    raw = json.dumps([item.created_at.isoformat(), str(item.id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created), UUID(ident)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("This cursor is not one this API issued.", field="after") from exc


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE_SIZE}.", field="first")
    return first


def after_clause(cursor: str | None, *, newest_first: bool) -> Q:
    """Rows strictly after the cursor in (created_at, id) order."""
    if cursor is None:
        return Q()
    created, ident = decode_cursor(cursor)
    if newest_first:
        return Q(created_at__lt=created) | Q(created_at=created, id__lt=ident)
    return Q(created_at__gt=created) | Q(created_at=created, id__gt=ident)


async def paginate(
    query: QuerySet[M], *, first: int | None, after: str | None, newest_first: bool
) -> tuple[list[M], bool]:
    size = page_size(first)
    ordering = ("-created_at", "-id") if newest_first else ("created_at", "id")
    rows = (
        await query.filter(after_clause(after, newest_first=newest_first))
        .order_by(*ordering)
        .limit(size + 1)
    )
    return rows[:size], len(rows) > size
