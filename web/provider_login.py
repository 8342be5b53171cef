"""Start the code flow with a provider: web, mobile, or linking while signed in."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from auth import rate_limit
from auth.oidc import TRANSACTION_TTL, Gateway
from auth.redirects import Intent, mobile_intent, same_origin_path
from auth.sessions import resolve_session
from web import cookies
from web.bodies import read_params
from web.requests import ip_of, same_site_json, settings_of, store_of
from web.responses import error, too_many_attempts


async def provider_login(request: Request) -> Response:
    """Start the code flow with a provider (web, mobile, or linking while signed in)."""
    settings, store = settings_of(request), store_of(request)
    gateway: Gateway = request.app.state.gateway
    # Counted before anything else: every start writes a transaction to the store.
    decision = await rate_limit.login_start_attempt(store, ip=ip_of(request))
    if not decision.allowed:
        return too_many_attempts(decision)
    provider = gateway.provider(request.path_params["provider"])
    if provider is None:
        return error("Unknown sign-in provider.", 404)
    params: Mapping[str, str] = request.query_params
    linking = request.method == "POST"
    if linking:
        # Linking acts for the signed-in person, so it starts like any cookie-authenticated
        # change: a JSON POST from our origin, never a cross-site link or form.
        if not same_site_json(request):
            return error("Start linking from the OCIS site.", 403)
        params = await read_params(request) or {}
    elif params.get("link") == "1":
        return error("Start linking with a POST from the OCIS site.", 405)
    intent: Intent = {"client": "web", "next": same_origin_path(params.get("next"))}
    link_token = params.get("linkToken")
    if link_token and len(link_token) <= 128:
        # Signing in here through a provider already linked proves control of the account
        # a pending link (from this browser) waits for.
        intent["link_token"] = link_token
    if linking:
        principal = await resolve_session(store, cookies.read_cookie(request, settings), None)
        if principal.user_id is None:
            return error("Sign in first to link an account.", 401)
        intent["link_user_id"] = str(principal.user_id)
    if params.get("client") == "mobile":
        mobile = mobile_intent(params)
        if mobile is None:
            return error("Unknown mobile client or redirect.", 400)
        intent["client"] = mobile["client"]
        intent["client_id"] = mobile["client_id"]
        intent["redirect_uri"] = mobile["redirect_uri"]
        intent["code_challenge"] = mobile["code_challenge"]
    redirect_uri = f"{settings.public_url}/auth/callback/{provider.name}"
    url, binding = await gateway.begin(provider, redirect_uri=redirect_uri, intent=intent)
    response: Response = (
        JSONResponse({"location": url}) if linking else RedirectResponse(url, status_code=302)
    )
    cookies.set_cookie(response, settings, cookies.LOGIN, binding, TRANSACTION_TTL)
    return response
