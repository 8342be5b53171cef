"""Uvicorn subprocesses on loopback that always stop, with bounded waits."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)


@asynccontextmanager
async def uvicorn_server(
    name: str,
    factory: str,
    port: int,
    env: Mapping[str, str],
    pids: dict[str, int] | None = None,
) -> AsyncIterator[str]:
    """Serve ``factory`` (module:function) on 127.0.0.1:port until the block ends; its process
    id goes into ``pids`` under ``name`` (to read the CPU it used)."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
        if pids is not None:
            pids[name] = process.pid
        try:
            await _wait_ready(name, process, base_url)
            yield base_url
        except BaseException:
            await _stop(process)
            log.seek(0)
            output = log.read().decode(errors="replace").strip()
            if output:
                print(f"--- {name} server output ---\n{output[-4000:]}", file=sys.stderr)
            raise
        finally:
            await _stop(process)


async def _wait_ready(name: str, process: asyncio.subprocess.Process, base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise ServerError(f"{name} server exited with code {process.returncode}")
            try:
                response = await client.get("/healthz")
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            if response.status_code == 200:
                return
            await asyncio.sleep(0.1)
    raise ServerError(f"{name} server did not become ready within {START_TIMEOUT_S:.0f} s")


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without OCIS settings that must not leak in, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "HOST", "PORT", "PUBLIC_URL", "CORS_ORIGINS"}
    }
    env.update(extra)
    return env


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
