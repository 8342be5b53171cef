"""`python server.py serve --workers N`: N real processes on one port, one PostgreSQL, one Redis.

A session made through one worker is honoured by the other, and `/metrics`, answered by either,
sums both (prometheus-client's multiprocess mode, in a directory of that start's own).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

import cli
import settings as config
from models import db
from tests.helpers import ORIGIN, ROOT, signed_in_email, subprocess_environment
from tests.smtp_server import free_port
from tests.test_two_processes import shared_redis  # noqa: F401 - a fixture

CUSTOMER = "customer@example.com"
METRICS_TOKEN = "scale-out-metrics-token-0123456789"
STARTUP_SECONDS = 60
REQUESTS = 40


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def workers(environment: dict[str, str], log: Path, count: int) -> Iterator[str]:
    """`serve --workers count` until the block ends; yields its base URL once it answers."""
    for _ in range(3):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own server with fixed arguments
                [sys.executable, "server.py", "serve", "--workers", str(count)],
                cwd=ROOT,
                env={**environment, "PORT": str(port)},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        ready = False
        while process.poll() is None and time.monotonic() < deadline and not ready:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        if ready:
            break
        _stop(process)
        if "address already in use" not in log.read_text().lower():
            raise AssertionError("serve --workers did not start:\n" + log.read_text())
    else:
        raise AssertionError("no free port for the server in three tries")
    try:
        yield base
    finally:
        _stop(process)


def _graphql_requests_by_file(directory: Path) -> dict[str, float]:
    """Each worker's own count of answered /graphql requests, from its multiprocess file."""
    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        total = 0.0
        read = MmapedDict.read_all_values_from_file
        for key, value, _timestamp, _position in read(str(path)):  # type: ignore[no-untyped-call]
            _metric, sample, labels, _help = json.loads(key)
            if sample == "ocis_requests_total" and labels.get("route") == "/graphql":
                total += value
        counts[path.name] = total
    return counts


def _exposed_graphql_requests(text: str) -> float:
    pattern = re.compile(r"^ocis_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)
    return sum(
        float(value) for labels, value in pattern.findall(text) if 'route="/graphql"' in labels
    )


async def test_a_session_made_on_one_worker_works_on_the_other_and_metrics_sum_both(
    demo: None,
    app_settings: config.Settings,
    shared_redis: str,  # noqa: F811 - the fixture imported above
    is_postgres: bool,
    tmp_path: Path,
) -> None:
    if not is_postgres:
        pytest.skip("several workers need PostgreSQL (the embedded leg is refused, below)")
    metrics_parent = tmp_path / "metrics"
    environment = subprocess_environment(
        DATABASE_URL=app_settings.database_url,
        REDIS_URL=shared_redis,
        OCIS_MASTER_KEY=base64.b64encode(app_settings.master_key).decode(),
        PUBLIC_URL=ORIGIN,
        HOST="127.0.0.1",
        OCIS_METRICS_TOKEN=METRICS_TOKEN,
        OCIS_RUN_JOBS_IN_SERVER="false",
        OCIS_AUDIT_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        OCIS_DB_POOL_SIZE="3",
        OCIS_METRICS_DIR=str(metrics_parent),
        PYTHONUNBUFFERED="1",
    )
    with workers(environment, tmp_path / "serve.log", 2) as base:
        (directory,) = metrics_parent.iterdir()
        assert directory.name.startswith("ocis-metrics-"), "a fresh directory of this start"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            signed_in = await http.post(
                "/auth/password",
                json={"email": CUSTOMER, "password": "ocis-demo"},
                headers={"origin": ORIGIN},
            )
            assert signed_in.status_code == 200, signed_in.text
            cookie = signed_in.cookies["ocis_session"]

        async def me() -> str | None:
            # A connection of its own each time: the kernel hands it to either worker.
            async with httpx.AsyncClient(base_url=base, timeout=30) as fresh:
                response = await fresh.post(
                    "/graphql",
                    json={"query": "{ me { email } }"},
                    headers={"origin": ORIGIN, "cookie": f"ocis_session={cookie}"},
                )
                return signed_in_email(response)

        answers: list[str | None] = []
        for _ in range(REQUESTS // 10):
            answers += await asyncio.gather(*(me() for _ in range(10)))
        assert answers == [CUSTOMER] * REQUESTS

        by_worker = _graphql_requests_by_file(directory)
        assert len(by_worker) == 2, by_worker
        assert all(count > 0 for count in by_worker.values()), (
            f"both workers answer the one session: {by_worker}"
        )
        assert sum(by_worker.values()) == REQUESTS
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            refused = await http.get("/metrics")
            assert refused.status_code == 401
            for _ in range(6):  # whichever worker answers, it reports both
                exposed = await http.get(
                    "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}
                )
                assert exposed.status_code == 200
                assert _exposed_graphql_requests(exposed.text) == REQUESTS
    assert not directory.exists(), "the start's metrics directory goes with it"
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log
    assert CUSTOMER not in log


@pytest.mark.parametrize(
    ("database_url", "redis_url", "complaint"),
    [
        pytest.param("sqlite:///tmp/x.sqlite3", "redis://127.0.0.1:1/0", "PostgreSQL", id="sqlite"),
        pytest.param("postgres://u@127.0.0.1:1/x", None, "REDIS_URL is required", id="no-redis"),
    ],
)
def test_several_workers_without_postgresql_and_redis_are_refused(
    database_url: str, redis_url: str | None, complaint: str
) -> None:
    settings = config.Settings(database_url=database_url, redis_url=redis_url)
    assert any(complaint in problem for problem in cli.scale_out_problems(settings, 2))
    assert cli.scale_out_problems(settings, 1) == []
    environment = subprocess_environment(
        DATABASE_URL=database_url, **({"REDIS_URL": redis_url} if redis_url else {})
    )
    refused = subprocess.run(  # noqa: S603 - our own server with fixed arguments
        [sys.executable, "server.py", "serve", "--workers", "2"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "serve --workers 2 refuses to start" in refused.stderr
    assert complaint in refused.stderr


@pytest.mark.parametrize("workers", ["0", "-1", "two", "65"])
def test_a_bad_worker_count_is_refused(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        cli.parser().parse_args(["serve", "--workers", workers])
    assert refused.value.code == 2
    assert "--workers: a whole number from 1 to 64" in capsys.readouterr().err
    assert cli.parser().parse_args(["serve", "--workers", "3"]).workers == 3
    assert cli.parser().parse_args(["serve"]).workers == 1


@pytest.mark.parametrize(
    ("url", "size", "expected"),
    [
        ("postgres://u@h:5432/d", 7, "postgres://u@h:5432/d?maxsize=7"),
        ("postgres://u@h/d?ssl=true", 3, "postgres://u@h/d?ssl=true&maxsize=3"),
        ("postgres://u@h/d?maxsize=2", 9, "postgres://u@h/d?maxsize=2"),
        ("sqlite:///tmp/x.sqlite3", 7, "sqlite:///tmp/x.sqlite3"),
    ],
)
def test_the_pool_size_reaches_the_postgresql_url(url: str, size: int, expected: str) -> None:
    assert db.pooled(url, size) == expected


def test_the_pool_size_is_read_from_the_environment() -> None:
    assert config.from_environ({}).db_pool_size == config.DEFAULT_DB_POOL_SIZE
    assert config.from_environ({"OCIS_DB_POOL_SIZE": "25"}).db_pool_size == 25
    for bad in ("0", "-3", "many"):
        with pytest.raises(config.ConfigurationError, match="OCIS_DB_POOL_SIZE"):
            config.from_environ({"OCIS_DB_POOL_SIZE": bad})
