"""Audited appends per second, and retries, on one writer and on concurrent writer processes.

``python -m bench.audit_appends --database-url postgres://... [--redis-url ...]`` appends read
batches (as one audited request does) from 1 and then 2 processes for a few seconds each,
verifies the whole trail and prints one JSON line per run. The database must be migrated; its
audit records are left in place.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

import settings as config
from auth.principal import Principal
from models import db
from privacy import audit, audit_verify


@dataclass(frozen=True, slots=True)
class Run:
    settings: config.Settings
    seconds: float
    appends: int
    batch: int
    start_at: float


def _entries(batch: int) -> list[audit.Entry]:
    return [
        audit.Entry(
            action=audit.READ_ACTION,
            entity="personal_data",
            entity_id=None,
            subject_id=uuid.uuid4(),
            field_names=("User.email", "User.name"),
        )
        for _ in range(batch)
    ]


async def _append(run: Run) -> tuple[int, int, float]:
    # The checkpoint's INFO line is part of the cost: format it, as a server would.
    logging.basicConfig(level=logging.INFO, filename=os.devnull)
    await db.connect(run.settings.database_url, run.settings.master_key)
    store = Redis.from_url(run.settings.redis_url) if run.settings.redis_url else None
    try:
        await audit.prime_head(run.settings, store)
        principal = Principal(request_id="bench")
        # Every writer starts at the same moment, whenever its process came up.
        await asyncio.sleep(max(0.0, run.start_at - time.time()))
        started = time.perf_counter()
        appended = 0
        while appended < run.appends and time.perf_counter() - started < run.seconds:
            await audit.record_many(principal, _entries(run.batch))
            appended += 1
        return appended, audit.retries(), time.perf_counter() - started
    finally:
        if store is not None:
            await store.aclose()
        await db.disconnect()


def _writer(run: Run) -> tuple[int, int, float]:
    return asyncio.run(_append(run))


async def _verify(settings: config.Settings) -> audit_verify.ChainReport:
    await db.connect(settings.database_url, settings.master_key)
    try:
        audit.configure(settings)
        return await audit_verify.verify_chain()
    finally:
        await db.disconnect()


def measure(
    settings: config.Settings,
    writers: int,
    *,
    seconds: float = 3.0,
    appends: int = 10**9,
    batch: int = 2,
    verify: bool = True,
) -> dict[str, Any]:
    """Run ``writers`` processes appending at once; their throughput, retries and the verdict."""
    run = Run(settings, seconds, appends, batch, time.time() + 1.5)
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        results = pool.map(_writer, [run] * writers)
    report = asyncio.run(_verify(settings)) if verify else None
    appended = sum(count for count, _, _ in results)
    elapsed = max(duration for _, _, duration in results)
    return {
        "writers": writers,
        "appends": appended,
        "records": appended * batch,
        "appends_per_second": round(appended / elapsed, 1),
        "retries": sum(retried for _, retried, _ in results),
        **(
            {"intact": report.intact, "checked": report.checked, "reason": report.reason}
            if report
            else {}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=2, help="records per audited request")
    args = parser.parse_args()
    base = config.Settings(database_url=args.database_url, redis_url=args.redis_url)
    settings = replace(base, master_key=b"b" * 32)
    for writers in (1, 2):
        print(json.dumps(measure(settings, writers, seconds=args.seconds, batch=args.batch)))


if __name__ == "__main__":
    main()
