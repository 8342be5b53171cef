"""Persisted and trusted documents at /graphql: which text a request runs, and checking a
document before it is registered (resolvers/documents.py keeps the registry)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    StringValueNode,
    Visitor,
    parse,
    specified_rules,
    validate,
    visit,
)

from models import DocumentSource
from resolvers.documents import SHA256_HEX, DocumentCheck, DocumentRegistry, document_hash
from resolvers.payments import holds_card_data
from schema import schema
from schema.cost import operation_cost
from schema.extensions import MAX_TOKENS, _literals, limit_rules

PERSISTED_QUERY = "persistedQuery"
# Apollo's own message and code: its clients retry with the text when they see either.
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"


class DocumentRefused(Exception):
    """The request names no document it may run; answered with no result at all."""

    def __init__(self, message: str, code: str, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code


def check_document(text: str, max_cost: int, *, automatic: bool = False) -> list[str]:
    """What keeps this document from being registered: it must parse, validate against the
    schema and its limits, cost at most `max_cost` (page sizes as written, else their
    defaults; each request is still priced with its own variables) and write no card data.

    A client's (`automatic`) document must write no string literal either: the registry
    stores text as sent, and a client's literal may be someone's personal data (P10); its
    values belong in variables, which are never stored."""
    try:
        document = parse(text, max_tokens=MAX_TOKENS)
    except GraphQLError as error:
        return [f"does not parse ({error.message})"]
    graphql_schema = schema._schema
    errors = validate(graphql_schema, document, (*specified_rules, *limit_rules()))
    if errors:
        return [f"does not validate ({error.message})" for error in errors]
    if holds_card_data(_literals(document), []):
        return ["writes what looks like a card number or security code"]
    if automatic and _writes_strings(document):
        return ["writes a string literal (send values as variables)"]
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    problems = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            cost = operation_cost(graphql_schema, definition, fragments, {})
            if cost > max_cost:
                name = definition.name.value if definition.name else "the operation"
                problems.append(f"{name} costs {cost}, above the maximum of {max_cost}")
    return problems


def _writes_strings(document: DocumentNode) -> bool:
    found: list[StringValueNode] = []

    class Strings(Visitor):
        def enter_string_value(self, node: StringValueNode, *_: object) -> None:
            found.append(node)

    visit(document, Strings())
    return bool(found)


def requested_hash(extensions: Mapping[str, Any] | None) -> str | None:
    """The SHA-256 that `extensions.persistedQuery` names (version 1, as Apollo sends it)."""
    if not extensions or PERSISTED_QUERY not in extensions:
        return None
    persisted = extensions[PERSISTED_QUERY]
    if not isinstance(persisted, dict):
        raise DocumentRefused(
            "extensions.persistedQuery must be an object {version: 1, sha256Hash}.",
            "BAD_REQUEST",
            400,
        )
    version = persisted.get("version")
    if type(version) is not int or version != 1:
        raise DocumentRefused(
            "Unsupported persisted query version (only version 1 is).",
            "PERSISTED_QUERY_VERSION_UNSUPPORTED",
            400,
        )
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256.lower()):
        raise DocumentRefused(
            "extensions.persistedQuery.sha256Hash must be a SHA-256 in 64 hexadecimal digits.",
            "BAD_REQUEST",
            400,
        )
    return sha256.lower()


def _not_trusted() -> DocumentRefused:
    return DocumentRefused(
        "Only registered documents run here; send a registered document's hash"
        " (extensions.persistedQuery) or its exact text.",
        "DOCUMENT_NOT_TRUSTED",
        400,
    )


@dataclass(frozen=True, slots=True)
class Chosen:
    """What a request runs: the text, and whether it is a registered document (which may run
    on its compiled plan, schema/plan.py)."""

    text: str | None
    registered: bool = False


async def choose_document(
    registry: DocumentRegistry,
    query: str | None,
    extensions: Mapping[str, Any] | None,
    *,
    may_run_unregistered: bool,
    register_automatically: bool,
    check: DocumentCheck,
) -> Chosen:
    """The text this request runs: its own, or the registered document its hash names.

    `check(text)` lists a document's problems (check_document); a client's hash and text
    register the document automatically once it passes, where `register_automatically`.
    """
    sha256 = requested_hash(extensions)
    if query is not None and sha256 is not None and document_hash(query) != sha256:
        raise DocumentRefused(
            "provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH", 400
        )
    if query is None:
        if sha256 is None:
            return Chosen(None)  # Strawberry answers that no query was sent
        found = await registry.find(sha256, trusted=not may_run_unregistered)
        if found is None or not (may_run_unregistered or found.trusted):
            raise DocumentRefused(NOT_FOUND_MESSAGE, "PERSISTED_QUERY_NOT_FOUND", 200)
        return Chosen(found.text, registered=True)
    if not may_run_unregistered:
        found = await registry.find(document_hash(query), trusted=True)
        if found is None or not found.trusted:
            raise _not_trusted()
        return Chosen(query, registered=True)
    if (
        sha256 is not None
        and register_automatically
        and await registry.find(sha256) is None
        and not check(query)
    ):
        await registry.register(query, DocumentSource.AUTOMATIC)
    return Chosen(query)
