"""Relay pieces: opaque global ids, the Node interface, and connections."""

import base64
import binascii
from typing import Any, Generic, TypeVar
from uuid import UUID

import strawberry

from resolvers.errors import InvalidInput
from resolvers.nodes import global_id
from resolvers.pagination import Page


def to_global_id(type_name: str, ident: UUID) -> strawberry.ID:
    return strawberry.ID(global_id(type_name, ident))


def from_global_id(
    global_id: str, expected: str | None = None, field: str = "id"
) -> tuple[str, UUID]:
    """Decode an opaque id; a malformed one, or one of another type, is a coded error."""
    try:
        raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
        type_name, ident = raw.split(":", 1)
        parsed = UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("This id is not one this API issued.", field=field) from exc
    if expected is not None and type_name != expected:
        raise InvalidInput(f"This id does not name a {expected}.", field=field)
    return type_name, parsed


@strawberry.interface(description="An object with an opaque global id, fetchable by node(id:).")
class Node:
    @strawberry.field(description="Opaque global id.")
    def id(self) -> strawberry.ID:
        raise NotImplementedError


@strawberry.type
class PageInfo:
    has_next_page: bool
    _page: strawberry.Private[Page[Any]]

    @strawberry.field
    def end_cursor(self) -> str | None:
        return self._page.end_cursor


N = TypeVar("N")


@strawberry.type
class Edge(Generic[N]):
    node: N
    _page: strawberry.Private[Page[Any]]
    _item: strawberry.Private[Any]

    @strawberry.field
    def cursor(self) -> str:
        # Sealed only when asked for: a page's cursors are most of what building it costs.
        return self._page.cursor(self._item)


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo


def connection(page: Page[Any], nodes: list[N]) -> Connection[N]:
    return Connection(
        edges=[
            Edge(node=node, _page=page, _item=item)
            for item, node in zip(page.items, nodes, strict=True)
        ],
        page_info=PageInfo(has_next_page=page.has_next_page, _page=page),
    )
