"""The load run in its small mode: every acknowledged write stored exactly once, no internal error.

`python -m bench.load_run --clients 5 --seconds 5` against two real server processes
(`serve --workers 2`) on a PostgreSQL database and a Redis of the run's own; `make load` runs
the full one (50 clients, 60 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
@pytest.mark.promise("P20")
def test_a_small_load_run_loses_no_acknowledged_write_and_has_no_internal_error() -> None:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OCIS_", "REDIS_URL", "PROMETHEUS_"))
    }
    if not environment.get("DATABASE_URL", "").startswith("postgres"):
        # The embedded leg: the local cluster's maintenance database, beside which the run
        # creates its own.
        environment["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/postgres"
    finished = subprocess.run(  # noqa: S603 - our own benchmark with fixed arguments
        [
            sys.executable,
            "-m",
            "bench.load_run",
            "--clients",
            "5",
            "--seconds",
            "5",
            "--accounts-per-client",
            "1",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert finished.stdout.strip(), finished.stderr[-4000:]
    figures = json.loads(finished.stdout.strip().splitlines()[-1])
    assert figures["acknowledged_writes"] > 0, figures
    assert figures["exactly_once"], figures
    assert (figures["missing"], figures["duplicated"], figures["misplaced"]) == (0, 0, 0)
    assert figures["internal_errors"] == 0, figures
    assert figures["errors_by_kind"] == {}, figures
    assert figures["server_error_codes"] == {}, figures
    assert figures["audit_retries"] == 0, figures
    assert figures["audit_appends"] == figures["acknowledged_writes"], figures
    assert figures["audit_verified"], figures
    assert set(figures["requests_by_kind"]) == {"create", "reply", "page"}
    assert finished.returncode == 0, finished.stderr[-4000:]
