"""The GraphQL HTTP view: the per-request context, and one JSON object per request."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

import settings as config
from auth.policy import may_introspect
from auth.principal import ANONYMOUS
from auth.store import DependencyUnavailable
from observability import GRAPHQL_ERRORS
from schema import Context, schema


class NotOneOperation(Exception):
    """The body is JSON but not one operation object (a string, number, array or null)."""


class OcisGraphQL(GraphQL[Context, None]):
    """Reads the caller that the web layer identified from the request state."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except NotOneOperation:
            response = JSONResponse(
                {
                    "errors": [
                        {
                            "message": "Send one GraphQL operation as a JSON object"
                            " (batched requests are not supported).",
                            "extensions": {"code": "BAD_REQUEST"},
                        }
                    ]
                },
                status_code=400,
            )
            await response(scope, receive, send)

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict):
            raise NotOneOperation
        return parsed

    async def get_context(self, request: Any, response: Any) -> Context:
        state = request.scope.get("state", {})
        settings: config.Settings = request.app.state.settings
        principal = state.get("principal", ANONYMOUS)
        return Context(
            principal=principal,
            request_id=state.get("request_id", uuid.uuid4().hex),
            client_ip=state.get("client_ip"),
            user_agent=request.headers.get("user-agent"),
            privacy_contact=settings.privacy_contact,
            public_url=settings.public_url,
            audit_reads=settings.audit_reads,
            introspection=may_introspect(principal, production=settings.is_production),
            routing=settings.routing,
            max_query_cost=settings.max_query_cost,
            cost_budget_per_minute=settings.cost_budget_per_minute,
            store=request.app.state.store,
            response=response,
            request_state=state,
        )

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        unreachable = request.scope.get("state", {}).get("unreachable")
        if unreachable is not None:
            # Answered by the web layer's 503 (web/outages.py), never as partial data.
            raise DependencyUnavailable(unreachable)
        answer = await super().process_result(request, result)
        for error in answer.get("errors") or ():
            extensions = error.get("extensions") if isinstance(error, dict) else None
            code = extensions.get("code") if isinstance(extensions, dict) else None
            GRAPHQL_ERRORS.labels(code if isinstance(code, str) else "UNCODED").inc()
        return answer


def graphql_view() -> OcisGraphQL:
    """The view at /graphql: POST only, no IDE."""
    return OcisGraphQL(schema, graphql_ide=None, allow_queries_via_get=False)
