"""Password sign-in, and the end of every sign-in: a session cookie, or the app's one-time code."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from auth import device_cookies, rate_limit, tokens
from auth.csrf import form_post_allowed, is_json, origin_allowed
from auth.identities import principal_of
from auth.login import AccountDisabled, attempt_key, find_account, sign_in_with_password
from auth.redirects import Intent
from auth.sessions import end_session, start_session
from auth.visitor_ids import cookie_name
from models import User
from resolvers import consents, sign_in
from web import cookies
from web.bodies import read_body
from web.requests import (
    client_of,
    consent_cookie_of,
    ip_of,
    request_id_of,
    settings_of,
    store_of,
    visitor_ids_of,
)
from web.responses import error, too_many_attempts


async def password_sign_in(request: Request) -> Response:
    settings, store = settings_of(request), store_of(request)
    origin, referer = request.headers.get("origin"), request.headers.get("referer")
    # A browser's JSON POST from another site carries that site's Origin; a form needs ours.
    cross_site = (origin and not origin_allowed(origin, settings.allowed_origins)) or (
        not is_json(request.headers.get("content-type"))
        and not form_post_allowed(
            origin=origin, referer=referer, allowed_origins=settings.allowed_origins
        )
    )
    if cross_site:
        return error("Sign in from the OCIS site.", 403, code="CROSS_SITE")
    body = await read_body(request)
    if body is None:
        return error("Send email and password.", 400)
    login, password = body.get("email"), body.get("password")
    if not isinstance(login, str) or not isinstance(password, str) or not login or not password:
        return error("Send email and password.", 400)
    account = await find_account(login)
    trusted = device_cookies.trusted_for(
        settings,
        cookies.read_cookie(request, settings, cookies.DEVICE),
        account.id if account is not None else None,
    )
    decision = await rate_limit.password_attempt(
        store,
        login=attempt_key(login, account),
        ip=ip_of(request),
        device=trusted.key if trusted else None,
    )
    if not decision.allowed:
        return too_many_attempts(decision)
    time_zone = body.get("timeZone")
    client = client_of(
        request,
        referrer=request.headers.get("referer"),
        time_zone=time_zone if isinstance(time_zone, str) else None,
    )
    try:
        session = await sign_in_with_password(
            store, account, password, client, settings.session_ttl_seconds
        )
    except AccountDisabled:
        return error("This account is disabled.", 403, code="ACCOUNT_DISABLED")
    if session is None:
        return error("Wrong email or password.", 401)
    if trusted:
        await rate_limit.password_right_on_device(store, device=trusted.key)
    old_token = cookies.read_cookie(request, settings)
    if old_token:
        await end_session(store, old_token)
    answer: dict[str, Any] = {"ok": True}
    link_token = body.get("linkToken")
    if isinstance(link_token, str):
        answer["linked"] = await sign_in.link_pending(
            store,
            link_token,
            cookies.read_cookie(request, settings, cookies.PENDING),
            session.sign_in.user,
            request_id_of(request),
        )
    response = JSONResponse(answer)
    await adopt_visitor_consent(request, response, session.sign_in.user)
    cookies.set_session_cookie(response, settings, session.token)
    cookies.set_device_cookie(
        response, settings, device_cookies.issue(settings, session.sign_in.user.id)
    )
    if isinstance(link_token, str):
        cookies.forget_cookie(response, settings, cookies.PENDING)
    return response


async def finish_sign_in(request: Request, user: User, intent: Intent, method: str) -> Response:
    """A provider sign-in ends in a session (web) or a one-time code for the app (mobile)."""
    settings, store = settings_of(request), store_of(request)
    if intent.get("client") == "mobile":
        code = await tokens.issue_mobile_code(
            store,
            user.id,
            intent["redirect_uri"],
            intent["code_challenge"],
            intent["client_id"],
            method=method,
        )
        return RedirectResponse(f"{intent['redirect_uri']}?code={code}", status_code=302)
    old_token = cookies.read_cookie(request, settings)
    if old_token:
        await end_session(store, old_token)
    session = await start_session(
        store,
        user,
        client_of(request, referrer=request.headers.get("referer")),
        settings.session_ttl_seconds,
        method,
    )
    response = RedirectResponse(intent.get("next") or "/", status_code=302)
    await adopt_visitor_consent(request, response, user)
    cookies.set_session_cookie(response, settings, session.token)
    return response


async def adopt_visitor_consent(request: Request, response: Response, user: User) -> None:
    """Every web sign-in: the decisions this browser made as an anonymous visitor become the
    account's, and the browser forgets its consent id (a later visitor on it starts afresh)."""
    visitor_id = consent_cookie_of(request)
    if visitor_id is None:
        return
    await consents.adopt_visitor_consent(
        principal_of(user, request_id_of(request)), user.id, visitor_ids_of(request), visitor_id
    )
    secure = settings_of(request).secure_cookies
    response.delete_cookie(cookie_name(secure=secure), path="/", secure=secure)
