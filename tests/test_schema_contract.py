"""The committed SDL, and the need-to-know declaration on every personal-data field."""

from __future__ import annotations

import pytest
from graphql import GraphQLNonNull, GraphQLObjectType

import schema
from auth.policy import FIELD_POLICY, reachable
from schema.need_to_know import PERSONAL_DATA_TYPES, MissingPolicyError, personal_data

GRAPHQL = schema.schema._schema


def test_committed_sdl_matches_the_code() -> None:
    committed = schema.SDL_PATH.read_text()
    assert committed == schema.sdl(), "schema drifted: run `make sdl` and commit schema.graphql"


def test_every_personal_data_type_is_guarded() -> None:
    guarded = {cls.__strawberry_definition__.name for cls in PERSONAL_DATA_TYPES}  # type: ignore[attr-defined]
    assert guarded == set(FIELD_POLICY)


@pytest.mark.promise("P19")
@pytest.mark.parametrize("type_name", sorted(FIELD_POLICY))
def test_every_field_of_a_personal_data_type_has_a_rule(type_name: str) -> None:
    graphql_type = GRAPHQL.get_type(type_name)
    assert isinstance(graphql_type, GraphQLObjectType)
    fields = set(graphql_type.fields)
    assert fields == set(FIELD_POLICY[type_name]), "every field needs exactly one rule"
    for name, field in graphql_type.fields.items():
        assert "Need-to-know:" in (field.description or ""), f"{type_name}.{name} hides its rule"
        rule = FIELD_POLICY[type_name][name]
        if rule is not reachable:
            assert not isinstance(field.type, GraphQLNonNull), (
                f"{type_name}.{name} can be denied, so it must be nullable"
            )


def test_a_personal_data_type_with_an_unruled_field_is_refused() -> None:
    import strawberry

    @strawberry.type(name="User")
    class Sneaky:
        secret_hobby: str | None = None

    with pytest.raises(MissingPolicyError, match=r"User\.secretHobby"):
        personal_data(Sneaky)


def test_a_type_without_a_policy_table_entry_is_refused() -> None:
    import strawberry

    @strawberry.type(name="MedicalRecord")
    class MedicalRecord:
        diagnosis: str | None = None

    with pytest.raises(MissingPolicyError, match="MedicalRecord"):
        personal_data(MedicalRecord)
