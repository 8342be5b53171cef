"""A closed-loop load generator: a fixed number of workers, bounded by time and count."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx


@dataclass(slots=True)
class Tally:
    """Latencies (seconds) and wall time of one target, summed over rounds."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    failures: int = 0
    # CPU the serving process used during this target's rounds (its own process's, or the
    # share of it while only this target was loading it).
    cpu_s: float = 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / len(self.latencies) if self.latencies else 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, percent: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else 0.0
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[percent - 1] * 1000


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    client: httpx.AsyncClient
    body: bytes
    headers: Mapping[str, str]
    expected: bytes


async def run_round(
    target: Target, *, concurrency: int, seconds: float, max_requests: int, tally: Tally | None
) -> Tally:
    """Keep ``concurrency`` requests in flight until time or count runs out.

    Every answer must be a 200 with exactly the expected body, or it counts as a failure.
    """
    result = tally if tally is not None else Tally()
    deadline = time.perf_counter() + seconds
    budget = max_requests

    async def worker() -> None:
        nonlocal budget
        while budget > 0 and time.perf_counter() < deadline:
            budget -= 1
            began = time.perf_counter()
            response = await target.client.post(
                "/graphql", content=target.body, headers=dict(target.headers)
            )
            result.latencies.append(time.perf_counter() - began)
            if response.status_code != 200 or response.content != target.expected:
                result.failures += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed += time.perf_counter() - began
    return result
