"""Assembly: the Starlette app, its routes and middleware, the lifespan, and the CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from tortoise.transactions import in_transaction

import settings as config
from auth import rate_limit, tokens
from auth.client_info import describe_client
from auth.client_ip import client_ip
from auth.csrf import cookie_request_allowed
from auth.identities import (
    PENDING_TTL,
    MappingRefused,
    TooYoung,
    new_binder,
    principal_of,
    take_pending,
)
from auth.login import AccountDisabled, attempt_key, find_account, sign_in_with_password
from auth.oidc import TRANSACTION_TTL, Gateway, SignInRefused, configured_providers
from auth.principal import ANONYMOUS, Principal
from auth.redirects import mobile_intent, same_origin_path
from auth.sessions import end_session, resolve_session, start_session
from auth.store import connect_store
from models import db
from models.keys import CACHE_TTL_SECONDS
from privacy import audit, mail
from privacy import keys as key_management
from resolvers import federated, validation
from resolvers.errors import InvalidInput
from schema import Context, schema

MAX_BODY_BYTES = 1024 * 1024
logger = logging.getLogger("ocis")


def cookie_name(settings: config.Settings) -> str:
    return "__Host-ocis_session" if settings.secure_cookies else "ocis_session"


class RequestLimits:
    """Give every request an id and refuse bodies over 1 MB before anything reads them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            await _too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise _BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            await _too_large(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"error": "Request body too large (limit 1 MB)."}, status_code=413)
    await response(scope, receive, send)


def _same_site_json(request: Request, settings: config.Settings) -> bool:
    """The CSRF rule for cookie-authenticated requests (auth/csrf.py)."""
    return cookie_request_allowed(
        method=request.method,
        content_type=request.headers.get("content-type"),
        origin=request.headers.get("origin"),
        referer=request.headers.get("referer"),
        allowed_origins=settings.allowed_origins,
    )


def _client_ip(request: Request) -> str | None:
    settings: config.Settings = request.app.state.settings
    forwarded_for = ", ".join(request.headers.getlist("x-forwarded-for")) or None
    peer = request.client.host if request.client else None
    return client_ip(peer, forwarded_for, settings.trusted_proxies)


def _too_many_attempts(decision: rate_limit.Decision) -> Response:
    return JSONResponse(
        {"error": "Too many attempts. Try again later.", "retryAfterSeconds": decision.retry_after},
        status_code=429,
        headers={"Retry-After": str(decision.retry_after)},
    )


class OcisGraphQL(GraphQL[Context, None]):
    async def get_context(self, request: Any, response: Any) -> Context:
        state = request.scope.get("state", {})
        settings: config.Settings = request.app.state.settings
        return Context(
            principal=state.get("principal", ANONYMOUS),
            request_id=state.get("request_id", uuid.uuid4().hex),
            client_ip=_client_ip(request),
            user_agent=request.headers.get("user-agent"),
            privacy_contact=settings.privacy_contact,
            audit_reads=settings.audit_reads,
            store=request.app.state.store,
            response=response,
        )


graphql_app = OcisGraphQL(schema, graphql_ide=None, allow_queries_via_get=False)


class GraphQLEndpoint:
    """Authenticate the caller, apply the CSRF rule for cookies, then run GraphQL."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _graphql(scope, receive, send)


async def _graphql(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    settings: config.Settings = request.app.state.settings
    store: Redis = request.app.state.store
    state = scope.setdefault("state", {})
    token = request.cookies.get(cookie_name(settings))
    principal: Principal = ANONYMOUS
    authorization = request.headers.get("authorization")
    if authorization is not None:
        # Browsers never attach a bearer token by themselves: no CSRF check. An invalid one
        # is refused, not downgraded to anonymous, so the app knows to refresh or sign in.
        bearer = await tokens.authenticate_bearer(
            store, settings, authorization, state.get("request_id")
        )
        if bearer is None:
            response = JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            await response(scope, receive, send)
            return
        principal = bearer
    elif token:
        if not _same_site_json(request, settings):
            response = JSONResponse(
                {"error": "Cookie-authenticated requests must be JSON POSTs from our origin."},
                status_code=403,
            )
            await response(scope, receive, send)
            return
        principal = await resolve_session(store, token, state.get("request_id"))
    state["principal"] = principal.with_request_id(state["request_id"])
    await graphql_app(scope, receive, send)


async def password_sign_in(request: Request) -> Response:
    settings: config.Settings = request.app.state.settings
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/").lower() not in {o.lower() for o in settings.allowed_origins}:
        return JSONResponse({"error": "Sign in from the OCIS site."}, status_code=403)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            body = await request.json()
        else:
            body = dict(await request.form())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "Send email and password."}, status_code=400)
    login, password = body.get("email"), body.get("password")
    if not isinstance(login, str) or not isinstance(password, str) or not login or not password:
        return JSONResponse({"error": "Send email and password."}, status_code=400)
    account = await find_account(login)
    decision = await rate_limit.password_attempt(
        request.app.state.store, login=attempt_key(login, account), ip=_client_ip(request)
    )
    if not decision.allowed:
        return _too_many_attempts(decision)
    time_zone = body.get("timeZone")
    client = describe_client(
        ip_address=_client_ip(request),
        user_agent=request.headers.get("user-agent"),
        referrer=request.headers.get("referer"),
        time_zone=time_zone if isinstance(time_zone, str) else None,
    )
    try:
        session = await sign_in_with_password(
            request.app.state.store, account, password, client, settings.session_ttl_seconds
        )
    except AccountDisabled:
        return JSONResponse(
            {"error": "This account is disabled.", "code": "ACCOUNT_DISABLED"}, status_code=403
        )
    if session is None:
        return JSONResponse({"error": "Wrong email or password."}, status_code=401)
    old_token = request.cookies.get(cookie_name(settings))
    if old_token:
        await end_session(request.app.state.store, old_token)
    answer: dict[str, Any] = {"ok": True}
    link_token = body.get("linkToken")
    if isinstance(link_token, str):
        # Signing in to the account proves control of it: now the pending identity may link.
        pending = await take_pending(
            request.app.state.store,
            link_token,
            "link",
            request.cookies.get(_pending_cookie(settings)),
        )
        owner = principal_of(session.sign_in.user, request.scope["state"]["request_id"])
        try:
            linked = bool(pending) and await federated.link_after_proof(owner, pending)
        except MappingRefused:  # linked to another account meanwhile
            linked = False
        answer["linked"] = linked
    response = JSONResponse(answer)
    _set_session_cookie(response, settings, session.token)
    if isinstance(link_token, str):
        _forget_cookie(response, settings, _pending_cookie(settings))
    return response


async def sign_out(request: Request) -> Response:
    settings: config.Settings = request.app.state.settings
    authorization = request.headers.get("authorization")
    params = await _token_params(request) or {}
    if authorization is not None or "refresh_token" in params:
        # The mobile app: its access token, or its refresh token (form or JSON), names the
        # sign-in to end. Like token revocation (RFC 7009), the answer does not say whether
        # the token was live.
        await tokens.sign_out_app(
            request.app.state.store,
            settings,
            access_token=tokens.bearer_credentials(authorization or ""),
            refresh_token=params.get("refresh_token"),
        )
        return Response(status_code=204, headers=NO_STORE)
    token = request.cookies.get(cookie_name(settings))
    if token and not _same_site_json(request, settings):
        return JSONResponse({"error": "Sign out with a JSON POST from our origin."}, 403)
    await end_session(request.app.state.store, token)
    response = Response(status_code=204)
    response.delete_cookie(
        cookie_name(settings), path="/", secure=settings.secure_cookies, httponly=True
    )
    return response


def _login_cookie(settings: config.Settings) -> str:
    return "__Host-ocis_oidc" if settings.secure_cookies else "ocis_oidc"


def _pending_cookie(settings: config.Settings) -> str:
    return "__Host-ocis_pending" if settings.secure_cookies else "ocis_pending"


def _forget_cookie(response: Response, settings: config.Settings, name: str) -> None:
    # A __Host- cookie is only replaced by one with the same Secure attribute.
    response.delete_cookie(name, path="/", secure=settings.secure_cookies, httponly=True)


def _set_cookie(
    response: Response, settings: config.Settings, name: str, value: str, max_age: int
) -> None:
    """HttpOnly, SameSite=Lax, whole site; Secure (and so __Host-) over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def _set_session_cookie(response: Response, settings: config.Settings, token: str) -> None:
    _set_cookie(response, settings, cookie_name(settings), token, settings.session_ttl_seconds)


async def federated_login(request: Request) -> Response:
    """Start the code flow with a provider (web, mobile, or linking while signed in)."""
    settings: config.Settings = request.app.state.settings
    gateway: Gateway = request.app.state.gateway
    # Counted before anything else: every start writes a transaction to the store.
    decision = await rate_limit.login_start_attempt(request.app.state.store, ip=_client_ip(request))
    if not decision.allowed:
        return _too_many_attempts(decision)
    provider = gateway.provider(request.path_params["provider"])
    if provider is None:
        return JSONResponse({"error": "Unknown sign-in provider."}, status_code=404)
    params: Mapping[str, str] = request.query_params
    linking = request.method == "POST"
    if linking:
        # Linking acts for the signed-in person, so it starts like any cookie-authenticated
        # change: a JSON POST from our origin, never a cross-site link or form.
        if not _same_site_json(request, settings):
            return JSONResponse({"error": "Start linking from the OCIS site."}, status_code=403)
        params = await _token_params(request) or {}
    elif params.get("link") == "1":
        return JSONResponse({"error": "Start linking with a POST from the OCIS site."}, 405)
    intent: dict[str, Any] = {"client": "web", "next": same_origin_path(params.get("next"))}
    link_token = params.get("linkToken")
    if link_token and len(link_token) <= 128:
        # Signing in here through a provider already linked proves control of the account
        # a pending link (from this browser) waits for.
        intent["link_token"] = link_token
    if linking:
        principal = await resolve_session(
            request.app.state.store, request.cookies.get(cookie_name(settings)), None
        )
        if principal.user_id is None:
            return JSONResponse({"error": "Sign in first to link an account."}, 401)
        intent["link_user_id"] = str(principal.user_id)
    if params.get("client") == "mobile":
        mobile = mobile_intent(params)
        if mobile is None:
            return JSONResponse({"error": "Unknown mobile client or redirect."}, 400)
        intent.update(mobile)
    redirect_uri = f"{settings.public_url}/auth/callback/{provider.name}"
    url, binding = await gateway.begin(provider, redirect_uri=redirect_uri, intent=intent)
    response: Response = (
        JSONResponse({"location": url}, headers=NO_STORE)
        if linking
        else RedirectResponse(url, status_code=302)
    )
    _set_cookie(response, settings, _login_cookie(settings), binding, TRANSACTION_TTL)
    return response


async def federated_callback(request: Request) -> Response:
    """Finish the code flow: verify, map the identity, then sign in, link or ask for more."""
    settings: config.Settings = request.app.state.settings
    gateway: Gateway = request.app.state.gateway
    store: Redis = request.app.state.store
    request_id: str = request.scope["state"]["request_id"]
    provider = gateway.provider(request.path_params["provider"])
    if provider is None:
        return JSONResponse({"error": "Unknown sign-in provider."}, status_code=404)
    decision = await rate_limit.callback_attempt(store, ip=_client_ip(request))
    if not decision.allowed:
        return _too_many_attempts(decision)
    params = request.query_params
    try:
        if params.get("error"):
            raise SignInRefused("the provider reported an error")
        transaction = await gateway.take_transaction(
            params.get("state"), request.cookies.get(_login_cookie(settings))
        )
        identity = await gateway.complete(provider, transaction, params.get("code") or "")
        per_identity = await rate_limit.callback_identity_attempt(
            store, identity=f"{identity.issuer}|{identity.tenant_id}|{identity.subject}"
        )
        if not per_identity.allowed:
            return _too_many_attempts(per_identity)
        intent = transaction.intent
        signed_in = None
        if intent.get("link_user_id"):
            signed_in = await resolve_session(
                store, request.cookies.get(cookie_name(settings)), request_id
            )
            if str(signed_in.user_id) != intent["link_user_id"]:
                raise SignInRefused("linking session changed during the flow")
        binder = new_binder()
        mapped = await federated.map_identity(
            store,
            identity,
            signed_in=signed_in,
            linking=signed_in is not None,
            request_id=request_id,
            binder=binder,
            intent=intent,
        )
    except (SignInRefused, MappingRefused) as refusal:
        logger.warning(
            "sign-in with %s refused: %s (request %s)", provider.name, refusal, request_id
        )
        await federated.record_refusal(request_id, provider.name, str(refusal))
        response: Response = JSONResponse({"error": "Sign-in failed."}, status_code=401)
        _forget_cookie(response, settings, _login_cookie(settings))
        return response
    if mapped.user is not None and intent.get("link_token"):
        pending = await take_pending(
            store, intent["link_token"], "link", request.cookies.get(_pending_cookie(settings))
        )
        with contextlib.suppress(MappingRefused):
            await federated.link_after_proof(principal_of(mapped.user, request_id), pending)
    if mapped.user is None:
        fragment = "link" if mapped.step == "needs_password_to_link" else "signup"
        target = "/signin/link" if fragment == "link" else "/signup/complete"
        response = RedirectResponse(f"{target}#{fragment}={mapped.pending}", status_code=302)
        # The next step works only in this browser: the pending token needs this cookie.
        _set_cookie(response, settings, _pending_cookie(settings), binder, PENDING_TTL)
    else:
        response = await _finish_sign_in(request, mapped.user, intent, f"oidc:{provider.name}")
    _forget_cookie(response, settings, _login_cookie(settings))
    return response


async def _finish_sign_in(
    request: Request, user: Any, intent: dict[str, Any], method: str
) -> Response:
    settings: config.Settings = request.app.state.settings
    store: Redis = request.app.state.store
    if intent.get("client") == "mobile":
        from auth.tokens import issue_mobile_code

        code = await issue_mobile_code(
            store,
            user.id,
            intent["redirect_uri"],
            intent["code_challenge"],
            intent["client_id"],
            method=method,
        )
        return RedirectResponse(f"{intent['redirect_uri']}?code={code}", status_code=302)
    old_token = request.cookies.get(cookie_name(settings))
    if old_token:
        await end_session(store, old_token)
    client = describe_client(
        ip_address=_client_ip(request),
        user_agent=request.headers.get("user-agent"),
        referrer=request.headers.get("referer"),
        time_zone=None,
    )
    session = await start_session(store, user, client, settings.session_ttl_seconds, method)
    response = RedirectResponse(intent.get("next") or "/", status_code=302)
    _set_session_cookie(response, settings, session.token)
    return response


async def complete_signup(request: Request) -> Response:
    """The date of birth a provider did not give; under 16 is refused and nothing is kept."""
    settings: config.Settings = request.app.state.settings
    store: Redis = request.app.state.store
    if not _same_site_json(request, settings):
        return JSONResponse({"error": "Send JSON from the OCIS site."}, status_code=403)
    decision = await rate_limit.registration_attempt(store, email=None, ip=_client_ip(request))
    if not decision.allowed:
        return _too_many_attempts(decision)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "Send pending and dateOfBirth."}, status_code=400)
    try:
        birth = date.fromisoformat(str(body.get("dateOfBirth")))
    except ValueError:
        birth = None
    if birth is None or len(str(body.get("dateOfBirth"))) != 10:
        return JSONResponse({"error": "dateOfBirth must be YYYY-MM-DD."}, status_code=400)
    try:  # before the step is used up: a typo must not cost the whole provider flow
        validation.date_of_birth(birth, datetime.now(UTC).date())
    except InvalidInput as problem:
        return JSONResponse({"error": problem.message}, status_code=400)
    pending = await take_pending(
        store, body.get("pending"), "signup", request.cookies.get(_pending_cookie(settings))
    )
    if pending is None:
        return JSONResponse({"error": "This sign-up step expired; sign in again."}, 400)
    try:
        user = await federated.complete_signup(pending, birth, request.scope["state"]["request_id"])
    except TooYoung:
        response: Response = JSONResponse(
            {"error": "OCIS is not for anyone under 16."}, status_code=403
        )
    except InvalidInput as problem:
        response = JSONResponse({"error": problem.message}, status_code=400)
    except MappingRefused:
        response = JSONResponse({"error": "Sign-in failed."}, status_code=401)
    else:
        intent = pending.get("intent") or {}
        response = await _finish_sign_in(request, user, intent, f"oidc:{pending['provider']}")
    _forget_cookie(response, settings, _pending_cookie(settings))
    return response


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _token_params(request: Request) -> dict[str, str] | None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if media_type == "application/json":
            body = await request.json()
            items = list(body.items()) if isinstance(body, dict) else None
        else:
            items = list((await request.form()).multi_items())
    except ValueError:
        return None
    if items is None:
        return None
    params: dict[str, str] = {}
    for name, value in items:
        # RFC 6749 3.2: every parameter at most once, and only text.
        if not isinstance(value, str) or name in params:
            return None
        params[name] = value
    return params


async def token_endpoint(request: Request) -> Response:
    """The mobile app's code exchange and refresh; errors as RFC 6749 says, no details."""
    received_at = time.time()  # before any await: tells a parallel refresh from a replay
    store: Redis = request.app.state.store
    params = await _token_params(request)
    account = await tokens.account_of(store, params) if params is not None else None
    decision = await rate_limit.token_attempt(store, ip=_client_ip(request), account=account)
    if not decision.allowed:
        return _too_many_attempts(decision)
    try:
        if params is None:
            raise tokens.InvalidRequest
        device = describe_client(
            ip_address=_client_ip(request),
            user_agent=request.headers.get("user-agent"),
            referrer=None,
            time_zone=None,
        )
        grant = await tokens.token_request(
            request.app.state.store,
            request.app.state.settings,
            params,
            client=device,
            received_at=received_at,
        )
    except tokens.CredentialReuse as reuse:
        request_id = request.scope["state"]["request_id"]
        logger.warning("%s: family revoked (request %s)", reuse.action, request_id)
        async with in_transaction():
            await audit.record(
                ANONYMOUS.with_request_id(request_id),
                action=reuse.action,
                entity="RefreshTokenFamily",
                entity_id=reuse.family_id,
                subject_id=reuse.user_id,
            )
        return JSONResponse({"error": reuse.code}, status_code=400, headers=NO_STORE)
    except tokens.TokenError as error:
        return JSONResponse({"error": error.code}, status_code=400, headers=NO_STORE)
    return JSONResponse(grant.response(), headers=NO_STORE)


async def jwks(request: Request) -> Response:
    keys = tokens.jwks(request.app.state.settings)
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await db.ping()
        await request.app.state.store.ping()
    except Exception:  # noqa: BLE001 - any failure means not ready
        logger.warning("readiness check failed (request %s)", request.scope["state"]["request_id"])
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


class QuerylessAccessLog(logging.Filter):
    """Access-log lines without query strings: they carry codes, states and tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def _quiet_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, QuerylessAccessLog) for existing in access.filters):
        access.addFilter(QuerylessAccessLog())


def create_app(settings: config.Settings | None = None) -> Starlette:
    settings = settings or config.from_environ()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _quiet_access_log()  # after uvicorn configured its loggers
        await db.connect(settings.database_url, settings.master_key, settings.previous_master_keys)
        await db.load_keys()
        await audit.prime_head()
        app.state.store = connect_store(settings.redis_url)
        app.state.gateway = Gateway(configured_providers(settings.oidc), app.state.store)
        # Each process delivers due notice mail; claims keep processes from sending twice.
        mailer = asyncio.create_task(mail.run_forever(settings)) if settings.smtp_url else None
        try:
            yield
        finally:
            if mailer is not None:
                mailer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mailer
            await app.state.store.aclose()
            await db.disconnect()

    app = Starlette(
        routes=[
            Route("/graphql", GraphQLEndpoint(), methods=["GET", "POST"]),
            Route("/auth/password", password_sign_in, methods=["POST"]),
            Route("/auth/logout", sign_out, methods=["POST"]),
            Route("/auth/token", token_endpoint, methods=["POST"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            Route("/auth/login/{provider}", federated_login, methods=["GET", "POST"]),
            Route("/auth/callback/{provider}", federated_callback, methods=["GET"]),
            Route("/auth/complete-signup", complete_signup, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(RequestLimits)
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn server:app` builds the app on first use, so importing server stays side-effect free.
    if name == "app":
        return create_app()
    raise AttributeError(name)


async def _rotate_keys(args: argparse.Namespace) -> int:
    """Re-wrap every key under the current master key, then rotate the data keys."""

    def show(step: key_management.Step) -> None:
        if step.phase == "settle":
            print(f"  waiting {step.count} s for serving processes' key caches", flush=True)  # noqa: T201
            return
        where = f" ({step.table})" if step.table else ""
        print(f"  {step.phase}{where}: {step.count}", flush=True)  # noqa: T201

    print("re-wrapping keys under the current master key", flush=True)  # noqa: T201
    rewrapped = await key_management.rotate_master_key(args.batch_size, show)
    print(f"re-wrapped {rewrapped} keys", flush=True)  # noqa: T201
    print("rotating data keys", flush=True)  # noqa: T201
    result = await key_management.rotate_data_keys(
        args.batch_size, settle_seconds=args.settle_seconds, progress=show
    )
    print(  # noqa: T201
        f"new data keys: {result.new_keys}; rows re-encrypted: {result.rows_reencrypted};"
        f" old keys retired: {result.retired}"
    )
    if args.delete_retired:
        print(f"deleted {await key_management.delete_retired_keys()} retired keys")  # noqa: T201
    if result.still_referenced or result.unreadable_rows:
        print(  # noqa: T201
            f"not finished: {result.still_referenced} old keys are still named by"
            f" {result.unreadable_rows} unreadable rows or by writes during rotation; run again",
            file=sys.stderr,
        )
        return 1
    return 0


async def _run_with_db(settings: config.Settings, action: str, args: argparse.Namespace) -> int:
    from resolvers.demo import DEMO_ACCOUNTS, DEMO_PASSWORD, seed_demo_data
    from resolvers.errors import DomainError
    from resolvers.users import create_staff_account

    await db.connect(settings.database_url, settings.master_key, settings.previous_master_keys)
    try:
        if action == "seed":
            if settings.is_production:
                print("seed refuses to run in production", file=sys.stderr)  # noqa: T201
                return 2
            await db.load_keys()
            created = await seed_demo_data()
            print("demo data created" if created else "demo data already present")  # noqa: T201
            for account in DEMO_ACCOUNTS:
                print(f"  {account.email:24} {account.role.value:16} password: {DEMO_PASSWORD}")  # noqa: T201
            return 0
        if action == "create-admin":
            await db.load_keys()
            password = os.environ.get("OCIS_ADMIN_PASSWORD") or getpass.getpass("Password: ")
            try:
                user = await create_staff_account(
                    email=args.email, name=args.name, password=password
                )
            except DomainError as error:
                print(f"{error.field or 'input'}: {error.message}", file=sys.stderr)  # noqa: T201
                return 2
            print(f"administrator ready: {user.id}")  # noqa: T201
            return 0
        if action == "rotate-keys":
            await db.load_keys()
            return await _rotate_keys(args)
        if action == "audit-verify":
            report = await audit.verify_chain()
            if report.intact:
                print(f"audit chain intact: {report.checked} records")  # noqa: T201
                return 0
            print(  # noqa: T201
                f"audit chain broken at record {report.first_broken_seq}: {report.reason}"
                f" ({report.checked} records verified before it)"
            )
            return 1
    finally:
        await db.disconnect()
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ocis", description="OCIS backend")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve HTTP (HOST, PORT)")
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed", help="create demo data (development only)")
    admin = commands.add_parser("create-admin", help="create or promote an administrator")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", default="Administrator")
    commands.add_parser("audit-verify", help="verify the audit hash chain")
    rotate = commands.add_parser(
        "rotate-keys",
        help="re-wrap keys under OCIS_MASTER_KEY, give every subject a new data key, re-encrypt",
    )
    rotate.add_argument("--batch-size", type=int, default=key_management.DEFAULT_BATCH_SIZE)
    rotate.add_argument(
        "--settle-seconds",
        type=float,
        default=CACHE_TTL_SECONDS,
        help="how long serving processes may keep sealing under a superseded key (their key"
        " cache lifetime); old keys are retired only after it",
    )
    rotate.add_argument("--delete-retired", action="store_true", help="delete retired keys")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = config.from_environ()
    except config.ConfigurationError as error:
        print(str(error), file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "serve":
        import uvicorn

        # OCIS reads X-Forwarded-For itself, from OCIS_TRUSTED_PROXIES only.
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, proxy_headers=False
        )
        return 0
    if args.command == "migrate":
        asyncio.run(db.migrate(settings.database_url))
        print("migrations applied")  # noqa: T201
        return 0
    return asyncio.run(_run_with_db(settings, args.command, args))


if __name__ == "__main__":
    sys.exit(main())
