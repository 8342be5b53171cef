"""One answer for a request that Redis or the database could not serve: 503 SERVICE_UNAVAILABLE.

Whatever needed the dependency (a session or token check, a rate limit, the query-cost budget,
a read or a write) fails the whole request, so an outage is never taken for "signed out" or
"under the limit". GraphQL gets a GraphQL-shaped body, every other route plain JSON.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.store import unreachable_dependency

CODE = "SERVICE_UNAVAILABLE"
MESSAGE = "The service is briefly unavailable; nothing was done. Try again shortly."
RETRY_AFTER_SECONDS = 1

logger = logging.getLogger("ocis.outages")


class Outages:
    """Map a failure to reach Redis or the database to a 503, unless the answer has started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception as error:
            dependency = unreachable_dependency(error)
            if dependency is None or started:
                raise
            request_id = scope.get("state", {}).get("request_id")
            logger.warning(
                "%s unreachable (%s): answered 503 (request %s)",
                dependency,
                type(error).__name__,
                request_id,
            )
            await unavailable(scope, request_id)(scope, receive, send)


def unavailable(scope: Scope, request_id: str | None) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
    if scope.get("path") == "/graphql":
        extensions = {"code": CODE, **({"requestId": request_id} if request_id else {})}
        body: dict[str, object] = {
            "data": None,
            "errors": [{"message": MESSAGE, "extensions": extensions}],
        }
    else:
        body = {"error": MESSAGE, "code": CODE}
    return JSONResponse(body, status_code=503, headers=headers)
