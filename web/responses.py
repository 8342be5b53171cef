"""Answers shared by the endpoints, and the no-store rule for credentials and personal data."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth import rate_limit


def error(message: str, status_code: int, **extra: object) -> Response:
    return JSONResponse({"error": message, **extra}, status_code=status_code)


def graphql_error(
    message: str, code: str, status_code: int, headers: dict[str, str] | None = None
) -> Response:
    """An answer shaped as a GraphQL response with one coded error and no `data`."""
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status_code,
        headers=headers,
    )


def too_many_attempts(decision: rate_limit.Decision) -> Response:
    return JSONResponse(
        {"error": "Too many attempts. Try again later.", "retryAfterSeconds": decision.retry_after},
        status_code=429,
        headers={"Retry-After": str(decision.retry_after)},
    )


class NoStore:
    """Route middleware: sign-in, token and GraphQL answers carry credentials or personal
    data, so no cache (browser or shared) may keep any of them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in (b"cache-control", b"pragma")
                ]
                headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_no_store)
