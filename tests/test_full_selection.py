"""Need-to-know at every depth (issue 15 item 6, beside the fuzzing of test_fuzz_schema.py).

Random selections rarely reach deep paths (a ticket's messages' bodies, a request's assignee's
sign-ins); the full selection of each root field, generated from the committed schema, reaches
every one of them, once per real id of the demo data where the field needs one, as each role.
The answers keep the fuzzing's invariants: no 5xx, only documented codes, `FORBIDDEN` fields
`null`, and nothing an anonymous caller or a customer may not read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import graphql
import httpx
import pytest

from tests.test_error_codes import _documented
from tests.test_fuzz_schema import (
    CUSTOMER,
    PARSED,
    ROLES,
    Caller,
    _forbidden_values,
    _id_pool,
    check,
)

DEPTH = 3
PAGE = 3


def _required(argument: graphql.GraphQLArgument) -> bool:
    return graphql.is_non_null_type(argument.type) and argument.default_value is graphql.Undefined


def _arguments(field: graphql.GraphQLField, ids: dict[str, str]) -> str | None:
    """Literal arguments for a field: its required ids from `ids`, small pages; None when a
    required argument has no value to give."""
    given: list[str] = []
    for name, argument in field.args.items():
        named = graphql.get_named_type(argument.type)
        if name in ("first", "last") and named is graphql.GraphQLInt:
            given.append(f"{name}: {PAGE}")
        elif (
            graphql.is_non_null_type(argument.type) and argument.default_value is graphql.Undefined
        ):
            if named is graphql.GraphQLID and name in ids:
                given.append(f"{name}: {json.dumps(ids[name])}")
            else:
                return None
    return f"({', '.join(given)})" if given else ""


def _selection(type_: graphql.GraphQLNamedType, depth: int, alias: bool = False) -> str:
    """Every field of the type to `depth`; members of a union or interface alias theirs, since
    two members may give one field name different types."""
    if isinstance(type_, graphql.GraphQLUnionType | graphql.GraphQLInterfaceType):
        members = PARSED.get_possible_types(type_)
        inner = " ".join(
            f"... on {member.name} {{ {_selection(member, depth, alias=True)} }}"
            for member in members
        )
        return f"__typename {inner}"
    assert isinstance(type_, graphql.GraphQLObjectType)
    parts = ["__typename"]
    for name, field in type_.fields.items():
        named = graphql.get_named_type(field.type)
        arguments = _arguments(field, {})
        if arguments is None:
            continue
        key = f"{type_.name}_{name}: {name}" if alias else name
        if graphql.is_leaf_type(named):
            parts.append(f"{key}{arguments}")
        elif depth > 0:
            parts.append(f"{key}{arguments} {{ {_selection(named, depth - 1)} }}")
    return " ".join(parts)


def full_documents(ids: list[str]) -> Iterator[str]:
    """Every root query field with its full selection; fields needing one id, once per id."""
    assert PARSED.query_type is not None
    for name, field in sorted(PARSED.query_type.fields.items()):
        named = graphql.get_named_type(field.type)
        required = [
            argument_name for argument_name, argument in field.args.items() if _required(argument)
        ]
        choices = [{}] if not required else [{required[0]: value} for value in ids]
        for chosen in choices:
            arguments = _arguments(field, chosen)
            if arguments is None:
                continue
            inner = "" if graphql.is_leaf_type(named) else f" {{ {_selection(named, DEPTH)} }}"
            yield f"{{ {name}{arguments}{inner} }}"


@pytest.mark.promise("P19")
@pytest.mark.parametrize("role", ROLES, ids=lambda email: (email or "anonymous").split("@")[0])
async def test_the_full_selection_of_every_root_field_keeps_need_to_know(
    client: httpx.AsyncClient, demo: None, role: str | None
) -> None:
    ids = await _id_pool()
    forbidden = await _forbidden_values(role) if role in (None, CUSTOMER) else set()
    caller = Caller(client, role)
    sent = 0
    for document in full_documents(ids):
        assert graphql.validate(PARSED, graphql.parse(document)) == [], document
        check(await caller.send(document), document, forbidden, _documented())
        sent += 1
    # Each root field without required arguments, and each id-taking one once per id.
    assert sent > len(ids)
