"""Assembly: the Starlette app, its routes and middleware, the lifespan, and `main()`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

import cli
import settings as config
from auth.oidc import Gateway, configured_providers
from auth.store import connect_store
from models import db
from observability import configure_logging
from privacy import audit, fanout, jobs, mail
from privacy import keys as key_management
from resolvers import queues
from resolvers.documents import DocumentRegistry
from resolvers.live import Hub
from resolvers.processors import register_mail_transport
from schema.documents import check_document
from schema.view import graphql_view
from web.callers import CallerIdentification
from web.complete_signup import complete_signup
from web.console import (
    ConsoleAssets,
    console_page,
    console_sign_in,
    sign_in_script,
    sign_in_style,
)
from web.cors import Cors
from web.exports import export_download, export_schema
from web.health import healthz, readyz
from web.jwks import jwks
from web.metrics import metrics
from web.middleware import RequestLimits
from web.mobile_tokens import token_endpoint
from web.outages import Outages
from web.provider_callback import provider_callback
from web.provider_login import provider_login
from web.request_log import RequestLog
from web.responses import NoStore
from web.security_headers import SecurityHeaders, server_error
from web.sign_in import password_sign_in
from web.sign_out import sign_out
from web.unsubscribe import unsubscribe_page

NO_STORE = [Middleware(NoStore)]


def routes() -> list[BaseRoute]:
    view = graphql_view()
    return [
        Route("/graphql", NoStore(CallerIdentification(view)), methods=["GET", "POST"]),
        # Subscriptions: the caller is authenticated at connection_init (schema/sockets.py).
        WebSocketRoute("/graphql", view),
        Route("/auth/password", password_sign_in, methods=["POST"], middleware=NO_STORE),
        Route("/auth/logout", sign_out, methods=["POST"], middleware=NO_STORE),
        Route("/auth/token", token_endpoint, methods=["POST"], middleware=NO_STORE),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route(
            "/auth/login/{provider}", provider_login, methods=["GET", "POST"], middleware=NO_STORE
        ),
        Route("/auth/callback/{provider}", provider_callback, methods=["GET"], middleware=NO_STORE),
        Route("/auth/complete-signup", complete_signup, methods=["POST"], middleware=NO_STORE),
        # Authorised by its signed token, not a cookie: outside the CSRF rule (web/unsubscribe.py).
        Route(
            "/unsubscribe/{token}",
            unsubscribe_page,
            methods=["GET", "POST"],
            middleware=NO_STORE,
        ),
        # The subject's session or the link's secret (web/exports.py).
        Route(
            "/privacy/exports/{export_id}", export_download, methods=["GET"], middleware=NO_STORE
        ),
        Route("/privacy/export-schema.json", export_schema, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/console", console_page, methods=["GET"]),
        Route("/console/sign-in", console_sign_in, methods=["GET"]),
        Route("/console/sign-in.js", sign_in_script, methods=["GET"]),
        Route("/console/sign-in.css", sign_in_style, methods=["GET"]),
        Mount("/console/assets", app=ConsoleAssets()),
    ]


# How long each part of a stopping process may take; one that takes longer is given up on and
# logged, so that a stop always ends (a stuck connection must not keep a process alive).
SHUTDOWN_SECONDS = 10.0
logger = logging.getLogger("ocis.server")


async def _bounded(part: str, stopping: Coroutine[Any, Any, object]) -> None:
    try:
        await asyncio.wait_for(stopping, SHUTDOWN_SECONDS)
    except TimeoutError:
        logger.warning("shutdown: %s did not stop within %.0f s", part, SHUTDOWN_SECONDS)


async def _database_closed() -> None:
    """Close the database, which must finish (it resets the ORM's state for the next start):
    a pool still waiting after SHUTDOWN_SECONDS for a connection in use has its connections
    terminated, and the close then completes."""
    closing = asyncio.ensure_future(db.disconnect())
    done, _ = await asyncio.wait({closing}, timeout=SHUTDOWN_SECONDS)
    if not done:
        logger.warning(
            "shutdown: database did not close within %.0f s; %d pool(s) terminated",
            SHUTDOWN_SECONDS,
            db.terminate_pools(),
        )
    await closing


async def _cancelled(part: str, task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_SECONDS)
    if not done:
        logger.warning("shutdown: %s did not stop within %.0f s", part, SHUTDOWN_SECONDS)


def create_app(settings: config.Settings | None = None) -> Starlette:
    settings = settings or config.from_environ()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await db.connect(
            settings.database_url,
            settings.master_key,
            settings.previous_master_keys,
            settings.db_pool_size,
        )
        await db.load_keys()
        app.state.store = connect_store(settings.redis_url)
        # Live updates: this process's one subscription to the store's channel (resolvers/live.py).
        app.state.live = Hub(app.state.store)
        listening = asyncio.create_task(app.state.live.run())
        await audit.prime_head(settings, app.state.store if settings.redis_url else None)
        app.state.gateway = Gateway(configured_providers(settings.oidc), app.state.store)
        await register_mail_transport(settings.mail_processor_name, settings.mail_processor_country)
        await queues.missing_routed_teams(settings.routing)
        # Each process delivers due notice mail; claims keep processes from sending twice.
        mailer = asyncio.create_task(mail.run_forever(settings)) if settings.smtp_url else None
        # And writes the notices owed to every user, a batch at a time (privacy/fanout.py).
        fanning_out = asyncio.create_task(fanout.run_forever(settings))
        # The embedded default runs durable jobs here; production leaves them to `worker`.
        try:
            async with contextlib.AsyncExitStack() as background:
                # A subject's keys destroyed anywhere (an erasure) are dropped here at once.
                await background.enter_async_context(key_management.listening(app.state.store))
                if settings.run_jobs_in_server:
                    await background.enter_async_context(jobs.running(settings, app.state.store))
                yield
        finally:
            app.state.live.stop()
            await _cancelled("live events", listening)
            await _cancelled("notice fan-out", fanning_out)
            await _cancelled("mail delivery", mailer)
            await _bounded("audit checkpoint", audit.checkpoint_at_shutdown())
            await _bounded("shared store", app.state.store.aclose())
            await _database_closed()

    app = Starlette(routes=routes(), lifespan=lifespan, exception_handlers={500: server_error})
    app.state.settings = settings
    app.state.documents = DocumentRegistry()
    app.add_middleware(Outages)  # innermost: its 503 gets the request id and headers too
    app.add_middleware(RequestLimits)
    app.add_middleware(Cors, origins=settings.cors_origins)  # outside the limits: a 413 too
    app.add_middleware(SecurityHeaders)  # outside the limits: the 413 carries them too
    app.add_middleware(RequestLog, routes=app.routes)  # outermost: logs what was sent
    return app


def serving_app() -> Starlette:
    """The app as a serving process runs it, from the environment: JSON lines on standard
    error (observability.py), without uvicorn's access log, and the garbage collector tuned
    once it has started (cli.py). `uvicorn server:app` is this; so is the benchmark's OCIS
    (`uvicorn --factory server:serving_app`)."""
    configure_logging()
    app = create_app()
    cli.tune_garbage_collector()
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn server:app` builds the app on first use, so importing server stays side-effect free.
    if name == "app":
        return serving_app()
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:
    return cli.run(argv, create_app, check_document)


if __name__ == "__main__":
    sys.exit(main())
