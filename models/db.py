"""Database configuration, migration and connection lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api.migrate import migrate as run_migrations

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
]


def tortoise_config(database_url: str) -> dict[str, Any]:
    if database_url.startswith("sqlite://"):
        Path(database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": database_url},
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
    database_url: str, master_key: bytes, previous_master_keys: tuple[bytes, ...] = ()
) -> None:
    """Open the database with these master keys (current first); no query is sent yet."""
    crypto.configure(master_key, previous_master_keys)
    keys.forget()
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def load_keys() -> None:
    """Read the stored blind-index key (storing it on a fresh database)."""
    await keys.load_blind_index_key()


async def disconnect() -> None:
    await Tortoise.close_connections()


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
