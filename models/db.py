"""Database configuration, migration and connection lifecycle."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.client import TransactionContextPooled
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connections
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api.migrate import migrate as run_migrations

import settings as config
from models import crypto, keys

APP = "ocis"
MODEL_MODULES = [
    "models.users",
    "models.tickets",
    "models.privacy",
    "models.keys",
    "models.notices",
    "models.staff",
    "models.jobs",
    "models.documents",
    "models.usage",
    "models.exports",
    "models.legal",
]


def pooled(database_url: str, pool_size: int) -> str:
    """A PostgreSQL URL whose pool holds at most ``pool_size`` connections (unless the URL says
    ``maxsize`` itself); other URLs unchanged."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql", "asyncpg"):
        return database_url
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "maxsize" for name, _ in query):
        return database_url
    query.append(("maxsize", str(pool_size)))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset of a released connection, beyond asyncpg's own (listeners dropped,
    an open transaction rolled back): nothing, so a release costs no round trip.

    asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on
    every release. OCIS leaves no session state to undo: its only advisory lock is
    transaction-scoped (``pg_advisory_xact_lock``), and it sets no settings, cursors, channels
    or temporary tables; tests/test_pool_reset.py checks a served workload leaves none."""


logger = logging.getLogger("ocis.db")

_ENTER_POOLED_TRANSACTION = TransactionContextPooled.__aenter__


async def _enter_or_give_back(self: TransactionContextPooled) -> Any:
    """`in_transaction()` on a pool, giving its connection back when BEGIN fails.

    Tortoise (1.1.9, the newest) acquires a connection and then sends BEGIN, outside the
    `finally` that releases it: a BEGIN that fails (the server cut the connection, the task
    was cancelled) left the connection taken for good, and the pool one smaller. Seen in CI:
    after PostgreSQL cut every backend, the pool could never again hold its 10 transactions at
    once (tests/test_faults.py, tests/test_pool_reset.py)."""
    held = self.client._connection
    try:
        return await _ENTER_POOLED_TRANSACTION(self)
    except BaseException:
        taken = self.client._connection
        pool = self.client._parent._pool
        if taken is not None and taken is not held and pool is not None:
            try:
                await pool.release(taken)
            except Exception:  # noqa: BLE001 - a dead connection is closed and replaced anyway
                logger.warning("a connection whose BEGIN failed could not be released")
        token = getattr(self, "token", None)
        if token is not None:
            get_connections().reset(token)
        raise


TransactionContextPooled.__aenter__ = _enter_or_give_back  # type: ignore[method-assign]


def connection_config(database_url: str, pool_size: int) -> str | dict[str, Any]:
    """Tortoise's connection: the URL, and on PostgreSQL a pool that sends no reset query."""
    url = pooled(database_url, pool_size)
    if urlsplit(url).scheme not in ("postgres", "postgresql", "asyncpg"):
        return url
    expanded: dict[str, Any] = expand_db_url(url)
    expanded["credentials"]["reset"] = keep_session
    return expanded


def tortoise_config(
    database_url: str, pool_size: int = config.DEFAULT_DB_POOL_SIZE
) -> dict[str, Any]:
    if database_url.startswith("sqlite://"):
        Path(database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": connection_config(database_url, pool_size)},
        "apps": {
            APP: {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(database_url: str) -> None:
    """Apply the committed migrations."""
    await run_migrations(config=tortoise_config(database_url))
    await Tortoise.close_connections()


async def connect(
    database_url: str,
    master_key: bytes,
    previous_master_keys: tuple[bytes, ...] = (),
    pool_size: int = config.DEFAULT_DB_POOL_SIZE,
) -> None:
    """Open the database with these master keys (current first) and at most ``pool_size``
    connections (PostgreSQL); no query is sent yet."""
    crypto.configure(master_key, previous_master_keys)
    keys.forget()
    await Tortoise.init(
        config=tortoise_config(database_url, pool_size), _enable_global_fallback=True
    )


async def load_keys() -> None:
    """Read the stored blind-index key (storing it on a fresh database)."""
    await keys.load_blind_index_key()


async def disconnect() -> None:
    await Tortoise.close_connections()


def terminate_pools() -> int:
    """Close every PostgreSQL pool's connections at once, in use or not (a stopping process
    whose pool waits for a connection that is never given back); how many pools."""
    ended = 0
    for client in connections.all():
        pool = getattr(client, "_pool", None)
        if isinstance(pool, asyncpg.Pool):
            pool.terminate()
            ended += 1
    return ended


async def ping() -> None:
    await Tortoise.get_connection("default").execute_query("SELECT 1")


# The server went away or is not accepting us: shut down (pg_terminate_backend, a restart),
# crashed, starting up, or the socket itself closed or refused.
_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    DBConnectionError,
    ConnectionError,
    TimeoutError,
)


def connection_lost(error: BaseException) -> bool:
    """Whether this error means the database cannot be reached right now (not a bad query)."""
    if isinstance(error, _LOST):
        return True
    # asyncpg's own words for a connection closed under it (a query on it, or its rollback),
    # and for one whose server's parting error arrived between two queries.
    if isinstance(error, asyncpg.InterfaceError):
        return "closed" in str(error)
    return type(error) is asyncpg.InternalClientError and "another operation" in str(error)


# For Tortoise's own CLI (`tortoise -c models.db.TORTOISE_ORM makemigrations`).
TORTOISE_ORM = tortoise_config("sqlite://:memory:")
