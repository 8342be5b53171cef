"""Sign-out: the web session by its cookie, or the app's sign-in by one of its tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from auth import tokens
from auth.sessions import end_session, session_owner
from resolvers import live
from web import cookies
from web.bodies import read_params
from web.requests import same_site_json, settings_of, store_of
from web.responses import error


async def sign_out(request: Request) -> Response:
    settings, store = settings_of(request), store_of(request)
    authorization = request.headers.get("authorization")
    params = await read_params(request) or {}
    if authorization is not None or "refresh_token" in params:
        # The mobile app: its access token, or its refresh token (form or JSON), names the
        # sign-in to end. Like token revocation (RFC 7009), the answer does not say whether
        # the token was live.
        access_token = tokens.bearer_credentials(authorization or "")
        await tokens.sign_out_app(
            store, settings, access_token=access_token, refresh_token=params.get("refresh_token")
        )
        # Its live connections close at once (a sign-out by refresh token alone, at their next
        # check of their credentials).
        await live.announce_account_change(store, tokens.owner_of(settings, access_token))
        return Response(status_code=204)
    token = cookies.read_cookie(request, settings)
    if token and not same_site_json(request):
        return error("Sign out with a JSON POST from our origin.", 403)
    owner = await session_owner(store, token)
    await end_session(store, token)
    await live.announce_account_change(store, owner)
    response = Response(status_code=204)
    cookies.forget_cookie(response, settings, cookies.SESSION)
    return response
