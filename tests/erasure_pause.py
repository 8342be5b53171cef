"""For the tests only: loaded by a worker with OCIS_EXTRA_JOB_MODULES=tests.erasure_pause, it
makes each step of the erasure job write a line to a trail file and then wait, so that a test
can kill the worker between two steps or in the middle of one."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from uuid import UUID

from privacy import erasure, jobs

PAUSE = "OCIS_TEST_ERASURE_PAUSE_MS"
TRAIL = "OCIS_TEST_ERASURE_TRAIL"


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="ascii") as trail:
        trail.write(line + "\n")
        trail.flush()
        os.fsync(trail.fileno())


def _pausing(name: str, run: erasure.StepFunction) -> erasure.StepFunction:
    async def step(job: jobs.JobContext, subject_id: UUID, state: erasure.State) -> None:
        trail = os.environ.get(TRAIL)
        if trail:
            await asyncio.to_thread(_append, Path(trail), f"{job.id} {name} start")
        await asyncio.sleep(int(os.environ.get(PAUSE, "0")) / 1000)
        await run(job, subject_id, state)
        await asyncio.sleep(int(os.environ.get(PAUSE, "0")) / 1000)

    return step


erasure.STEPS[:] = [(name, _pausing(name, run)) for name, run in erasure.STEPS]
