"""The shared store: Redis in production, fakeredis's in-process client otherwise.

Also which failures mean a dependency is down (Redis or the database), so that the web layer
answers them with one 503 instead of a stack trace, and never treats them as "no session" or
"no limit".
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as StoreConnectionError
from redis.exceptions import TimeoutError as StoreTimeoutError

from models import db

# A dead or frozen Redis must cost a request about a second at most: half a second per try,
# one retry on a fresh connection (which is also how a connection broken by a restart heals).
SOCKET_TIMEOUT_SECONDS = 0.5
RETRIES = 1
# A connection idle this long is checked with a PING before use.
HEALTH_CHECK_SECONDS = 5

STORE = "store"
DATABASE = "database"


def connect_store(redis_url: str | None) -> Redis:
    if redis_url:
        client: Redis = Redis.from_url(
            redis_url,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), RETRIES),
            health_check_interval=HEALTH_CHECK_SECONDS,
        )
        return client
    from fakeredis import FakeAsyncRedis

    return FakeAsyncRedis(decode_responses=True)


class DependencyUnavailable(Exception):
    """A request could not be served because Redis or the database could not be reached."""

    def __init__(self, dependency: str) -> None:
        super().__init__(f"{dependency} unreachable")
        self.dependency = dependency


def unreachable_dependency(error: BaseException) -> str | None:
    """`store` or `database` when this error (or one it arose from) means that dependency
    cannot be reached; None for any other failure."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DependencyUnavailable):
            return current.dependency
        if isinstance(current, BaseExceptionGroup):
            found = (unreachable_dependency(each) for each in current.exceptions)
            return next((name for name in found if name is not None), None)
        if isinstance(current, (StoreConnectionError, StoreTimeoutError)):
            return STORE
        if db.connection_lost(current):
            return DATABASE
        current = current.__cause__ or current.__context__
    return None
