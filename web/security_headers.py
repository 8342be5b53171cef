"""Headers on every answer: no sniffing, no framing, origin-only referrers, and HSTS over TLS."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import settings as config
from auth.client_ip import from_trusted_proxy

# strict-origin rather than no-referrer: under no-referrer a browser sends `Origin: null` on a
# same-origin POST, which the CSRF rule would refuse; strict-origin still never leaks a path.
ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
# A route's own Content-Security-Policy stays: a browser enforces every policy it receives.
REPLACED = frozenset({b"x-content-type-options", b"referrer-policy", HSTS[0]})


def came_over_tls(scope: Scope) -> bool:
    """Whether the client reached us over https: our own TLS, or a trusted proxy's word."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    settings: config.Settings = scope["app"].state.settings
    client = scope.get("client")
    if not from_trusted_proxy(client[0] if client else None, settings.trusted_proxies):
        return False
    forwarded = b",".join(value for name, value in scope["headers"] if name == b"x-forwarded-proto")
    # The right-most entry is the one our trusted peer wrote; what is left of it, anyone could.
    return forwarded.split(b",")[-1].strip().lower() == b"https"


def security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    return [*ALWAYS, HSTS] if came_over_tls(scope) else list(ALWAYS)


class SecurityHeaders:
    """Outermost middleware: add the security headers to every response a route or limit sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in REPLACED
                ]
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """The 500 Starlette sends for an unhandled error, which no user middleware wraps."""
    return PlainTextResponse(
        "Internal Server Error",
        status_code=500,
        headers={name.decode(): value.decode() for name, value in security_headers(request.scope)},
    )
