"""The mobile app's token endpoint: code exchange and refresh."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth import rate_limit, tokens
from resolvers import sign_in
from web.bodies import read_params
from web.requests import client_of, ip_of, request_id_of, settings_of, store_of
from web.responses import too_many_attempts


async def token_endpoint(request: Request) -> Response:
    """The mobile app's code exchange and refresh; errors as RFC 6749 says, no details."""
    received_at = time.time()  # before any await: tells a parallel refresh from a replay
    store = store_of(request)
    params = await read_params(request)
    account = await tokens.account_of(store, params) if params is not None else None
    decision = await rate_limit.token_attempt(store, ip=ip_of(request), account=account)
    if not decision.allowed:
        return too_many_attempts(decision)
    try:
        if params is None:
            raise tokens.InvalidRequest
        grant = await tokens.token_request(
            store,
            settings_of(request),
            params,
            client=client_of(request),
            received_at=received_at,
        )
    except tokens.CredentialReuse as reuse:
        await sign_in.record_credential_reuse(reuse, request_id_of(request))
        return JSONResponse({"error": reuse.code}, status_code=400)
    except tokens.TokenError as problem:
        return JSONResponse({"error": problem.code}, status_code=400)
    return JSONResponse(grant.response())
