"""The GraphQL view: the per-request context, and one JSON object per request; subscriptions
over WebSocket at the same path (schema/sockets.py).

Over HTTP it speaks the GraphQL-over-HTTP specification: `application/graphql-response+json` or
`application/json` chosen by `Accept` (406 when neither is acceptable), request errors as 400
without `data` in the former, 405 for GET when it is off and for mutations over GET, 415 for
bodies that are not JSON.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

import settings as config
from auth.client_ip import client_ip
from auth.policy import may_introspect, may_run_unregistered_documents
from auth.principal import ANONYMOUS
from auth.store import DependencyUnavailable
from auth.visitor_ids import VisitorIds
from models import ConsentSource
from observability import GRAPHQL_ERRORS
from resolvers.live import Hub
from schema import Context, schema
from schema.context import LiveConnection
from schema.documents import DocumentRefused, check_document, choose_document
from schema.media_types import GRAPHQL_RESPONSE, JSON, negotiate
from schema.plan import plan_for
from schema.sockets import (
    CONNECTION_INIT_WAIT,
    MAX_SUBSCRIPTIONS,
    TRY_AGAIN_LATER,
    LiveSocketHandler,
    origin_refused,
)

# Where the view keeps, in the request state, what it decided about this request.
MEDIA_TYPE = "graphql_media_type"
REQUEST_ERROR = "graphql_request_error"


class NotOneOperation(Exception):
    """The body is JSON but not one operation object (a string, number, array or null)."""


def request_error(
    message: str, code: str, status_code: int, media_type: str = JSON, **headers: str
) -> Response:
    """An answer with no GraphQL result: one coded error, no `data`."""
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status_code,
        media_type=media_type,
        headers=headers or None,
    )


def _http_error(error: HTTPException, method: str, media_type: str) -> Response:
    """Strawberry's refusals, with the status codes the specification asks for."""
    refused = error.__cause__
    if (
        isinstance(refused, InvalidOperationTypeError)
        and refused.operation_type == OperationType.SUBSCRIPTION
        and method == "POST"
    ):
        return request_error(
            "Subscribe over WebSocket at /graphql (graphql-transport-ws).",
            "BAD_REQUEST",
            400,
            media_type,
        )
    if isinstance(refused, InvalidOperationTypeError) and method == "GET":
        return request_error(
            "Only queries may be sent by GET; send mutations by POST.",
            "METHOD_NOT_ALLOWED",
            405,
            media_type,
            allow="POST",
        )
    code = "UNSUPPORTED_MEDIA_TYPE" if error.status_code == 415 else "BAD_REQUEST"
    return request_error(error.reason, code, error.status_code, media_type)


def _socket_address(websocket: WebSocket) -> str | None:
    """The client address of a WebSocket, read as a request's is (auth/client_ip.py)."""
    settings: config.Settings = websocket.app.state.settings
    peer = websocket.client.host if websocket.client else None
    forwarded_for = ", ".join(websocket.headers.getlist("x-forwarded-for")) or None
    return client_ip(peer, forwarded_for, settings.trusted_proxies)


TOO_MANY_SOCKETS = "Too many live connections from your address; close one or try again later."


async def _turn_away(websocket: WebSocket) -> None:
    """An address that holds all its sockets already: accepted (so that the client reads why)
    and closed at once with 1013, try again later."""
    offered = websocket.scope.get("subprotocols") or []
    ours = GRAPHQL_TRANSPORT_WS_PROTOCOL
    await websocket.accept(subprotocol=ours if ours in offered else None)
    await websocket.close(code=TRY_AGAIN_LATER, reason=TOO_MANY_SOCKETS)


class TextFrames(ASGIWebSocketAdapter):
    """graphql-transport-ws messages are text frames: bytes from `encode_json` would go as
    binary frames, which a browser hands graphql-ws as a Blob it cannot read."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as closed:
            raise WebSocketDisconnected from closed


class OcisGraphQL(GraphQL[Context, None]):
    """Reads the caller that the web layer identified from the request state; a WebSocket
    authenticates at `connection_init` instead (schema/sockets.py)."""

    graphql_transport_ws_handler_class = LiveSocketHandler
    websocket_adapter_class = TextFrames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            settings: config.Settings = websocket.app.state.settings
            if origin_refused(websocket, settings):
                await websocket.close()  # before accepting: the handshake is answered 403
                return
            hub: Hub = websocket.app.state.live
            with hub.socket_slot(_socket_address(websocket), settings.live_sockets_per_ip) as room:
                if room:
                    await self.run(websocket)
                    return
            await _turn_away(websocket)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        media_type = negotiate(request.headers.get("accept"))
        response = await self._answer(request, media_type)
        MutableHeaders(raw=response.raw_headers).add_vary_header("Accept")
        await response(scope, receive, send)

    async def _answer(self, request: Request, media_type: str | None) -> Response:
        if media_type is None:
            return request_error(f"Accept {GRAPHQL_RESPONSE} or {JSON}.", "NOT_ACCEPTABLE", 406)
        if request.method == "GET" and not request.app.state.settings.queries_via_get:
            return request_error(
                "Send GraphQL operations by POST.",
                "METHOD_NOT_ALLOWED",
                405,
                media_type,
                allow="POST",
            )
        state = request.scope.setdefault("state", {})
        state[MEDIA_TYPE] = media_type
        try:
            response = await self.run(request)
        except HTTPException as error:
            return _http_error(error, request.method, media_type)
        except DocumentRefused as refusal:
            GRAPHQL_ERRORS.labels(refusal.code).inc()
            return request_error(refusal.message, refusal.code, refusal.status_code, media_type)
        except NotOneOperation:
            return request_error(
                "Send one GraphQL operation as a JSON object (batched requests are not supported).",
                "BAD_REQUEST",
                400,
                media_type,
            )
        if media_type == GRAPHQL_RESPONSE:
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
            if state.get(REQUEST_ERROR) and response.status_code == 200:
                response.status_code = 400
        return response

    async def execute_single(  # noqa: PLR0917 - Strawberry's signature
        self,
        request: Any,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Run the request's own text, or the registered document its hash names."""
        settings: config.Settings = request.app.state.settings
        chosen = await choose_document(
            request.app.state.documents,
            request_data.query,
            request_data.extensions,
            may_run_unregistered=may_run_unregistered_documents(
                context.principal, trusted_only=settings.trusted_documents_only
            ),
            register_automatically=not settings.trusted_documents_only,
            check=functools.partial(
                check_document, max_cost=settings.max_query_cost, automatic=True
            ),
        )
        # Subscriptions go over the WebSocket; POST and GET run queries and mutations only.
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        if request_adapter.method == "GET" and not self.allow_queries_via_get:
            allowed -= {OperationType.QUERY}
        query = chosen.text
        if chosen.registered and query is not None and OperationType.QUERY in allowed:
            plan = plan_for(query, request_data.operation_name)
            if plan is not None:
                planned = await plan.run(context, request_data.variables)
                if planned is not None:
                    return planned
        try:
            return await self.schema.execute(
                query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except InvalidOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason(request_adapter.method)) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error

    def encode_json(self, data: object) -> bytes:
        """orjson: the same compact JSON with keys in order, several times faster than
        ``json.dumps`` on a page of tickets; characters beyond ASCII as UTF-8, not escapes.
        Bytes suit HTTP; a WebSocket's frames are text (TextFrames, below)."""
        return orjson.dumps(data)

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        return False  # the console is /console; /graphql answers JSON to browsers too

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST":
            raw = request.content_type or ""
            # The common header as sent needs no parsing (email.message's parser is slow).
            content_type = JSON if raw == JSON else parse_content_type(raw)[0]
            if content_type != JSON:
                raise HTTPException(
                    415, "Send the operation as JSON (Content-Type: application/json)."
                )
        return await super().parse_http_body(request)

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict):
            raise NotOneOperation
        return parsed

    async def get_context(self, request: Any, response: Any) -> Context:
        if isinstance(request, WebSocket):
            return self._connection_context(request)
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
            visitor_ids=VisitorIds((settings.master_key, *settings.previous_master_keys)),
            consent_source=ConsentSource.MOBILE
            if state.get("authenticated_by") == "bearer"
            else ConsentSource.WEB,
            gpc=request.headers.get("sec-gpc") == "1",
            gpc_done_for=state.get("gpc_done_for"),
            secure_cookies=settings.secure_cookies,
        )

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        # Ours is the one rule (schema/sockets.py origin_refused), already applied.
        return not origin_refused(request, request.app.state.settings)

    def _connection_context(self, websocket: WebSocket) -> Context:
        """A WebSocket's context: anonymous until `connection_init` names the caller."""
        settings: config.Settings = websocket.app.state.settings
        return Context(
            principal=ANONYMOUS,
            request_id=uuid.uuid4().hex,
            client_ip=_socket_address(websocket),
            user_agent=websocket.headers.get("user-agent"),
            privacy_contact=settings.privacy_contact,
            public_url=settings.public_url,
            audit_reads=settings.audit_reads,
            introspection=False,
            routing=settings.routing,
            max_query_cost=settings.max_query_cost,
            cost_budget_per_minute=settings.cost_budget_per_minute,
            store=websocket.app.state.store,
            visitor_ids=VisitorIds((settings.master_key, *settings.previous_master_keys)),
            secure_cookies=settings.secure_cookies,
            live=LiveConnection(hub=websocket.app.state.live),
        )

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        unreachable = request.scope.get("state", {}).get("unreachable")
        if unreachable is not None:
            # Answered by the web layer's 503 (web/outages.py), never as partial data.
            raise DependencyUnavailable(unreachable)
        answer = await super().process_result(request, result)
        # No result at all (a document that does not parse or validate, variables that do not
        # coerce): a request error, whose errors have no path.
        state = request.scope.get("state", {})
        if (
            result.data is None
            and result.errors
            and all(error.path is None for error in result.errors)
            and state.get(MEDIA_TYPE) == GRAPHQL_RESPONSE
        ):
            state[REQUEST_ERROR] = True
            answer.pop("data", None)
        for error in answer.get("errors") or ():
            extensions = error.get("extensions") if isinstance(error, dict) else None
            code = extensions.get("code") if isinstance(extensions, dict) else None
            GRAPHQL_ERRORS.labels(code if isinstance(code, str) else "UNCODED").inc()
        return answer


def graphql_view() -> OcisGraphQL:
    """The view at /graphql: POST, queries by GET where the settings allow it, no IDE, and
    subscriptions over WebSocket with graphql-transport-ws only."""
    return OcisGraphQL(
        schema,
        graphql_ide=None,
        allow_queries_via_get=True,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=CONNECTION_INIT_WAIT,
        max_subscriptions_per_connection=MAX_SUBSCRIPTIONS,
    )
