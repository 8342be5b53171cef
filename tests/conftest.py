"""Shared fixtures: a migrated database per session, a clean state per test, a real app.

The backend follows the environment: SQLite and the in-process store by default,
PostgreSQL and Redis when DATABASE_URL / REDIS_URL point at them (CI sets both).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from tortoise import Tortoise

import settings as config
from models import db
from privacy import audit
from server import create_app
from tests.helpers import (
    ORIGIN,
    Api,
    StatementCounter,
    bypass_append_only,
    sign_in,
    worker_redis_url,
)
from tests.log_canaries import LogCanaries
from tests.smtp_server import Mailbox, smtp_server

# The Redis database that the embedded leg's multi-process tests share (it has no REDIS_URL);
# xdist workers take it and the next ones, so four workers end at 15, the last of Redis's 16.
EMBEDDED_LEG_REDIS = "redis://127.0.0.1:6379/12"


def pytest_configure(config: pytest.Config) -> None:
    """Each pytest-xdist worker runs on Redis databases of its own, before anything reads them:
    REDIS_URL (apps, `config.from_environ()`, server processes) and OCIS_TEST_REDIS_URL."""
    environ = {
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "OCIS_TEST_REDIS_URL": os.environ.get("OCIS_TEST_REDIS_URL") or EMBEDDED_LEG_REDIS,
    }
    environment = pytest.MonkeyPatch()
    config.add_cleanup(environment.undo)
    for name, url in environ.items():
        if url is not None:
            environment.setenv(name, worker_redis_url(url))


# `make run`'s audit checkpoints (settings.py's default directory): a process the suite starts
# must never write there, or `audit-verify` of the checkout's own database reads it as
# truncated (a chain the database never held).
CHECKOUT_CHECKPOINTS = config.ROOT / "var" / "audit-checkpoints"


def _checkout_checkpoints() -> dict[str, int]:
    if not CHECKOUT_CHECKPOINTS.is_dir():
        return {}
    return {path.name: path.stat().st_size for path in CHECKOUT_CHECKPOINTS.iterdir()}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_CHECKPOINTS_BEFORE] = _checkout_checkpoints()


def _checkpoints_written(session: pytest.Session) -> list[str]:
    """The checkout's checkpoint files this run created or appended to."""
    before = session.config.stash.get(_CHECKPOINTS_BEFORE, {})
    return sorted(
        name for name, size in _checkout_checkpoints().items() if size != before.get(name)
    )


_CHECKPOINTS_BEFORE = pytest.StashKey[dict[str, int]]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the worker thread of any SQLite connection a failed test left open: each is a
    thread that is not a daemon, and one left running keeps this process (an xdist worker, so
    the whole run) from ever exiting. Said on the terminal, since it is a test's leak.

    And fail the run if it wrote audit checkpoints into the checkout's var/ (a process started
    without the suite's OCIS_AUDIT_CHECKPOINT_DIR); `make run` serving from this checkout
    meanwhile trips it too."""
    written = _checkpoints_written(session)
    if written and not hasattr(session.config, "workerinput"):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"the run wrote audit checkpoints into {CHECKOUT_CHECKPOINTS}: {written}"
                " (a process started without the suite's OCIS_AUDIT_CHECKPOINT_DIR)",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    import aiosqlite  # a dependency of Tortoise's SQLite backend

    # type(), not isinstance(): the heap holds weak proxies, whose referents may be gone.
    left = [
        item
        for item in gc.get_objects()
        if issubclass(type(item), aiosqlite.Connection) and item._connection is not None
    ]
    for connection in left:
        connection.stop()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"stopped {len(left)} SQLite connection(s) a test left open")


def _postgres_test_url(base: str) -> tuple[str, str, str]:
    """(admin url, test url, test database name) next to the configured database."""
    parts = urlsplit(base)
    name = f"ocis_pytest_{os.getpid()}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    test = urlunsplit(parts._replace(path=f"/{name}"))
    return admin, test, name


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(request: pytest.FixtureRequest) -> Iterator[LogCanaries]:
    """Every test's log lines, as production writes them, hold no personal data, client IP
    or token (`logs_may_quote` lets a test that plants one on purpose opt out)."""
    canaries = LogCanaries()
    root = logging.getLogger()
    level = root.level
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    root.addHandler(canaries)
    try:
        yield canaries
    finally:
        root.removeHandler(canaries)
        root.setLevel(level)
    if request.node.get_closest_marker("logs_may_quote") is None:
        leaks = canaries.leaks()
        assert leaks == [], "log lines quote personal data, a client IP or a token"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database for this session, dropped at the end."""
    configured = os.environ.get("DATABASE_URL")
    if configured and configured.startswith("postgres"):
        admin, test, name = _postgres_test_url(configured)

        async def create() -> None:
            connection = await asyncpg.connect(admin.replace("postgres://", "postgresql://", 1))
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
                await connection.execute(f'CREATE DATABASE "{name}"')
            finally:
                await connection.close()

        async def drop() -> None:
            connection = await asyncpg.connect(admin.replace("postgres://", "postgresql://", 1))
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()

        asyncio.run(create())
        asyncio.run(db.migrate(test))
        yield test
        asyncio.run(drop())
        return
    path = tmp_path_factory.mktemp("db") / "ocis-test.sqlite3"
    url = f"sqlite://{path}"
    asyncio.run(db.migrate(url))
    yield url


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgres")


@pytest.fixture(scope="session", autouse=True)
def audit_checkpoints_elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Apps built from the environment keep their audit checkpoints out of var/."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OCIS_AUDIT_CHECKPOINT_DIR", str(tmp_path_factory.mktemp("checkpoints")))
        yield


@pytest.fixture
def app_settings(database_url: str, tmp_path: Path) -> config.Settings:
    return config.Settings(
        env="development",
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL") or None,
        public_url=ORIGIN,
        master_key=b"k" * 32,
        audit_checkpoint_dir=tmp_path / "audit-checkpoints",
        # Tests run fan-outs themselves (privacy/fanout.py fan_out_due): a background round
        # would add statements to the windows other tests count.
        fanout_poll_seconds=3600.0,
        # And run jobs themselves too (privacy/jobs.py Runner), for the same reason.
        run_jobs_in_server=False,
    )


async def _clean(redis_url: str | None) -> None:
    audit.forget_head()
    connection = Tortoise.get_connection("default")
    tables = [model._meta.db_table for model in Tortoise.apps["ocis"].values()]
    if connection.capabilities.dialect == "postgres":
        # The audit table refuses TRUNCATE; replica mode is how a superuser gets past it.
        await connection.execute_script(
            "SET session_replication_role = replica; TRUNCATE "
            + ", ".join(f'"{table}"' for table in tables)
            + " RESTART IDENTITY CASCADE; SET session_replication_role = origin;"
        )
    else:
        await bypass_append_only([f'DELETE FROM "{table}"' for table in tables])


@pytest.fixture
async def app(app_settings: config.Settings) -> AsyncIterator[Any]:
    """The real application with its lifespan running and an empty database."""
    application = create_app(app_settings)
    async with application.router.lifespan_context(application):
        await _clean(app_settings.redis_url)
        # The lifespan checkpointed what the previous test left; this test starts from nothing.
        shutil.rmtree(app_settings.audit_checkpoint_dir, ignore_errors=True)
        store = application.state.store
        await audit.prime_head(app_settings, store if app_settings.redis_url else None)
        async for key in store.scan_iter(match="ocis:*"):
            await store.delete(key)
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=ORIGIN, headers={"origin": ORIGIN}
    ) as http:
        yield http


@pytest.fixture
async def demo(app: Any) -> None:
    """The demo data set of `ocis seed`."""
    from resolvers.demo import seed_demo_data

    assert await seed_demo_data()


@pytest.fixture
def as_user(client: httpx.AsyncClient, demo: None) -> Any:
    async def factory(email: str | None) -> Api:
        if email is None:
            return Api(client)
        return Api(client, await sign_in(client, email))

    return factory


@pytest.fixture
def count_statements() -> Iterator[StatementCounter]:
    logger = logging.getLogger("tortoise.db_client")
    counter = StatementCounter()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    """A real SMTP server on loopback that keeps the messages it accepts."""
    with smtp_server() as mailbox:
        yield mailbox
