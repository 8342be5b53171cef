"""Root fields that a caller may be refused are nullable, so a refusal costs only that field.

The selections come from the live schema: every root Query field, as every demo role. A field
that answered any of them with an error at its own path must be nullable, else its error would
null the whole `data` and take the caller's other fields with it.
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLUnionType,
    Undefined,
    get_named_type,
)

from auth.visitor_ids import VisitorIds
from models import Team
from resolvers.nodes import global_id
from schema import schema
from tests.helpers import user_by_email

ROLES = (
    None,
    "customer@example.com",
    "agent@example.com",
    "lead@example.com",
    "privacy@example.com",
    "admin@example.com",
)


def _root_fields() -> dict[str, Any]:
    query_type = schema._schema.query_type
    assert query_type is not None
    return dict(query_type.fields)


async def _required_arguments() -> dict[str, str]:
    """A valid value for every required argument a root field takes, by argument name."""
    customer = await user_by_email("customer@example.com")
    team = await Team.get(name="Support")
    return {
        "subjectId": global_id("User", customer.id),
        "teamId": global_id("Team", team.id),
        "id": global_id("User", customer.id),
        "userId": global_id("User", customer.id),
        # A consent id signed under the tests' master key (app_settings), as a visitor holds.
        "visitorId": VisitorIds((b"k" * 32,)).issue()[1],
        # usageCounts' days.
        "from": "2026-01-01",
        "to": "2026-01-31",
    }


def _selection(name: str, field: Any, values: dict[str, str]) -> str:
    arguments: list[str] = []
    for argument_name, argument in field.args.items():
        assert isinstance(argument, GraphQLArgument)
        if isinstance(argument.type, GraphQLNonNull) and argument.default_value is Undefined:
            assert argument_name in values, (
                f"Query.{name} takes a required {argument_name}: give it a value here"
            )
            arguments.append(f'{argument_name}: "{values[argument_name]}"')
    named = get_named_type(field.type)
    composite = (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType)
    selection = " { __typename }" if isinstance(named, composite) else ""
    return name + (f"({', '.join(arguments)})" if arguments else "") + selection


@pytest.mark.usefixtures("demo")
async def test_every_root_field_that_can_refuse_is_nullable(as_user: Any) -> None:
    fields = _root_fields()
    values = await _required_arguments()
    refused: dict[str, set[str]] = {}
    for email in ROLES:
        api = await as_user(email)
        for name, field in fields.items():
            body = await api.gql("{ " + _selection(name, field, values) + " }")
            for error in body.get("errors") or ():
                assert error.get("path") == [name], (email, name, error)
                refused.setdefault(name, set()).add(error["extensions"]["code"])
    non_null = sorted(name for name in refused if isinstance(fields[name].type, GraphQLNonNull))
    print(f"root fields refused to some role: {refused}")  # noqa: T201
    assert non_null == [], f"non-null root fields that some role is refused: {non_null}"
    assert "users" in refused
    assert refused["users"] == {"FORBIDDEN"}


@pytest.mark.usefixtures("demo")
@pytest.mark.promise("P19")
async def test_a_customer_refused_the_directory_still_gets_their_own_fields(
    as_user: Any,
) -> None:
    customer = await as_user("customer@example.com")
    body = await customer.gql(
        "{ me { email } tickets(first: 5) { edges { node { id } } }"
        " users(first: 5) { edges { node { id } } } }"
    )
    assert body["data"]["me"] == {"email": "customer@example.com"}
    assert len(body["data"]["tickets"]["edges"]) >= 1
    assert body["data"]["users"] is None
    assert [(error["path"], error["extensions"]["code"]) for error in body["errors"]] == [
        (["users"], "FORBIDDEN")
    ]
