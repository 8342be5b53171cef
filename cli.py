"""The command bodies behind `python server.py COMMAND` (and `ocis COMMAND`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import json
import logging
import os
import shutil
import signal
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

import settings as config
from auth.store import connect_store
from models import db
from models.keys import CACHE_TTL_SECONDS
from observability import configure_logging
from privacy import audit, audit_verify, fanout, jobs, mail, retention
from privacy import keys as key_management

AppFactory = Callable[[config.Settings], ASGIApp]
# The schema's check of a document before registration (schema/documents.py check_document),
# handed over by server.py: the CLI reaches no HTTP or GraphQL layer itself.
DocumentChecker = Callable[[str, int], list[str]]
# `serve --workers N`: at most this many, each given this long to answer uvicorn's first ping.
MAX_WORKERS = 64
WORKER_HEALTHCHECK_SECONDS = 60


def _tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The context `serve` terminates TLS with: the configured key pair, TLS 1.2 at the least."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        raise config.ConfigurationError(
            f"OCIS_TLS_CERT / OCIS_TLS_KEY: {cert} and {key} are not a PEM certificate chain"
            f" and its private key ({error.__class__.__name__})"
        ) from None
    return context


def tls_context_factory(config: Any, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's `ssl_context_factory`: our context from its certificate and key (a module-level
    function, so that `serve --workers N` can hand it to the worker processes it spawns)."""
    return _tls_context(Path(config.ssl_certfile), Path(config.ssl_keyfile))


def scale_out_problems(settings: config.Settings, workers: int) -> list[str]:
    """Why `serve --workers N` cannot run N processes with these settings (empty: it can)."""
    if workers < 2:
        return []
    problems = []
    if not settings.database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        problems.append("DATABASE_URL must name PostgreSQL (SQLite serves one process)")
    if not settings.redis_url:
        problems.append(
            "REDIS_URL is required (sessions, revocations, rate limits and caches are shared)"
        )
    return problems


@contextlib.contextmanager
def fresh_metrics_directory(parent: Path | None) -> Iterator[str]:
    """A new, empty PROMETHEUS_MULTIPROC_DIR for this start's worker processes, removed at exit.

    Inside ``parent`` (OCIS_METRICS_DIR) if given, else in the temporary directory; the worker
    processes inherit it, so the counters of a previous start never add to this one's.
    """
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="ocis-metrics-", dir=parent)
    inherited = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield directory
    finally:
        if inherited is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = inherited
        shutil.rmtree(directory, ignore_errors=True)


# Young-generation collections this far apart (CPython's default is 700 allocations): a request
# allocates thousands of short-lived objects, and the default walked the whole heap in a full
# collection about every 14 requests (issue 16).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    """Once a serving process has built its app: what start-up made (modules, the schema, the
    app) lives as long as the process, so it leaves the collector's view, and collections run
    less often. Serving processes only: a test process builds many apps."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _serve(settings: config.Settings, workers: int, create_app: AppFactory, app_path: str) -> int:
    import uvicorn

    problems = scale_out_problems(settings, workers)
    if problems:
        print(  # noqa: T201
            f"serve --workers {workers} refuses to start: " + "; ".join(problems),
            file=sys.stderr,
        )
        return 2
    tls: dict[str, Any] = {}
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:
            _tls_context(settings.tls_cert, settings.tls_key)
        except config.ConfigurationError as error:
            print(str(error), file=sys.stderr)  # noqa: T201
            return 2
        # uvicorn's own context has no minimum version; this one insists on TLS 1.2.
        tls = {
            "ssl_certfile": settings.tls_cert,
            "ssl_keyfile": settings.tls_key,
            "ssl_context_factory": tls_context_factory,
        }
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        # OCIS reads X-Forwarded-For and X-Forwarded-Proto itself, from OCIS_TRUSTED_PROXIES only.
        "proxy_headers": False,
        # Our JSON lines (observability.py) instead of uvicorn's; its access log prints
        # client IPs, and web/request_log.py writes one line per request without them.
        "log_config": None,
        "access_log": False,
        **tls,
    }
    if workers == 1:
        app = create_app(settings)
        tune_garbage_collector()
        uvicorn.run(app, **options)
        return 0
    # N processes on one socket: each builds the app from the environment (`app_path`), and
    # they report their metrics together through a directory of this start's own.
    with fresh_metrics_directory(settings.metrics_dir):
        uvicorn.run(
            app_path,
            workers=workers,
            # A worker answers the supervisor's ping only once it has imported the project;
            # uvicorn's 5 s would kill (and restart) slow starters on a busy host for ever.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **options,
        )
    return 0


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


async def _worker(settings: config.Settings) -> int:
    """Run durable jobs, notice mail and fan-outs until SIGTERM (or SIGINT); any number of
    workers share them."""
    await db.connect(
        settings.database_url,
        settings.master_key,
        settings.previous_master_keys,
        settings.db_pool_size,
    )
    await db.load_keys()
    store = connect_store(settings.redis_url)
    await audit.prime_head(settings, store if settings.redis_url else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with key_management.listening(store), jobs.running(settings, store):
            mailer = asyncio.create_task(mail.run_forever(settings)) if settings.smtp_url else None
            fanning_out = asyncio.create_task(fanout.run_forever(settings))
            # Every worker queues each period's retention run; the dedupe key keeps one.
            scheduling = (
                asyncio.create_task(retention.schedule_forever(settings))
                if settings.retention_every_hours > 0
                else None
            )
            await stop.wait()
            logging.getLogger("ocis.worker").info("worker stopping")
            for task in (fanning_out, mailer, scheduling):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        await audit.checkpoint_at_shutdown()
        await store.aclose()
        await db.disconnect()
    return 0


async def _retention(settings: config.Settings, dry_run: bool) -> int:
    """Delete what outlived its retention period (or only count it), one line per category
    and a JSON line of the counts."""
    await db.connect(
        settings.database_url,
        settings.master_key,
        settings.previous_master_keys,
        settings.db_pool_size,
    )
    store = connect_store(settings.redis_url)
    try:
        await audit.prime_head(settings, store if settings.redis_url else None)
        try:
            report = await retention.run(
                settings.retention_days, dry_run=dry_run, batch_size=settings.retention_batch_size
            )
        except retention.PruneRefused:
            print(f"retention: {retention.PruneRefused.MESSAGE}.", file=sys.stderr)  # noqa: T201
            print("retention: every other category was done.", file=sys.stderr)  # noqa: T201
            return 1
        for line in retention.describe(report, settings.retention_days):
            print(line)  # noqa: T201
        print(json.dumps(report.as_json(), sort_keys=True))  # noqa: T201
    finally:
        await audit.checkpoint_at_shutdown()
        await store.aclose()
        await db.disconnect()
    return 0


def _register_documents(
    settings: config.Settings, manifest: Path, check: DocumentChecker | None
) -> int:
    """Register a manifest's documents as trusted, each checked against the schema first;
    nothing is registered when any is invalid."""
    from resolvers.documents import (
        DocumentRegistry,
        InvalidManifest,
        ManifestEntry,
        ManifestRegistration,
        manifest_entries,
        register_manifest,
    )

    if check is None:
        print("register-documents needs the schema: run it as `python server.py`", file=sys.stderr)  # noqa: T201
        return 2

    async def register(entries: list[ManifestEntry]) -> ManifestRegistration:
        await db.connect(settings.database_url, settings.master_key, settings.previous_master_keys)
        try:
            return await register_manifest(
                DocumentRegistry(), entries, lambda text: check(text, settings.max_query_cost)
            )
        finally:
            await db.disconnect()

    try:
        report = asyncio.run(register(manifest_entries(manifest.read_bytes())))
    except OSError as error:
        print(f"{manifest}: cannot be read ({error.strerror})", file=sys.stderr)  # noqa: T201
        return 2
    except InvalidManifest as error:
        print(f"{manifest}: {error}; nothing was registered", file=sys.stderr)  # noqa: T201
        return 2
    print(  # noqa: T201
        f"registered {report.registered} documents ({report.already_present} already registered)"
    )
    return 0


async def _run_with_db(settings: config.Settings, action: str, args: argparse.Namespace) -> int:
    from resolvers.demo import (
        DEMO_ACCOUNTS,
        DEMO_INVITEE,
        DEMO_PASSWORD,
        HELP_DESK_ACCOUNTS,
        seed_demo_data,
        seed_help_desk,
    )
    from resolvers.errors import DomainError
    from resolvers.users import create_staff_account

    await db.connect(
        settings.database_url,
        settings.master_key,
        settings.previous_master_keys,
        settings.db_pool_size,
    )
    try:
        if action == "seed":
            if settings.is_production:
                print("seed refuses to run in production", file=sys.stderr)  # noqa: T201
                return 2
            await db.load_keys()
            created = await seed_demo_data()
            link = await seed_help_desk(settings.public_url) if created else None
            print("demo data created" if created else "demo data already present")  # noqa: T201
            for account in (*DEMO_ACCOUNTS, *HELP_DESK_ACCOUNTS):
                print(f"  {account.email:24} {account.role.value:16} password: {DEMO_PASSWORD}")  # noqa: T201
            if link:
                print(f"  {DEMO_INVITEE} is invited to the Returns team: {link}")  # noqa: T201
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
            report = await audit_verify.verify_chain()
            if report.intact:
                print(f"audit chain intact: {report.checked} records")  # noqa: T201
                return 0
            # Record 0: nothing left to name (the trail was wiped or a checkpoint forged).
            where = f" at record {report.first_broken_seq}" if report.first_broken_seq else ""
            print(  # noqa: T201
                f"audit chain broken{where}: {report.reason}"
                f" ({report.checked} records verified before it)"
            )
            return 1
    finally:
        await db.disconnect()
    return 2


def _worker_count(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_WORKERS}")
    return int(raw)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocis", description="OCIS backend")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve HTTP (HOST, PORT)")
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        help="how many server processes share the port (above 1: PostgreSQL and Redis only)",
    )
    commands.add_parser(
        "worker", help="run durable jobs, notice mail and fan-outs (any number of processes)"
    )
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed", help="create demo data (development only)")
    admin = commands.add_parser("create-admin", help="create or promote an administrator")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", default="Administrator")
    commands.add_parser("audit-verify", help="verify the audit hash chain")
    retain = commands.add_parser(
        "retention",
        help="delete what outlived its retention period (OCIS_RETENTION_*_DAYS), holds skipped",
    )
    retain.add_argument(
        "--dry-run", action="store_true", help="count what a run would delete; delete nothing"
    )
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
    documents = commands.add_parser(
        "register-documents",
        help="register the trusted documents of a manifest (Apollo's persisted-query manifest,"
        " or a JSON map from SHA-256 to document text)",
    )
    documents.add_argument("manifest", type=Path)
    return parser


def run(
    argv: list[str] | None,
    create_app: AppFactory,
    check_document: DocumentChecker | None = None,
    app_path: str = "server:app",
) -> int:
    """Parse the command line and run the command; `serve` serves what `create_app` builds, or
    with `--workers N` above 1, N processes that each import `app_path`; `register-documents`
    checks documents with `check_document`."""
    args = parser().parse_args(argv)
    configure_logging(logging.INFO)
    try:
        settings = config.from_environ()
    except config.ConfigurationError as error:
        print(str(error), file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "serve":
        return _serve(settings, args.workers, create_app, app_path)
    if args.command == "worker":
        return asyncio.run(_worker(settings))
    if args.command == "register-documents":
        return _register_documents(settings, args.manifest, check_document)
    if args.command == "retention":
        return asyncio.run(_retention(settings, args.dry_run))
    if args.command == "migrate":
        asyncio.run(db.migrate(settings.database_url))
        print("migrations applied")  # noqa: T201
        return 0
    return asyncio.run(_run_with_db(settings, args.command, args))
