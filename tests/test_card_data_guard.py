"""The card-data guard reads the variables as the operation's types coerce them, too."""

from __future__ import annotations

import pytest
from graphql import parse

import schema
from schema.extensions import _coerced


@pytest.mark.promise("P03")
def test_the_guard_sees_the_coerced_variables() -> None:
    # graphql-core 3.3 answers a VariableValues tuple; the guard once dropped it and saw nothing.
    document = parse("query ($q: [String!]) { __typename }")
    coerced = _coerced(schema.schema._schema, document, {"q": "4111 1111 1111 1111"})
    # A single value where a list is declared is coerced into the list the resolver would get.
    assert coerced == [{"q": ["4111 1111 1111 1111"]}]


def test_variables_that_do_not_fit_give_nothing_coerced() -> None:
    document = parse("query ($n: Int!) { __typename }")
    assert _coerced(schema.schema._schema, document, {"n": "not a number"}) == []
