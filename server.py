"""Assembly: the Starlette app, its routes and middleware, the lifespan, and the CLI."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

import settings as config
from auth.client_info import describe_client
from auth.csrf import cookie_request_allowed
from auth.login import sign_in_with_password
from auth.principal import ANONYMOUS, Principal
from auth.sessions import end_session, resolve_session
from auth.store import connect_store
from models import db
from privacy import audit
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


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


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
    if token:
        if not cookie_request_allowed(
            method=request.method,
            content_type=request.headers.get("content-type"),
            origin=request.headers.get("origin"),
            referer=request.headers.get("referer"),
            allowed_origins=settings.allowed_origins,
        ):
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
    time_zone = body.get("timeZone")
    client = describe_client(
        ip_address=_client_ip(request),
        user_agent=request.headers.get("user-agent"),
        referrer=request.headers.get("referer"),
        time_zone=time_zone if isinstance(time_zone, str) else None,
    )
    session = await sign_in_with_password(
        request.app.state.store, login, password, client, settings.session_ttl_seconds
    )
    if session is None:
        return JSONResponse({"error": "Wrong email or password."}, status_code=401)
    old_token = request.cookies.get(cookie_name(settings))
    if old_token:
        await end_session(request.app.state.store, old_token)
    response = JSONResponse({"ok": True})
    response.set_cookie(
        cookie_name(settings),
        session.token,
        max_age=settings.session_ttl_seconds,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


async def sign_out(request: Request) -> Response:
    settings: config.Settings = request.app.state.settings
    token = request.cookies.get(cookie_name(settings))
    if token and not cookie_request_allowed(
        method=request.method,
        content_type=request.headers.get("content-type"),
        origin=request.headers.get("origin"),
        referer=request.headers.get("referer"),
        allowed_origins=settings.allowed_origins,
    ):
        return JSONResponse({"error": "Sign out with a JSON POST from our origin."}, 403)
    await end_session(request.app.state.store, token)
    response = Response(status_code=204)
    response.delete_cookie(
        cookie_name(settings), path="/", secure=settings.secure_cookies, httponly=True
    )
    return response


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


def create_app(settings: config.Settings | None = None) -> Starlette:
    settings = settings or config.from_environ()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await db.connect(settings.database_url, settings.master_key)
        await audit.prime_head()
        app.state.store = connect_store(settings.redis_url)
        try:
            yield
        finally:
            await app.state.store.aclose()
            await db.disconnect()

    app = Starlette(
        routes=[
            Route("/graphql", GraphQLEndpoint(), methods=["GET", "POST"]),
            Route("/auth/password", password_sign_in, methods=["POST"]),
            Route("/auth/logout", sign_out, methods=["POST"]),
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


async def _run_with_db(settings: config.Settings, action: str, args: argparse.Namespace) -> int:
    from resolvers.demo import DEMO_ACCOUNTS, DEMO_PASSWORD, seed_demo_data
    from resolvers.errors import DomainError
    from resolvers.users import create_staff_account

    await db.connect(settings.database_url, settings.master_key)
    try:
        if action == "seed":
            if settings.is_production:
                print("seed refuses to run in production", file=sys.stderr)  # noqa: T201
                return 2
            created = await seed_demo_data()
            print("demo data created" if created else "demo data already present")  # noqa: T201
            for account in DEMO_ACCOUNTS:
                print(f"  {account.email:24} {account.role.value:16} password: {DEMO_PASSWORD}")  # noqa: T201
            return 0
        if action == "create-admin":
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = config.from_environ()
    except config.ConfigurationError as error:
        print(str(error), file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "serve":
        import uvicorn

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
        return 0
    if args.command == "migrate":
        asyncio.run(db.migrate(settings.database_url))
        print("migrations applied")  # noqa: T201
        return 0
    return asyncio.run(_run_with_db(settings, args.command, args))


if __name__ == "__main__":
    sys.exit(main())
