"""Job kinds for the tests only: a worker loads them with OCIS_EXTRA_JOB_MODULES=tests.job_kinds
(development only; production refuses the setting)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tortoise import Tortoise

from models import Export
from privacy import exports, jobs

EFFECTS = "test_job_effects"
STEPS = 5
# A file the handler appends "JOB STEP OWNER" to each time a step starts, so a test sees re-runs.
TRAIL = "OCIS_TEST_JOB_TRAIL"
# An export part's index: a worker's export job stops after writing that part, until killed.
EXPORT_PAUSE = "OCIS_TEST_EXPORT_PAUSE_AFTER_PART"


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="ascii") as trail:
        trail.write(line + "\n")
        trail.flush()
        os.fsync(trail.fileno())


async def create_effects_table() -> None:
    await Tortoise.get_connection("default").execute_script(
        f'CREATE TABLE IF NOT EXISTS "{EFFECTS}"'
        ' ("job_id" VARCHAR(36) NOT NULL, "step" INT NOT NULL, PRIMARY KEY ("job_id", "step"))'
    )


async def drop_effects_table() -> None:
    await Tortoise.get_connection("default").execute_script(f'DROP TABLE IF EXISTS "{EFFECTS}"')


async def effects() -> list[tuple[str, int]]:
    rows = await Tortoise.get_connection("default").execute_query_dict(
        f'SELECT "job_id", "step" FROM "{EFFECTS}" ORDER BY "job_id", "step"'  # noqa: S608
    )
    return [(str(row["job_id"]), int(row["step"])) for row in rows]


@jobs.handler("test.steps")
async def five_steps(job: jobs.JobContext) -> None:
    """Five steps, each writing one row keyed by (job, step), resumed after the last checkpoint."""
    connection = Tortoise.get_connection("default")
    postgres = connection.capabilities.dialect == "postgres"
    insert = (
        f'INSERT INTO "{EFFECTS}" ("job_id", "step") VALUES '  # noqa: S608 - fixed test SQL
        + ("($1, $2)" if postgres else "(?, ?)")
        + " ON CONFLICT DO NOTHING"
    )
    trail = os.environ.get(TRAIL)
    pause = int(job.payload.get("pause_ms", 0)) / 1000
    for step in range(int(job.progress.get("step", 0)) + 1, STEPS + 1):
        if trail:
            await asyncio.to_thread(_append, Path(trail), f"{job.id} {step} {job.owner}")
        await connection.execute_query(insert, [str(job.id), step])
        await asyncio.sleep(pause)
        await job.checkpoint(step=step)


def _trail_export_parts() -> None:
    """In a worker these tests start (TRAIL set): each export part written appends
    "EXPORT part INDEX PID" to the trail, and the part at EXPORT_PAUSE holds the job there."""
    trail = os.environ.get(TRAIL)
    if not trail:
        return
    pause = os.environ.get(EXPORT_PAUSE)
    write = exports._write_part

    async def write_and_trail(export: Export, index: int, chunk: str) -> None:
        await write(export, index, chunk)
        await asyncio.to_thread(_append, Path(trail), f"{export.id} part {index} {os.getpid()}")
        if pause is not None and index == int(pause):
            await asyncio.Event().wait()  # mid-build, until the test kills this process

    exports._write_part = write_and_trail


_trail_export_parts()
