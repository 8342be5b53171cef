"""The shared store: Redis in production, fakeredis's in-process client otherwise."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


def connect_store(redis_url: str | None) -> Redis:
    if redis_url:
        client: Redis = Redis.from_url(redis_url, decode_responses=True)
        return client
    from fakeredis import FakeAsyncRedis

    fake: Any = FakeAsyncRedis(decode_responses=True)
    return fake  # type: ignore[no-any-return]
