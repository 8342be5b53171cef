"""The provider's callback: sign in, link, or send the browser to the next step."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth import rate_limit
from auth.identities import PENDING_TTL
from auth.oidc import Gateway
from resolvers import sign_in
from web import cookies
from web.requests import ip_of, request_id_of, settings_of, store_of
from web.responses import error, too_many_attempts
from web.sign_in import finish_sign_in


async def provider_callback(request: Request) -> Response:
    """Finish the code flow: verify, map the identity, then sign in, link or ask for more."""
    settings, store = settings_of(request), store_of(request)
    gateway: Gateway = request.app.state.gateway
    provider = gateway.provider(request.path_params["provider"])
    if provider is None:
        return error("Unknown sign-in provider.", 404)
    decision = await rate_limit.callback_attempt(store, ip=ip_of(request))
    if not decision.allowed:
        return too_many_attempts(decision)
    params = request.query_params
    try:
        outcome = await sign_in.sign_in_with_provider(
            store,
            gateway,
            provider,
            error=params.get("error"),
            state=params.get("state"),
            code=params.get("code") or "",
            login_binder=cookies.read_cookie(request, settings, cookies.LOGIN),
            session_token=cookies.read_cookie(request, settings),
            pending_binder=cookies.read_cookie(request, settings, cookies.PENDING),
            request_id=request_id_of(request),
        )
    except sign_in.TooManyAttempts as refusal:
        return too_many_attempts(refusal.decision)
    except sign_in.SignInFailed:
        response = error("Sign-in failed.", 401)
        cookies.forget_cookie(response, settings, cookies.LOGIN)
        return response
    mapped = outcome.mapped
    if mapped.user is None:
        fragment = "link" if mapped.step == "needs_password_to_link" else "signup"
        target = "/signin/link" if fragment == "link" else "/signup/complete"
        response = RedirectResponse(f"{target}#{fragment}={mapped.pending}", status_code=302)
        # The next step works only in this browser: the pending token needs this cookie.
        cookies.set_cookie(response, settings, cookies.PENDING, outcome.binder, PENDING_TTL)
    else:
        response = await finish_sign_in(
            request, mapped.user, outcome.intent, f"oidc:{provider.name}"
        )
    cookies.forget_cookie(response, settings, cookies.LOGIN)
    return response
