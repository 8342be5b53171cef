"""JSON log lines without personal data, and Prometheus metrics only for the token's holder."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

import observability
import settings as config
from server import create_app
from tests.helpers import ORIGIN, Api
from tests.log_canaries import LogCanaries
from tests.test_two_processes import embedded_leg_redis, server_process

TOKEN = "m" * 40


@pytest.fixture
async def metered(app_settings: config.Settings) -> Any:
    """A client of an app whose /metrics answers to TOKEN."""
    application = create_app(replace(app_settings, metrics_token=TOKEN))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url=ORIGIN, headers={"origin": ORIGIN}
        ) as http:
            yield http


def _sample(text: str, name: str, **labels: str) -> float:
    """The sum of the exposition's samples of `name` with these labels (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


async def test_metrics_are_off_without_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    assert "ocis_" not in response.text


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN],
)
async def test_metrics_answer_only_the_token(
    metered: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = await metered.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "ocis_" not in response.text


async def test_requests_errors_and_refusals_are_counted_by_name_not_value(
    metered: httpx.AsyncClient,
) -> None:
    before = await _scrape(metered)
    api = Api(metered)
    await api.gql("query WhoAmI { me { email } }")
    await api.gql("query Broken { me { noSuchField } }")
    for _ in range(12):  # the per-account sign-in limit is ten a window
        await metered.post(
            "/auth/password", json={"email": "nobody@example.com", "password": "wrong-password"}
        )
    after = await _scrape(metered)

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert grew("ocis_requests_total", route="/graphql", operation="WhoAmI", status="200") == 1
    assert grew("ocis_request_duration_seconds_count", route="/graphql", operation="WhoAmI") == 1
    # A validation error carries no code of ours.
    assert grew("ocis_graphql_errors_total", code="UNCODED") == 1
    assert grew("ocis_requests_total", route="/auth/password", status="401") >= 10
    assert grew("ocis_rate_limit_refusals_total") >= 1
    # Nothing a caller sent becomes a label: no address, no password.
    assert "nobody@example.com" not in after
    assert "wrong-password" not in after


def test_operation_names_become_labels_only_so_many() -> None:
    assert observability.operation_label(None) == "anonymous"
    assert observability.operation_label("") == "anonymous"
    assert observability.operation_label("has space") == "invalid"
    assert observability.operation_label("x" * 65) == "invalid"
    names = [observability.operation_label(f"Op{n}") for n in range(3 * 200)]
    assert "other" in names
    assert len(set(names) - {"other"}) <= observability.MAX_OPERATION_LABELS


async def test_one_json_line_per_request_names_route_and_operation_but_no_ip_or_path(
    client: httpx.AsyncClient, no_personal_data_in_logs: LogCanaries
) -> None:
    await Api(client).gql("query WhoAmI { me { email } }")
    await client.get("/auth/callback/google?code=the-code-value&state=the-state-value")
    lines = [
        json.loads(line)
        for line in no_personal_data_in_logs.lines
        if json.loads(line)["logger"] == "ocis.request"
    ]
    graphql, callback = lines[-2], lines[-1]
    assert graphql["route"] == "/graphql"
    assert graphql["operation"] == "WhoAmI"
    assert graphql["status"] == 200
    assert graphql["method"] == "POST"
    assert len(graphql["request_id"]) == 32
    assert graphql["duration_ms"] >= 0
    assert callback["route"] == "/auth/callback/{provider}"
    text = "\n".join(no_personal_data_in_logs.lines)
    assert "the-code-value" not in text
    assert "the-state-value" not in text
    assert "203.0.113.7" not in text


def test_the_log_canaries_catch_what_they_are_for() -> None:
    """The guard that every test runs under: each kind of leak is caught."""
    canaries = LogCanaries()
    log = logging.getLogger("ocis.test-canaries")
    log.addHandler(canaries)
    log.propagate = False
    try:
        log.warning("signed in %s", "Carla Customer")
        log.warning("client %s", "198.51.100.4")
        log.warning("cookie ocis_session=abcdefghijklmnop")
        log.warning("request %s done", "0123abcd")
    finally:
        log.removeHandler(canaries)
        log.propagate = True
    assert len(canaries.leaks()) == 3


def test_a_short_metrics_token_is_refused() -> None:
    with pytest.raises(config.ConfigurationError, match="OCIS_METRICS_TOKEN"):
        config.from_environ({"OCIS_METRICS_TOKEN": "short"})
    assert config.from_environ({"OCIS_METRICS_TOKEN": TOKEN}).metrics_token == TOKEN
    assert config.from_environ({}).metrics_token is None


async def test_any_process_answers_for_every_process_sharing_the_metrics_directory(
    app_settings: config.Settings, tmp_path: Path
) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    shared = embedded_leg_redis(app_settings)
    extra = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "OCIS_METRICS_TOKEN": TOKEN}
    with (
        server_process(app_settings, shared, tmp_path / "a.log", **extra) as first,
        server_process(app_settings, shared, tmp_path / "b.log", **extra) as second,
    ):
        async with httpx.AsyncClient(timeout=10) as http:
            for base, times in ((first, 3), (second, 2)):
                for _ in range(times):
                    assert (await http.get(f"{base}/readyz")).status_code == 200
            for base in (first, second):
                scraped = await http.get(
                    f"{base}/metrics", headers={"authorization": f"Bearer {TOKEN}"}
                )
                assert scraped.status_code == 200
                total = _sample(scraped.text, "ocis_requests_total", route="/readyz")
                assert total == 5, scraped.text[:2000]
    for log in ("a.log", "b.log"):
        for line in (tmp_path / log).read_text().splitlines():
            json.loads(line)  # every line the server wrote is one JSON object
