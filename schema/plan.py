"""Compiled plans: a registered document's query run without graphql-core's executor.

A document that clients send by its hash (a persisted or trusted document) is parsed,
validated and checked once per process, and compiled to a plan: for each selected field the
resolver Strawberry would call (or the attribute it would read), how its arguments are
coerced, its need-to-know guard (the very `NeedToKnow` extension the schema attaches from
the one policy table) and how its value is serialized. Each request then coerces its
variables, runs the card-data guard on them, prices and charges the operation as
`QueryCost` does, resolves the selection level by level (one batch call per relation and
level: all the requesters of a page of tickets at once), builds the result as dicts in
selection order and writes the read audit exactly as `AccessAudit` does.

What the plan does not cover is never guessed at: a document whose fields, directives or
types it does not know compiles to nothing, and runs on Strawberry. A request that goes
wrong on the plan (a resolver's domain error, variables that do not coerce, a field's
unexpected null, an outage) is discarded whole, its noted reads forgotten, and run again on
Strawberry, which answers it as it always has (coded errors, masking, 503s); the operation
is not charged twice.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar
from uuid import UUID

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    located_error,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.types import ExecutionResult
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from auth.relations import person_in, subject_of
from auth.store import unreachable_dependency
from observability import operation_label
from resolvers.pagination import decode_cursor, page_size
from resolvers.payments import holds_card_data
from resolvers.tickets import load_message_rows
from schema import schema
from schema.context import Context
from schema.cost import operation_cost
from schema.errors import PublicError
from schema.extensions import (
    DOCUMENT_CACHE_SIZE,
    MAX_TOKENS,
    _coerced,
    _literals,
    _refusal,
    limit_rules,
    write_reads,
)
from schema.need_to_know import NeedToKnow
from schema.relay import Connection, connection
from schema.tickets import TicketMessageType, TicketType, message_nodes
from schema.users import user_nodes

logger = logging.getLogger("ocis.graphql")

# The root fields a plan may start from: each resolver reads nothing of `info` but its
# context, and answers the types below.
ROOT_FIELDS = frozenset({"tickets", "me", "myOpenTickets", "teamQueue"})

T = TypeVar("T")
Batch = Callable[[Context, Sequence[Any], dict[str, Any]], Awaitable[list[Any]]]


def _people(person: Callable[[Any], UUID | None]) -> Batch:
    """The batch of a field that names one person per row (`user_node` for a whole level)."""

    async def batch(context: Context, parents: Sequence[Any], _: dict[str, Any]) -> list[Any]:
        return await user_nodes(context, [person(parent.model) for parent in parents])

    return batch


async def _message_pages(
    context: Context, tickets: Sequence[TicketType], arguments: dict[str, Any]
) -> list[Connection[TicketMessageType]]:
    first, after = arguments.get("first"), arguments.get("after")
    page_size(first)  # a domain error: the request runs again on Strawberry, which codes it
    if after is not None:
        decode_cursor(after, "TicketMessage")
    # Rows without ORM instances (models/rows.py); Strawberry's resolver reads ORM rows.
    pages = await load_message_rows(
        context.principal, [(ticket.model.id, first, after) for ticket in tickets]
    )
    return [
        connection(page, message_nodes(context.principal, ticket.model, page))
        for ticket, page in zip(tickets, pages, strict=True)
    ]


# One batch resolver per relation: what the per-object resolver of the field answers, for a
# whole level at once. An async field without one makes its documents run on Strawberry.
BATCHES: dict[tuple[str, str], Batch] = {
    ("Ticket", "requester"): _people(subject_of),
    ("Ticket", "assignee"): _people(functools.partial(person_in, column="assignee_id")),
    ("Ticket", "messages"): _message_pages,
    ("TicketMessage", "author"): _people(subject_of),
}


class Unsupported(Exception):
    """The document uses something a plan does not cover; it runs on Strawberry."""


class Discard(Exception):
    """This request cannot be answered on the plan; it runs again on Strawberry."""


LEAF, OBJECT, OBJECT_LIST, LEAF_LIST, TYPENAME = range(5)
_BUBBLE = object()  # a non-null field is null: its parent is null in turn


@dataclass(slots=True)
class Step:
    """One selected field: how to get its value for each parent, and what to do with it."""

    key: str
    kind: int
    nullable: bool
    item_nullable: bool = True
    nodes: tuple[FieldNode, ...] = ()
    guard: NeedToKnow | None = None
    read: Callable[[Any], Any] | None = None
    batch: Batch | None = None
    # Root fields: the resolver, awaited with (root, info, **arguments).
    root: Callable[..., Awaitable[Any]] | None = None
    serialize: Callable[[Any], Any] | None = None
    arguments: Callable[[VariableValues | None], dict[str, Any]] | None = None
    children: Selection | None = None
    typename: str = ""


@dataclass(slots=True)
class Selection:
    type_name: str
    steps: list[Step] = field(default_factory=list)


def _unwrap(type_: GraphQLOutputType) -> tuple[bool, bool | None, Any]:
    """(nullable, the list items' nullability or None for no list, the named type)."""
    nullable = not isinstance(type_, GraphQLNonNull)
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(inner, GraphQLList):
        item = inner.of_type
        item_nullable = not isinstance(item, GraphQLNonNull)
        named = item.of_type if isinstance(item, GraphQLNonNull) else item
        if isinstance(named, (GraphQLList, GraphQLNonNull)):
            raise Unsupported("nested lists")
        return nullable, item_nullable, named
    return nullable, None, inner


class _Compiler:
    def __init__(self, document: DocumentNode, operation: OperationDefinitionNode) -> None:
        self.schema = schema._schema
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.operation = operation

    def collect(
        self,
        type_: GraphQLObjectType,
        selection_set: SelectionSetNode,
        into: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        """The fields of a selection set on this type, by response key; a fragment spread
        again within it is collected once (as graphql-core collects it)."""
        for selection in selection_set.selections:
            if selection.directives:
                raise Unsupported("directives")
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                into.setdefault(key, []).append(selection)
                continue
            if isinstance(selection, FragmentSpreadNode):
                if selection.name.value in visited:
                    continue
                visited.add(selection.name.value)
                fragment = self.fragments[selection.name.value]
                if fragment.directives:
                    raise Unsupported("directives")
                condition: NamedTypeNode | None = fragment.type_condition
                inner = fragment.selection_set
            elif isinstance(selection, InlineFragmentNode):
                condition, inner = selection.type_condition, selection.selection_set
            else:  # pragma: no cover - graphql-core has no other selection
                raise Unsupported(type(selection).__name__)
            if condition is None or self._applies(condition.name.value, type_):
                self.collect(type_, inner, into, visited)

    def _applies(self, condition: str, type_: GraphQLObjectType) -> bool:
        if condition == type_.name:
            return True
        abstract = self.schema.get_type(condition)
        return (
            abstract is not None
            and not isinstance(abstract, GraphQLObjectType)
            and (
                self.schema.is_sub_type(abstract, type_)  # type: ignore[arg-type]
            )
        )

    def selection(self, type_: GraphQLObjectType, nodes: Sequence[FieldNode]) -> Selection:
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for node in nodes:
            if node.selection_set is not None:
                self.collect(type_, node.selection_set, grouped, visited)
        return self.fields(type_, grouped, root=False)

    def fields(
        self, type_: GraphQLObjectType, grouped: dict[str, list[FieldNode]], *, root: bool
    ) -> Selection:
        definition = schema.get_type_by_name(type_.name)
        if definition is None or not hasattr(definition, "fields"):
            raise Unsupported(type_.name)
        by_name = {schema.config.name_converter.from_field(f): f for f in definition.fields}
        selection = Selection(type_.name)
        for key, nodes in grouped.items():
            name = nodes[0].name.value
            if name == "__typename":
                selection.steps.append(
                    Step(key, TYPENAME, nullable=False, nodes=tuple(nodes), typename=type_.name)
                )
                continue
            if name.startswith("__"):
                raise Unsupported("introspection")
            strawberry_field = by_name.get(name)
            field_def = type_.fields.get(name)
            if strawberry_field is None or field_def is None:
                raise Unsupported(f"{type_.name}.{name}")
            selection.steps.append(
                self.step(type_, key, nodes, strawberry_field, field_def, root=root)
            )
        return selection

    def step(
        self,
        type_: GraphQLObjectType,
        key: str,
        nodes: list[FieldNode],
        strawberry_field: StrawberryField,
        field_def: Any,
        *,
        root: bool,
    ) -> Step:
        name = nodes[0].name.value
        nullable, item_nullable, named = _unwrap(field_def.type)
        guards = [e for e in strawberry_field.extensions if isinstance(e, NeedToKnow)]
        if len(guards) != len(strawberry_field.extensions) or strawberry_field.permission_classes:
            raise Unsupported(f"{type_.name}.{name}: field extensions")
        step = Step(key, LEAF, nullable, nodes=tuple(nodes), guard=guards[0] if guards else None)
        if field_def.args:
            step.arguments = _arguments(field_def, nodes[0], strawberry_field)
        resolver = strawberry_field.base_resolver
        if root:
            if name not in ROOT_FIELDS or resolver is None:
                raise Unsupported(f"root field {name}")
            step.root = resolver.wrapped_func  # type: ignore[assignment]
        elif (type_.name, name) in BATCHES:
            step.batch = BATCHES[(type_.name, name)]
        elif resolver is None:
            # What the default resolver (schema/attributes.py read_attribute) reads: the
            # wrapped row's attribute, or the object's own.
            python_name = strawberry_field.python_name
            wraps_row = "model" in getattr(_origin(type_.name), "__dataclass_fields__", {})
            step.read = operator.attrgetter(f"model.{python_name}" if wraps_row else python_name)
        elif resolver.is_async or resolver.arguments or resolver.info_parameter:
            raise Unsupported(f"{type_.name}.{name} has no batch resolver")
        else:
            step.read = resolver.wrapped_func  # type: ignore[assignment]
        if isinstance(named, (GraphQLScalarType, GraphQLEnumType)):
            step.kind = LEAF if item_nullable is None else LEAF_LIST
            step.serialize = named.serialize
            step.item_nullable = bool(item_nullable)
        elif isinstance(named, GraphQLObjectType):
            step.kind = OBJECT if item_nullable is None else OBJECT_LIST
            step.item_nullable = bool(item_nullable)
            step.children = self.selection(named, nodes)
        else:
            raise Unsupported(f"{type_.name}.{name}: abstract type")
        return step


def _required(value: T | None) -> T:
    """A step's part that its kind guarantees (compiled together)."""
    if value is None:  # pragma: no cover - a compiler defect
        raise Discard
    return value


def _origin(type_name: str) -> type | None:
    definition = schema.get_type_by_name(type_name)
    origin: type | None = getattr(definition, "origin", None)
    return origin


def _arguments(
    field_def: Any, node: FieldNode, strawberry_field: StrawberryField
) -> Callable[[VariableValues | None], dict[str, Any]]:
    """The field's arguments as its resolver receives them, from this request's variables."""
    registry = schema.schema_converter.scalar_registry

    def coerce(variables: VariableValues | None) -> dict[str, Any]:
        raw = get_argument_values(field_def, node, variables)
        return convert_arguments(raw, strawberry_field.arguments, registry, schema.config)

    return coerce


@dataclass(slots=True)
class Plan:
    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    selection: Selection
    label: str
    # The operation's cost when it does not depend on the variables.
    fixed_cost: int | None

    async def run(
        self, context: Context, raw_variables: dict[str, Any] | None
    ) -> ExecutionResult | None:
        """The result, or None when Strawberry must answer this request instead."""
        if raw_variables and holds_card_data(
            [], [raw_variables, *_coerced(schema._schema, self.document, raw_variables)]
        ):
            return None  # refused by Strawberry's guard (CardDataGuard), the same way
        variables: dict[str, Any] = {}
        given: VariableValues | None = None
        if self.operation.variable_definitions:
            coerced = get_variable_values(
                schema._schema, self.operation.variable_definitions, raw_variables or {}
            )
            if not isinstance(coerced, VariableValues):
                return None  # Strawberry reports the variables' errors
            given, variables = coerced, coerced.coerced
        state = context.request_state
        if state is not None:
            state["operation"] = self.label
        info = SimpleNamespace(context=context)
        cost = self.fixed_cost
        if cost is None:
            cost = operation_cost(schema._schema, self.operation, self.fragments, variables)
        try:
            refusal = await _refusal(context, cost)
        except Exception as exc:  # noqa: BLE001 - the store is down, or the charge failed
            dependency = unreachable_dependency(exc)
            if dependency is None or state is None:
                return None  # unexpected: Strawberry answers it, masked as ever
            # Answered with a 503 (web/outages.py), as Strawberry's Outages answers it; not
            # tried again on Strawberry, which could charge a second time.
            state.setdefault("unreachable", dependency)
            return ExecutionResult(data=None, errors=[GraphQLError("Service unavailable.")])
        context.cost_charged = True
        if refusal is not None:
            return ExecutionResult(data=None, errors=[refusal])
        run = _Run(context, info, given)
        context.fresh_loaders(rows=True)
        try:
            data = await run.root(self.selection)
        except Exception as failure:  # noqa: BLE001 - answered by Strawberry instead
            if not isinstance(failure, Discard):
                logger.debug("plan discarded: %s", type(failure).__name__)
            context.reads.clear()
            context.fresh_loaders()  # ORM rows again, for Strawberry
            return None
        audit_error = await _record(context)
        if audit_error is not None:
            return ExecutionResult(data=None, errors=[audit_error])
        if run.errors:
            schema.process_errors(run.errors, info)  # type: ignore[arg-type]
        return ExecutionResult(data=data, errors=run.errors or None)


async def _record(context: Context) -> GraphQLError | None:
    """AccessAudit's write: None once written (or when nothing was read); else the error that
    replaces the data, as Strawberry answers it."""
    try:
        await write_reads(context)
    except PublicError as withheld:
        return GraphQLError(str(withheld), extensions=withheld.extensions)
    except Exception as exc:  # noqa: BLE001 - the data is withheld either way
        dependency = unreachable_dependency(exc)
        if dependency is None:
            raise
        if context.request_state is not None:
            context.request_state.setdefault("unreachable", dependency)  # answered with a 503
        return GraphQLError("Service unavailable.")
    return None


class _Run:
    """One request on a plan: its context, coerced variables and the errors it met."""

    __slots__ = ("context", "errors", "info", "variables")

    def __init__(self, context: Context, info: Any, variables: VariableValues | None) -> None:
        self.context = context
        self.info = info
        self.variables = variables
        self.errors: list[GraphQLError] = []

    async def root(self, selection: Selection) -> dict[str, Any] | None:
        data: dict[str, Any] = {}
        for step in selection.steps:
            if step.kind == TYPENAME:
                data[step.key] = selection.type_name
                continue
            arguments = step.arguments(self.variables) if step.arguments else {}
            try:
                value = await _required(step.root)(None, self.info, **arguments)
            except PublicError as refused:
                # A root resolver's coded error (schema/errors.py coded_errors): null at its
                # path with the error, as graphql-core answers it. Anything else is Strawberry's.
                self.forbid(step, (step.key,), refused)
                value = None
            (completed,) = await self.finish(step, [value], [()])
            if completed is _BUBBLE:
                return None
            data[step.key] = completed
        return data

    def forbid(self, step: Step, path: tuple[Any, ...], error: PublicError) -> None:
        """A public error at the step's field; `path` is the field's own path."""
        self.errors.append(located_error(error, list(step.nodes), list(path)))

    async def values(
        self, step: Step, parents: Sequence[Any], paths: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        """The field's value for each parent: None (with an error) where its guard refuses."""
        guard = step.guard
        allowed: list[int] | None = None
        if guard is not None:
            allowed = []
            for index, parent in enumerate(parents):
                try:
                    guard._check(parent, self.info)
                except PublicError as refused:
                    self.forbid(step, (*paths[index], step.key), refused)
                else:
                    allowed.append(index)
            if len(allowed) == len(parents):
                allowed = None
        chosen = parents if allowed is None else [parents[index] for index in allowed]
        if step.batch is not None:
            arguments = step.arguments(self.variables) if step.arguments else {}
            found = await step.batch(self.context, chosen, arguments) if chosen else []
        else:
            read = _required(step.read)
            found = [read(parent) for parent in chosen]
        if allowed is None:
            return found
        values: list[Any] = [None] * len(parents)
        for index, value in zip(allowed, found, strict=True):
            values[index] = value
        return values

    async def complete(
        self, step: Step, parents: Sequence[Any], paths: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        """The field's final value for each parent (paths: each parent's path), or _BUBBLE."""
        if step.kind == TYPENAME:
            return [step.typename] * len(parents)
        return await self.finish(step, await self.values(step, parents, paths), paths)

    async def finish(
        self, step: Step, values: list[Any], paths: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        """Each parent's value of the field serialized, its objects completed, or _BUBBLE."""
        kind = step.kind
        if kind == LEAF:
            serialize = _required(step.serialize)
            out = [None if value is None else serialize(value) for value in values]
        elif kind == LEAF_LIST:
            serialize = _required(step.serialize)
            out = []
            for value in values:
                if value is None:
                    out.append(None)
                    continue
                items = [None if item is None else serialize(item) for item in value]
                if not step.item_nullable and None in items:
                    raise Discard  # a null in a non-null list: Strawberry reports it
                out.append(items)
        elif kind == OBJECT:
            present = [index for index, value in enumerate(values) if value is not None]
            done = await self.objects(
                _required(step.children),
                [values[index] for index in present],
                [(*paths[index], step.key) for index in present],
            )
            out = [None] * len(values)
            for index, result in zip(present, done, strict=True):
                out[index] = None if result is _BUBBLE else result
                if result is _BUBBLE and not step.nullable:
                    out[index] = _BUBBLE
        else:
            flat: list[Any] = []
            flat_paths: list[tuple[Any, ...]] = []
            for index, value in enumerate(values):
                if value is not None:
                    base = (*paths[index], step.key)
                    for position, item in enumerate(value):
                        if item is None:
                            raise Discard
                        flat.append(item)
                        flat_paths.append((*base, position))
            done = await self.objects(_required(step.children), flat, flat_paths)
            out = []
            cursor = 0
            for value in values:
                if value is None:
                    out.append(None)
                    continue
                items = done[cursor : cursor + len(value)]
                cursor += len(value)
                if _BUBBLE in items:
                    if step.item_nullable:
                        items = [None if item is _BUBBLE else item for item in items]
                    else:
                        out.append(_BUBBLE if not step.nullable else None)
                        continue
                out.append(items)
        if not step.nullable:
            for index, value in enumerate(values):
                if value is None and out[index] is not _BUBBLE:
                    if not self._refused(step, paths[index]):
                        raise Discard  # a resolver's null for a non-null field
                    out[index] = _BUBBLE
        return out

    def _refused(self, step: Step, path: tuple[Any, ...]) -> bool:
        where = [*path, step.key]
        return any(error.path == where for error in self.errors)

    async def objects(
        self, selection: Selection, objects: Sequence[Any], paths: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        """Each object as a dict in selection order, or _BUBBLE where a non-null field is null."""
        if not objects:
            return []
        columns = [await self.complete(step, objects, paths) for step in selection.steps]
        if columns and not any(_BUBBLE in column for column in columns):
            # The common case, built in one pass: every object's values in selection order.
            keys = [step.key for step in selection.steps]
            return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]
        results: list[Any] = [{} for _ in objects]
        for step, column in zip(selection.steps, columns, strict=True):
            key = step.key
            for index, value in enumerate(column):
                result = results[index]
                if result is _BUBBLE:
                    continue
                if value is _BUBBLE:
                    results[index] = _BUBBLE
                else:
                    result[key] = value
        return results


def compile_document(text: str, operation_name: str | None) -> Plan | None:
    """The plan of the document's operation, or None when it must run on Strawberry."""
    try:
        document = parse(text, max_tokens=MAX_TOKENS)
    except GraphQLError:
        return None
    graphql_schema = schema._schema
    if validate(graphql_schema, document, (*specified_rules, *limit_rules())):
        return None
    if holds_card_data(_literals(document), []):
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if len(operations) != 1:
            return None
        operation = operations[0]
    else:
        named = [o for o in operations if o.name and o.name.value == operation_name]
        if len(named) != 1:
            return None
        operation = named[0]
    if operation.operation is not OperationType.QUERY or operation.directives:
        return None
    compiler = _Compiler(document, operation)
    root_type = _required(graphql_schema.query_type)
    try:
        grouped: dict[str, list[FieldNode]] = {}
        compiler.collect(root_type, operation.selection_set, grouped, set())
        selection = compiler.fields(root_type, grouped, root=True)
    except Unsupported as why:
        logger.debug("document runs on Strawberry: %s", why)
        return None
    fixed = None
    if not operation.variable_definitions:
        fixed = operation_cost(graphql_schema, operation, compiler.fragments, {})
    name = operation.name.value if operation.name else None
    return Plan(
        document,
        operation,
        compiler.fragments,
        selection,
        operation_label(operation_name or name),
        fixed,
    )


@functools.lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def plan_for(text: str, operation_name: str | None) -> Plan | None:
    """The compiled plan of a registered document, compiled once per process (or None)."""
    return compile_document(text, operation_name)


def plannable(type_name: str, field_name: str) -> bool:
    """Whether a plan resolves this field itself (else its documents run on Strawberry)."""
    definition = schema.get_type_by_name(type_name)
    if definition is None:
        return False
    for strawberry_field in definition.fields:  # type: ignore[union-attr]
        if schema.config.name_converter.from_field(strawberry_field) != field_name:
            continue
        if (type_name, field_name) in BATCHES:
            return True
        resolver = strawberry_field.base_resolver
        if type_name == "Query":
            return field_name in ROOT_FIELDS
        return resolver is None or not (
            resolver.is_async or resolver.arguments or resolver.info_parameter
        )
    return False


__all__ = ["BATCHES", "ROOT_FIELDS", "Plan", "compile_document", "plan_for", "plannable"]
