"""Parse and validation run once per distinct document (issue 16 item 1), and the limits and
guards they carry still hold on every request that hits the caches."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
import strawberry.schema.schema as strawberry_schema
from graphql import validate

import schema.view as schema_view
from auth.policy import may_introspect
from tests.helpers import Api

AsUser = Any


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times graphql-core's validation ran."""
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return validate(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counted)
    return calls


async def test_a_document_is_validated_once_then_answered_from_the_cache(
    as_user: AsUser, validations: list[int]
) -> None:
    agent: Api = await as_user("agent@example.com")
    # A text no other test sends, so that the first request misses.
    document = f"query Fresh{uuid4().hex} {{ me {{ email }} }}"
    answers = [await agent.gql(document) for _ in range(3)]
    assert answers == [{"data": {"me": {"email": "agent@example.com"}}}] * 3
    assert len(validations) == 1


async def test_a_cached_validation_error_is_reported_every_time(
    as_user: AsUser, validations: list[int]
) -> None:
    customer: Api = await as_user("customer@example.com")
    document = f"query Broken{uuid4().hex} {{ me {{ noSuchField }} }}"
    for _ in range(2):
        response = await customer.post(document)
        errors = response.json()["errors"]
        assert [error["message"] for error in errors] == [
            "Cannot query field 'noSuchField' on type 'User'."
        ]
    assert len(validations) == 1


async def test_the_limits_hold_on_a_cached_document(as_user: AsUser) -> None:
    customer: Api = await as_user("customer@example.com")
    nested = "me { " * 12 + "email" + " }" * 12
    deep = f"query Deep{uuid4().hex} {{ {nested} }}"
    aliases = " ".join(f"a{index}: me {{ email }}" for index in range(40))
    many = f"query Many{uuid4().hex} {{ {aliases} }}"
    for document in (deep, deep, many, many):
        body = (await customer.post(document)).json()
        assert body.get("data") is None
        assert body["errors"], document


async def test_introspection_stays_refused_when_the_same_text_was_validated_for_staff(
    as_user: AsUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Production's rule (staff only), in the development app the tests serve.
    monkeypatch.setattr(
        schema_view,
        "may_introspect",
        lambda principal, production: may_introspect(principal, production=True),
    )
    document = f"query Shape{uuid4().hex} {{ __schema {{ queryType {{ name }} }} }}"
    customer: Api = await as_user("customer@example.com")
    admin: Api = await as_user("admin@example.com")
    for caller, refused in ((admin, None), (customer, True), (admin, None), (customer, True)):
        body = (await caller.post(document)).json()
        codes = [error.get("extensions", {}).get("code") for error in body.get("errors", [])]
        assert ("INTROSPECTION_FORBIDDEN" in codes) is bool(refused), (caller, body)
