"""Who calls /graphql: a bearer token, or a session cookie under the CSRF rule.

No credentials at all is an anonymous caller. Credentials that no longer hold (a session
revoked, expired or never issued, a malformed cookie, a bearer token that does not verify)
are refused with 401 `SESSION_EXPIRED`, so the client knows to sign in again instead of
silently seeing the anonymous view; the refused session cookie is cleared.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from auth import tokens
from auth.principal import ANONYMOUS, Principal
from auth.sessions import resolve_session
from resolvers import consents
from web.cookies import SESSION, forget_cookie, read_cookie
from web.requests import (
    consent_cookie_of,
    ip_of,
    same_site_json,
    settings_of,
    store_of,
    visitor_ids_of,
)
from web.responses import graphql_error

SESSION_EXPIRED = "SESSION_EXPIRED"
EXPIRED_MESSAGE = "Your sign-in has ended; sign in again."


class CallerIdentification:
    """Put the caller's principal and IP in the request state, then run the app (GraphQL)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        settings, store = settings_of(request), store_of(request)
        state = scope.setdefault("state", {})
        token = read_cookie(request, settings)
        principal: Principal = ANONYMOUS
        authorization = request.headers.get("authorization")
        if authorization is not None:
            # Browsers never attach a bearer token by themselves: no CSRF check. An invalid one
            # is refused, not downgraded to anonymous, so the app knows to refresh or sign in.
            bearer = await tokens.authenticate_bearer(
                store, settings, authorization, state.get("request_id")
            )
            if bearer is None:
                response = graphql_error(
                    EXPIRED_MESSAGE,
                    SESSION_EXPIRED,
                    401,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
                await response(scope, receive, send)
                return
            principal = bearer
            state["authenticated_by"] = "bearer"
        elif token is not None:
            if not same_site_json(request):
                response = graphql_error(
                    "Cookie-authenticated requests must be JSON POSTs from our origin.",
                    "CROSS_SITE",
                    403,
                )
                await response(scope, receive, send)
                return
            principal = await resolve_session(store, token, state.get("request_id"))
            if principal.user_id is None:
                response = graphql_error(EXPIRED_MESSAGE, SESSION_EXPIRED, 401)
                forget_cookie(response, settings, SESSION)
                await response(scope, receive, send)
                return
            state["authenticated_by"] = "cookie"
        principal = principal.with_request_id(state["request_id"])
        state["principal"] = principal
        state["client_ip"] = ip_of(request)
        # GET never changes anything, the GPC signal's record included.
        if request.method == "POST" and request.headers.get("sec-gpc") == "1":
            await _honour_gpc(request, principal, state)
        await self.app(scope, receive, send)


async def _honour_gpc(request: Request, principal: Principal, state: dict[str, object]) -> None:
    """Global Privacy Control: the caller's (account's, or consent cookie's visitor's) objection
    to marketing, recorded once per ledger, before the operation runs."""
    visitor_ids = visitor_ids_of(request)
    cookie = None if principal.user_id is not None else consent_cookie_of(request)
    owner = principal.user_id or visitor_ids.verify(cookie)
    if owner is None:
        return
    await consents.honour_gpc(
        principal,
        owner,
        ip_address=ip_of(request),
        user_agent=request.headers.get("user-agent"),
    )
    state["gpc_done_for"] = owner
