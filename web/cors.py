"""CORS for the web frontend: the origins of CORS_ORIGINS only, with credentials.

Starlette's middleware does the work. Narrowed here so that an origin outside the list gets no
CORS header at all: Starlette sends `Access-Control-Allow-Credentials` to any origin, and its
refused preflights carry the allowed methods and headers.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Send

ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("authorization", "content-type")
# Read by the frontend: the request id it quotes to support, and when to retry after a 429.
EXPOSED_HEADERS = ("retry-after", "x-request-id")


class Cors(CORSMiddleware):
    """Answer preflights and mark answers for the allowed origins; refuse every other origin."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=True,
            expose_headers=EXPOSED_HEADERS,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        refused = PlainTextResponse("CORS request refused.", status_code=403)
        refused.headers["vary"] = "Origin"
        return refused

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if (
            message["type"] == "http.response.start"
            and origin is not None
            and not self.is_allowed_origin(origin)
        ):
            message.setdefault("headers", [])
            MutableHeaders(scope=message).add_vary_header("Origin")
            await send(message)
            return
        await super().send(message, send, request_headers)
