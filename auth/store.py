"""The shared store: Redis in production, fakeredis's in-process client otherwise."""

from __future__ import annotations

from redis.asyncio import Redis


def connect_store(redis_url: str | None) -> Redis:
    if redis_url:
        client: Redis = Redis.from_url(redis_url, decode_responses=True)
        return client
    from fakeredis import FakeAsyncRedis

    return FakeAsyncRedis(decode_responses=True)
