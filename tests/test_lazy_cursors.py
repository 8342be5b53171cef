"""A page's cursors are sealed only when the query selects them (issue 16 item 1)."""

from __future__ import annotations

from typing import Any

import pytest

import resolvers.pagination as pagination
from tests.helpers import Api

PAGE = "{ tickets(first: 10) { edges { node { subject } %s } pageInfo { hasNextPage %s } } }"


@pytest.fixture
def sealed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kinds of every cursor sealed."""
    kinds: list[str] = []
    seal = pagination.seal_position

    def counted(kind: str, position: list[Any]) -> str:
        kinds.append(kind)
        return seal(kind, position)

    monkeypatch.setattr(pagination, "seal_position", counted)
    return kinds


@pytest.mark.parametrize(
    ("edge", "page", "expected"),
    [("", "", 0), ("cursor", "", 3), ("", "endCursor", 1), ("cursor", "endCursor", 4)],
)
async def test_cursors_are_sealed_only_when_selected(
    as_user: Any, sealed: list[str], edge: str, page: str, expected: int
) -> None:
    customer: Api = await as_user("customer@example.com")
    body = await customer.gql(PAGE % (edge, page))
    edges = body["data"]["tickets"]["edges"]
    assert len(edges) == 3  # the demo customer's tickets
    assert len(sealed) == expected
    if edge and page:
        assert edges[-1]["cursor"] == body["data"]["tickets"]["pageInfo"]["endCursor"]
