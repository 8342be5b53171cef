"""What a GraphQL operation costs, computed from its document before anything runs.

Every field costs 1. A paged field (one with a `first` argument) multiplies the cost of what
is below it by the page size it will return: `first` as written or as its variable coerces,
else the argument's default, else the default page size, and never more than the maximum the
resolvers enforce (a larger `first` is refused there). Its page's `edges` list is that page, so
it multiplies nothing again. An object list without `first` is bounded by its resolver, not by
the caller, and is priced at `UNPAGED_LIST_SIZE`. Introspection is answered from the schema in
memory, so its fields cost 1 each with no multiplier. Fragments are followed (a fragment already
being expanded on the way down is skipped, so a cycle cannot loop; one spread twice in a
selection runs once, as in execution); `@skip` and `@include` are ignored, so the cost is an
upper bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    get_named_type,
    get_nullable_type,
    is_composite_type,
    value_from_ast,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

from resolvers.accounts import MAX_NOTICES
from resolvers.audit_trail import MAX_ENTRIES
from resolvers.marketing import MAX_PAGE as MAX_CAMPAIGNS
from resolvers.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

UNPAGED_LIST_SIZE = 10
PAGE_ARGUMENT = "first"

# The largest page each paged field's resolver serves; every other paged field is a Relay
# connection bounded by resolvers/pagination.py. tests/test_query_cost.py keeps this in step
# with the schema.
PAGE_MAXIMUMS: Mapping[str, int] = {
    "Query.auditTrail": MAX_ENTRIES,
    "Query.campaigns": MAX_CAMPAIGNS,
    "Query.myDataAccesses": MAX_ENTRIES,
    "Query.myNotices": MAX_NOTICES,
}


def page_maximum(type_name: str, field_name: str) -> int:
    return PAGE_MAXIMUMS.get(f"{type_name}.{field_name}", MAX_PAGE_SIZE)


def is_connection(type_: GraphQLNamedType) -> bool:
    return isinstance(type_, GraphQLObjectType) and type_.name.endswith("Connection")


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    """The cost of one operation; `variables` as coerced to their declared types."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    return _Pricing(schema, fragments, variables).selections(
        operation.selection_set, root, frozenset(), introspecting=False
    )


class _Pricing:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.priced: dict[tuple[str, bool], int] = {}

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType,
        expanding: frozenset[str],
        *,
        introspecting: bool,
    ) -> int:
        total = 0
        spread: set[str] = set()  # as in execution, a fragment spread twice here runs once
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, expanding, introspecting=introspecting)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(
                    selection.selection_set, on or parent, expanding, introspecting=introspecting
                )
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in spread or name in expanding:
                    continue
                spread.add(name)
                total += self.fragment(name, parent, expanding, introspecting=introspecting)
        return total

    def fragment(
        self,
        name: str,
        parent: GraphQLNamedType,
        expanding: frozenset[str],
        *,
        introspecting: bool,
    ) -> int:
        """A fragment's cost is the same wherever it is spread: priced once per document, so
        fragments spreading fragments twice over cannot make pricing itself exponential."""
        key = (name, introspecting)
        if key not in self.priced:
            fragment = self.fragments.get(name)
            if fragment is None:
                return 0
            on = self.schema.get_type(fragment.type_condition.name.value)
            self.priced[key] = self.selections(
                fragment.selection_set,
                on or parent,
                expanding | {name},
                introspecting=introspecting,
            )
        return self.priced[key]

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType,
        expanding: frozenset[str],
        *,
        introspecting: bool,
    ) -> int:
        name = node.name.value
        definition = self._definition(parent, name)
        if definition is None or node.selection_set is None:
            return 1
        introspecting = introspecting or name.startswith("__")
        below = self.selections(
            node.selection_set,
            get_named_type(definition.type),
            expanding,
            introspecting=introspecting,
        )
        if introspecting:
            return 1 + below
        return 1 + self._multiplier(parent, definition, node) * below

    def _definition(self, parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
        if isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            found: GraphQLField | None = parent.fields.get(name)
            return found
        return None

    def _multiplier(
        self, parent: GraphQLNamedType, definition: GraphQLField, node: FieldNode
    ) -> int:
        if PAGE_ARGUMENT in definition.args:
            return self._page_size(parent, definition, node)
        listed = isinstance(get_nullable_type(definition.type), GraphQLList)
        if (
            listed
            and is_composite_type(get_named_type(definition.type))
            and not is_connection(parent)
        ):
            return UNPAGED_LIST_SIZE
        return 1

    def _page_size(
        self, parent: GraphQLNamedType, definition: GraphQLField, node: FieldNode
    ) -> int:
        argument = definition.args[PAGE_ARGUMENT]
        given: Any = Undefined
        for written in node.arguments or ():
            if written.name.value == PAGE_ARGUMENT:
                given = value_from_ast(written.value, argument.type, dict(self.variables))
        if given is Undefined:
            given = argument.default_value
        size = given if isinstance(given, int) else DEFAULT_PAGE_SIZE
        maximum = page_maximum(parent.name, node.name.value)
        return max(1, min(size, maximum))
