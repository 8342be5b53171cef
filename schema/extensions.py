"""Schema extensions, each passed to Strawberry as a class so no state is shared (the parse
and validation caches are module-level functools caches, shared on purpose)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    OperationDefinitionNode,
    VariableDefinitionNode,
    Visitor,
    get_operation_ast,
    value_from_ast_untyped,
    visit,
)
from graphql.error import GraphQLError
from graphql.execution.values import VariableValues, get_variable_values
from graphql.validation import (
    ASTValidationRule,
    NoSchemaIntrospectionCustomRule,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as create_alias_validator
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.types import ExecutionResult as StrawberryResult
from strawberry.types import StreamExecutionResult
from strawberry.types.graphql import OperationType

from auth.rate_limit import charge_query_cost
from auth.store import unreachable_dependency
from observability import operation_label
from resolvers.audit_trail import record_reads
from resolvers.payments import holds_card_data
from schema.cost import operation_cost
from schema.errors import PublicError

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 3000

logger = logging.getLogger("ocis.graphql")


def _safe_depth_rule() -> type[ValidationRule]:
    measure = create_validator(MAX_DEPTH, None)

    class SafeDepthRule(ValidationRule):
        """Strawberry's depth rule, tolerant of unknown fragments (graphql-core reports those)."""

        def __init__(self, context: ValidationContext) -> None:
            with contextlib.suppress(KeyError):
                measure(context)
            super().__init__(context)

    return SafeDepthRule


# Built once: the validation cache is keyed by the rule classes, so a class made per request
# would never let it hit.
_DEPTH_RULE = _safe_depth_rule()
_ALIAS_RULE = create_alias_validator(MAX_ALIASES)
# Distinct documents whose parse and validation are kept; a persisted or trusted set is far
# smaller, and a flood of unique texts only evicts (functools.lru_cache).
DOCUMENT_CACHE_SIZE = 512


class DepthLimit(AddValidationRules):
    def __init__(self) -> None:
        super().__init__([_DEPTH_RULE])


class AliasLimit(AddValidationRules):
    def __init__(self) -> None:
        super().__init__([_ALIAS_RULE])


class DocumentParseCache(ParserCache):
    def __init__(self) -> None:
        super().__init__(maxsize=DOCUMENT_CACHE_SIZE)


class DocumentValidationCache(ValidationCache):
    """Keyed by the document and by the rule classes the guards added for this caller."""

    def __init__(self) -> None:
        super().__init__(maxsize=DOCUMENT_CACHE_SIZE)


class TokenLimit(MaxTokensLimiter):
    def __init__(self) -> None:
        super().__init__(max_token_count=MAX_TOKENS)


class _NoIntrospection(NoSchemaIntrospectionCustomRule):
    """graphql-core's rule (any field of an introspection type, fragments included), with
    one coded error for the whole document."""

    reported = False

    def report_error(self, error: GraphQLError) -> None:
        if not self.reported:
            self.reported = True
            super().report_error(
                GraphQLError(
                    "Introspection is not available; the published schema is the contract.",
                    error.nodes,
                    extensions={"code": "INTROSPECTION_FORBIDDEN"},
                )
            )

    def enter_field(self, node: FieldNode, *args: Any) -> None:
        if not self.reported:
            super().enter_field(node, *args)


class IntrospectionGuard(SchemaExtension):
    """`__schema` and `__type` only for callers who may introspect (auth.policy)."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        if not getattr(context.context, "introspection", False):
            context.validation_rules = (*context.validation_rules, _NoIntrospection)
        yield


class CardDataGuard(SchemaExtension):
    """Refuse, once parsed and before validation or any resolver, any operation whose values
    carry card data (P03).

    Judged on the values the operation uses, not on its text: the document's literals as
    parsed (escapes and block strings decoded), and the variables as sent and as coerced to
    their declared types.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        variables = context.variables or {}
        if document is not None and holds_card_data(
            _literals(document), [variables, *_coerced(context.schema._schema, document, variables)]
        ):
            raise PublicError(
                "Card numbers and security codes are never accepted; nothing was stored.",
                "CARD_DATA_REFUSED",
            )
        yield


def _literals(document: DocumentNode) -> list[object]:
    """Every argument and variable default the document writes, as plain values by name."""
    found: list[object] = []

    class Literals(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: object) -> None:
            found.append({node.name.value: value_from_ast_untyped(node.value, {})})

        def enter_variable_definition(self, node: VariableDefinitionNode, *_: object) -> None:
            if node.default_value is not None:
                found.append({node.variable.name.value: value_from_ast_untyped(node.default_value)})

    visit(document, Literals())
    return found


def _coerced(
    schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]
) -> list[object]:
    """The variables as each operation's declared types read them (where they can)."""
    values: list[object] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            coerced = get_variable_values(schema, definition.variable_definitions or (), variables)
            # graphql-core 3.3 answers VariableValues (sources, coerced), or a list of errors
            # when the variables do not fit; older releases answered the dict itself.
            if isinstance(coerced, VariableValues):
                values.append(coerced.coerced)
            elif isinstance(coerced, dict):
                values.append(coerced)
    return values


class QueryCost(SchemaExtension):
    """Price the operation once it is valid and before any resolver runs (schema/cost.py):
    refused above the per-request maximum, and charged against the caller's budget per minute
    in the shared store (the account when signed in, else the IP)."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        request = context.context
        if getattr(request, "cost_charged", False):
            yield  # a compiled plan priced and charged it (schema/plan.py)
            return
        cost = _cost_of(
            context.schema._schema,
            context.graphql_document,
            context.operation_name,
            context.variables or {},
        )
        if cost is not None:
            refusal = await _refusal(request, cost)
            if refusal is not None:
                if context.operation_type is OperationType.SUBSCRIPTION:
                    # A subscription starts whatever the result holds: refused by raising,
                    # which Strawberry answers as the operation's error, nothing subscribed.
                    raise refusal
                context.result = ExecutionResult(data=None, errors=[refusal])
        yield


def _cost_of(
    schema: GraphQLSchema,
    document: DocumentNode | None,
    operation_name: str | None,
    variables: dict[str, Any],
) -> int | None:
    """None when graphql-core will refuse the operation itself (no such operation, bad
    variables) without running anything."""
    if document is None:
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables)
    if isinstance(coerced, list):
        return None
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    return operation_cost(schema, operation, fragments, coerced.coerced)


async def _refusal(request: Any, cost: int) -> GraphQLError | None:
    maximum = getattr(request, "max_query_cost", None)
    if maximum is None:
        return None
    if cost > maximum:
        return GraphQLError(
            f"This query costs {cost}, above the maximum of {maximum} per request;"
            " ask for smaller pages or fewer nested lists.",
            extensions={"code": "QUERY_TOO_COSTLY", "cost": cost, "maxCost": maximum},
        )
    store = request.store
    if store is None:
        return None
    principal = request.principal
    decision = await charge_query_cost(
        store,
        account=str(principal.user_id) if principal.user_id is not None else None,
        ip=request.client_ip,
        cost=cost,
        budget=request.cost_budget_per_minute,
    )
    if decision.allowed:
        return None
    if request.response is not None:
        request.response.status_code = 429
        request.response.headers["Retry-After"] = str(decision.retry_after)
    return GraphQLError(
        f"Too many costly queries this minute (this one costs {cost}, the budget is"
        f" {request.cost_budget_per_minute} a minute); try again in {decision.retry_after} s.",
        extensions={
            "code": "RATE_LIMITED",
            "cost": cost,
            "retryAfterSeconds": decision.retry_after,
        },
    )


class OperationName(SchemaExtension):
    """Tell the request log and the metrics which operation ran (a label, never a value)."""

    def on_operation(self) -> Iterator[None]:
        yield
        state = getattr(self.execution_context.context, "request_state", None)
        if state is None:
            return
        try:
            name = self.execution_context.operation_name
        except Exception:  # noqa: BLE001 - a document that did not parse names nothing
            name = None
        state["operation"] = operation_label(name)


class AccessAudit(SchemaExtension):
    """Write one audit record per person whose personal data this request read (P20).

    It runs before the response leaves: if the trail cannot be written, the data is
    withheld and the caller gets an error instead.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        await self._record()

    async def on_stream_result(self, result: StreamExecutionResult) -> AsyncIterator[None]:
        """Each event of a subscription is a read of its own: recorded before it is sent, or
        withheld (an error instead of its data) when the trail cannot be written."""
        try:
            await self._record()
        except Exception as exc:  # noqa: BLE001 - the event is withheld either way
            if not isinstance(result, StrawberryResult):
                raise
            error = exc if isinstance(exc, PublicError) else _unexpected(self.execution_context)
            result.data = None
            result.errors = [GraphQLError(str(error), extensions=error.extensions)]
        yield

    async def _record(self) -> None:
        await write_reads(self.execution_context.context)


async def write_reads(context: Any) -> None:
    """Write the reads the request noted (a compiled plan's too, schema/plan.py).

    Raises what makes the whole answer a 503 when the database is unreachable (Outages
    below), and a PublicError, the data withheld, when the write failed otherwise."""
    if not getattr(context, "audit_reads", False) or not context.reads:
        return
    # Taken whole before writing: another subscription on the connection notes its own.
    reads = dict(context.reads)
    context.reads.clear()
    try:
        await record_reads(context.principal, reads)
    except Exception as exc:
        if unreachable_dependency(exc) is not None:
            raise
        logger.error(
            "audit trail write failed: %s (request %s)", type(exc).__name__, context.request_id
        )
        raise PublicError(
            "Unexpected error.", "INTERNAL_SERVER_ERROR", context.request_id
        ) from None


def _unexpected(execution_context: Any) -> PublicError:
    return PublicError(
        "Unexpected error.", "INTERNAL_SERVER_ERROR", execution_context.context.request_id
    )


def _is_public(error: GraphQLError) -> bool:
    """Resolver failures are public only when raised on purpose; request-shape errors are."""
    original = error.original_error
    if original is None or isinstance(original, PublicError):
        return True
    return not error.path and isinstance(original, (GraphQLError, ValueError, TypeError))


class MaskUnexpectedErrors(MaskErrors):
    """Show callers a generic message and a request id for anything unexpected."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: not _is_public(error))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        original = error.original_error
        logger.error(
            "unexpected %s at %s (request %s)",
            type(original).__name__ if original else "error",
            ".".join(str(part) for part in error.path or ()),
            request_id,
        )
        return GraphQLError(
            message="Unexpected error.",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


class Outages(SchemaExtension):
    """Note in the request state when Redis or the database could not be reached, wherever
    it happened (a resolver, the cost charge, the read audit), so that the view answers the
    whole request with a 503 instead of a masked error or a partial answer.

    Listed last, so it sees the errors before masking drops their causes."""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except Exception as failure:
            self._note(failure)
            raise
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or ():
            if error.original_error is not None:
                self._note(error.original_error)

    def _note(self, error: BaseException) -> None:
        dependency = unreachable_dependency(error)
        state = getattr(self.execution_context.context, "request_state", None)
        if dependency is not None and state is not None:
            state.setdefault("unreachable", dependency)


def limit_rules() -> tuple[type[ASTValidationRule], ...]:
    """The depth and alias limits as validation rules (for checking a document unrun)."""
    return (_DEPTH_RULE, _ALIAS_RULE)


EXTENSIONS: list[type[SchemaExtension]] = [
    IntrospectionGuard,
    OperationName,
    CardDataGuard,
    DepthLimit,
    AliasLimit,
    TokenLimit,
    DocumentParseCache,
    DocumentValidationCache,
    QueryCost,
    AccessAudit,
    MaskUnexpectedErrors,
    Outages,
]
