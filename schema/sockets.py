"""GraphQL over WebSocket at /graphql (graphql-transport-ws): who connects, and for how long.

A browser's handshake must come from our own origin or one of CORS_ORIGINS, as the CSRF rule
asks of cookie requests: a page elsewhere could otherwise open a socket that carries the
user's cookie. Any other Origin (`null` included) is refused with 403 before the connection is
accepted. The caller is authenticated at `connection_init`: the payload's `authorization`
(`Bearer <access token>`, the mobile app) or else the session cookie, which needs an allowed
Origin. No credentials, or ones that no longer hold, close the socket with 4401; a cookie
without an allowed Origin with 4403. Afterwards the connection checks its credentials again
whenever its account's sign-ins are announced as ended (sign out, sign out everywhere,
password change or reset, disabling) and every RECHECK_SECONDS besides, closes with 4401 once
they no longer hold, and judges every later event with the roles and team the account has
then.

Only subscriptions run here: queries and mutations go by POST (their CSRF, GPC and request-log
rules live there). With trusted documents only, a subscription must be a registered document,
as over HTTP. Limits: OCIS_LIVE_SOCKETS_PER_IP open sockets per client address in one
process (past it, 1013 at once: schema/view.py), MAX_SUBSCRIPTIONS per connection,
CONNECTION_INIT_WAIT to send `connection_init`, and every operation's depth, alias, token and
cost limits (schema/extensions.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from graphql.error import GraphQLSyntaxError
from starlette.websockets import WebSocket
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)

import settings as config
from auth import tokens
from auth.csrf import origin_allowed
from auth.policy import may_introspect, may_run_unregistered_documents
from auth.principal import Principal
from auth.sessions import resolve_session, session_cookie_name
from auth.store import unreachable_dependency
from schema.context import Context
from schema.documents import DocumentRefused, check_document, choose_document

RECHECK_SECONDS = 15.0
MAX_SUBSCRIPTIONS = 10
CONNECTION_INIT_WAIT = timedelta(seconds=5)

# graphql-transport-ws's codes (a client does not retry them) and RFC 6455's.
UNAUTHORIZED = 4401
FORBIDDEN = 4403
UNAVAILABLE = 1011
TRY_AGAIN_LATER = 1013
EXPIRED_MESSAGE = "Your sign-in has ended; sign in again."

logger = logging.getLogger("ocis.live")


def origin_refused(websocket: WebSocket, settings: config.Settings) -> bool:
    """A browser's handshake (it always sends Origin) from anywhere but our origins."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return False  # not a browser: it carries no ambient cookie of a victim's
    return origin == "null" or not origin_allowed(origin, settings.allowed_origins)


@dataclass(frozen=True, slots=True)
class Credential:
    """What authenticated a connection, checked again for as long as it stays open."""

    authorization: str | None = None
    session: str | None = None

    async def principal(self, websocket: WebSocket, request_id: str) -> Principal | None:
        """The caller these credentials stand for now, or None once they no longer hold."""
        settings: config.Settings = websocket.app.state.settings
        store = websocket.app.state.store
        if self.authorization is not None:
            return await tokens.authenticate_bearer(store, settings, self.authorization, request_id)
        principal = await resolve_session(store, self.session, request_id)
        return principal if principal.user_id is not None else None


class LiveSocketHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, with OCIS's authentication and rules."""

    context: Context

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.credential: Credential | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.closing: asyncio.Task[None] | None = None
        if self.context.live is not None:
            self.context.live.drop = self.drop
            self.context.live.caller_now = self.caller_now

    @property
    def socket(self) -> WebSocket:
        socket: WebSocket = self.websocket.ws  # type: ignore[attr-defined]
        return socket

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload") or {}
        if (
            self.connection_timed_out
            or self.connection_init_received
            or not isinstance(payload, dict)
        ):
            await super().handle_connection_init(message)
            return
        try:
            refusal = await self._authenticate(payload)
        except Exception as error:
            if unreachable_dependency(error) is None:
                raise
            refusal = (UNAVAILABLE, "Service unavailable; try again.")
        if refusal is not None:
            self.connection_init_received = True
            if self.connection_init_timeout_task is not None:
                self.connection_init_timeout_task.cancel()
            await self.websocket.close(*refusal)
            return
        await super().handle_connection_init(message)
        self.watcher = asyncio.create_task(self._watch())

    async def _authenticate(self, payload: dict[str, object]) -> tuple[int, str] | None:
        settings: config.Settings = self.socket.app.state.settings
        authorization = payload.get("authorization")
        if authorization is not None:
            if not isinstance(authorization, str):
                return UNAUTHORIZED, "authorization must be 'Bearer <access token>'."
            credential = Credential(authorization=authorization)
        else:
            session = self.socket.cookies.get(session_cookie_name(secure=settings.secure_cookies))
            if session is None:
                return UNAUTHORIZED, "Sign in first."
            if self.socket.headers.get("origin") is None:
                return FORBIDDEN, "A session cookie is accepted only from our own pages."
            credential = Credential(session=session)
        principal = await credential.principal(self.socket, self.context.request_id)
        if principal is None:
            return UNAUTHORIZED, EXPIRED_MESSAGE
        self.credential = credential
        self._adopt(principal)
        return None

    def _adopt(self, principal: Principal) -> None:
        settings: config.Settings = self.socket.app.state.settings
        self.context.principal = principal.with_request_id(self.context.request_id)
        self.context.introspection = may_introspect(principal, production=settings.is_production)

    async def _watch(self) -> None:
        """Check the credentials again when told, and every RECHECK_SECONDS."""
        connection, user_id = self.context.live, self.context.principal.user_id
        if connection is None or user_id is None:
            return
        with connection.hub.account_watch(user_id) as announced:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(announced.wait(), RECHECK_SECONDS)
                announced.clear()
                try:
                    if await self.caller_now() is None:
                        return
                except Exception as error:  # noqa: BLE001 - judged again at the next check
                    logger.warning(
                        "live connection check failed: %s (request %s)",
                        type(error).__name__,
                        self.context.request_id,
                    )

    async def caller_now(self) -> Principal | None:
        """Check the credentials again: the caller as they stand now, or None (and the
        connection closing) once they no longer hold."""
        if self.credential is None:
            return None
        principal = await self.credential.principal(self.socket, self.context.request_id)
        if principal is None or principal.user_id != self.context.principal.user_id:
            self.drop(UNAUTHORIZED, EXPIRED_MESSAGE)
            return None
        self._adopt(principal)
        return self.context.principal

    def drop(self, code: int, reason: str) -> None:
        """Close the connection from outside its tasks (a subscriber that fell behind)."""
        if self.closing is None:
            self.closing = asyncio.create_task(self.close(code, reason))

    async def close(self, code: int, reason: str) -> None:
        """End every subscription, then the socket."""
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        with contextlib.suppress(RuntimeError):  # already closed by the other side
            await self.websocket.close(code, reason)

    async def shutdown(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watcher
        await super().shutdown()

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not self.connection_acknowledged or not isinstance(message.get("payload"), dict):
            await super().handle_subscribe(message)
            return
        payload = message["payload"]
        try:
            query = await self._document(payload)
        except DocumentRefused as refusal:
            await self._refuse(message["id"], refusal.message, refusal.code)
            return
        if query is not None:
            try:
                operation = get_operation_ast(parse(query), payload.get("operationName"))
            except GraphQLSyntaxError:
                operation = None  # Strawberry closes the socket with the syntax error
            if operation is not None and operation.operation != OperationType.SUBSCRIPTION:
                await self._refuse(
                    message["id"], "Send queries and mutations by POST /graphql.", "BAD_REQUEST"
                )
                return
            message = {**message, "payload": {**payload, "query": query}}
        await super().handle_subscribe(message)

    async def _document(self, payload: Any) -> str | None:
        """The subscription's text: its own, or the registered document its hash names."""
        settings: config.Settings = self.socket.app.state.settings
        extensions = payload.get("extensions")
        chosen = await choose_document(
            self.socket.app.state.documents,
            payload.get("query"),
            extensions if isinstance(extensions, dict) else None,
            may_run_unregistered=may_run_unregistered_documents(
                self.context.principal, trusted_only=settings.trusted_documents_only
            ),
            # A client's subscription is never registered by itself (the registry holds what
            # HTTP runs); a manifest may register subscriptions.
            register_automatically=False,
            check=functools.partial(check_document, max_cost=settings.max_query_cost),
        )
        return chosen.text

    async def _refuse(self, operation_id: str, message: str, code: str) -> None:
        error = GraphQLError(message, extensions={"code": code})
        await self.send_message({"id": operation_id, "type": "error", "payload": [error.formatted]})
