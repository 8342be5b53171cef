"""The public keys that verify the app's access tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth import tokens
from web.requests import settings_of


async def jwks(request: Request) -> Response:
    """The public keys of the app's access tokens, cacheable for five minutes."""
    keys = tokens.jwks(settings_of(request))
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})
