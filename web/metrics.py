"""`GET /metrics`: Prometheus metrics for whoever holds OCIS_METRICS_TOKEN, and nobody else.

Off (404, like any unknown path) while the token is unset; a missing or wrong token is 401.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from observability import exposition
from web.requests import settings_of


async def metrics(request: Request) -> Response:
    token = settings_of(request).metrics_token
    if not token:
        return PlainTextResponse("Not Found", status_code=404)
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        offered.strip().encode(), token.encode()
    ):
        return PlainTextResponse(
            "A bearer token is required.",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body, content_type = exposition()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
