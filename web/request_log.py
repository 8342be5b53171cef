"""One JSON log line and one metrics sample per HTTP request, with nothing personal in either.

The line names the request id, method, route template (never the path: paths carry tokens),
the GraphQL operation's name, the status and the duration; no client IP, header, query string
or body. uvicorn's own access log, which prints client IPs, is off under `serve`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability import LATENCY, REQUESTS

logger = logging.getLogger("ocis.request")


class RequestLog:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match != Match.NONE:
                return str(getattr(route, "path", "other"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = time.perf_counter() - started
            route = self._route(scope)
            operation = str(state.get("operation", "-"))
            REQUESTS.labels(route, operation, str(status)).inc()
            LATENCY.labels(route, operation).observe(seconds)
            logger.info(
                "request",
                extra={
                    "request_id": state.get("request_id"),
                    "method": scope.get("method"),
                    "route": route,
                    "operation": operation,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
