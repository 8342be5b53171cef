"""A subject's export download and the export's JSON Schema.

`GET /privacy/exports/{id}` is authorised by the subject's own session cookie or by the
link's secret (`?token=`); it streams the decrypted parts. Anything else (an unknown or
malformed id, someone else's export, a wrong secret) is the same 404; an export expired or
downloaded its last time is 410. The cookie on a GET is safe here: the session cookie is
SameSite, and the download changes only a counter that the subject's own browser spends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from auth.principal import ANONYMOUS, Principal
from auth.sessions import resolve_session
from resolvers import exports
from web.cookies import read_cookie
from web.requests import request_id_of, settings_of, store_of

NOT_FOUND = {"error": "NOT_FOUND", "message": "No such export, or this link is not valid."}
GONE = {
    "error": "GONE",
    "message": "This export has expired or was downloaded as many times as allowed; ask again.",
}


async def _principal(request: Request) -> Principal:
    token = read_cookie(request, settings_of(request))
    if token is None:
        return ANONYMOUS
    principal = await resolve_session(store_of(request), token, request_id_of(request))
    return principal.with_request_id(request_id_of(request))


async def export_download(request: Request) -> Response:
    principal = await _principal(request)
    try:
        export, body = await exports.download(
            principal, request.path_params["export_id"], request.query_params.get("token")
        )
    except exports.DownloadRefused as refused:
        return JSONResponse(GONE if refused.gone else NOT_FOUND, 410 if refused.gone else 404)

    async def encoded() -> AsyncIterator[bytes]:
        async for piece in body:
            yield piece.encode()

    return StreamingResponse(
        encoded(),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="ocis-{export.kind.value}-export.json"',
            "Cache-Control": "no-store",
        },
    )


async def export_schema(request: Request) -> Response:
    return Response(exports.schema_text(), media_type="application/schema+json")
