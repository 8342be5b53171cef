"""This process's audit writer: its keys and checkpoint place, chains, cached heads and coverage.

Shared by the appends (``privacy.audit``), the checkpoints (``privacy.audit_checkpoints``) and
the verifier (``privacy.audit_verify``); it imports none of them.
"""

from __future__ import annotations

import asyncio
import secrets
import weakref
from dataclasses import dataclass

from redis.asyncio import Redis

import settings as config
from models import AuditEvent
from privacy.audit_links import AuditKey, genesis


@dataclass(slots=True)
class Config:
    settings: config.Settings
    current: AuditKey
    keys: dict[str, AuditKey]
    store: Redis | None = None


Head = tuple[int, str]


class Writer:
    """This process's chains, their cached heads and what its checkpoints already cover."""

    config: Config | None = None
    id: str = secrets.token_hex(8)
    read_head: Head | None = None
    pending_change: tuple[Head, float] | None = None
    covered: dict[str, Head] = {}
    retries: int = 0
    # Requests in this process append one at a time; collisions are then only across processes.
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def lock(cls) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop not in cls.locks:
            cls.locks[loop] = asyncio.Lock()
        return cls.locks[loop]

    @classmethod
    def reads_chain(cls) -> str:
        return f"{cls.id}.r"

    @classmethod
    def changes_chain(cls) -> str:
        return f"{cls.id}.c"


def configure(settings: config.Settings, store: Redis | None = None) -> Config:
    """Use these settings' master keys and checkpoint place; ``store``: a Redis client to share."""
    keys = [AuditKey.from_master_key(settings.master_key)]
    keys += [AuditKey.from_master_key(key) for key in settings.previous_master_keys]
    Writer.config = Config(settings, keys[0], {key.key_id: key for key in keys}, store)
    return Writer.config


def current_config() -> Config:
    return Writer.config or configure(config.from_environ())


async def read_head(chain: str) -> Head:
    """The chain's newest position and hash in the database (its genesis when empty)."""
    last = (
        await AuditEvent.filter(chain=chain).order_by("-position").only("position", "hash").first()
    )
    return (last.position, last.hash) if last else (0, genesis(chain))
