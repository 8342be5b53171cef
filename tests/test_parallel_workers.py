"""Parallel runs (pytest-xdist): every worker keeps its Redis state in a database of its own."""

from __future__ import annotations

import pytest

from tests.helpers import worker_redis_url


@pytest.mark.parametrize(
    ("worker", "url", "expected"),
    [
        pytest.param("", "redis://127.0.0.1:6379/11", "redis://127.0.0.1:6379/11", id="serial"),
        pytest.param("gw0", "redis://127.0.0.1:6379/11", "redis://127.0.0.1:6379/11", id="gw0"),
        pytest.param("gw1", "redis://127.0.0.1:6379/11", "redis://127.0.0.1:6379/12", id="gw1"),
        pytest.param("gw3", "redis://127.0.0.1:6379", "redis://127.0.0.1:6379/3", id="no-db"),
        pytest.param(
            "gw2",
            "redis://:pw@cache.example.com:6380/4",
            "redis://:pw@cache.example.com:6380/6",
            id="credentials-kept",
        ),
    ],
)
def test_each_worker_adds_its_index_to_the_database(
    monkeypatch: pytest.MonkeyPatch, worker: str, url: str, expected: str
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    assert worker_redis_url(url) == expected
