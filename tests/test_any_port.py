"""A newcomer's first run on any port: `serve` without PUBLIC_URL, the README's curl sign-in,
then a GraphQL query sent with the Origin of that port."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import run_cli, subprocess_environment
from tests.test_two_processes import _start, _stop

QUERY = "{ tickets(first: 50) { edges { node { id subject requester { email } } } } }"


def test_sign_in_and_query_on_a_port_of_its_own_without_public_url(tmp_path: Path) -> None:
    database = {"DATABASE_URL": f"sqlite://{tmp_path / 'first-run.sqlite3'}"}
    for command in ("migrate", "seed"):
        result = run_cli(command, env=database)
        assert result.returncode == 0, result.stderr
    environment = {
        key: value
        for key, value in subprocess_environment().items()
        if key not in ("PUBLIC_URL", "HOST", "PORT", "CORS_ORIGINS")
    }
    environment.update(database, PYTHONUNBUFFERED="1")
    for _ in range(3):
        started = _start(environment, tmp_path / "serve.log")
        if started is not None:
            break
    else:
        raise AssertionError("no free port for the server in three tries")
    process, base = started
    try:
        with httpx.Client(base_url=base, timeout=10) as curl:
            signed_in = curl.post(
                "/auth/password", json={"email": "agent@example.com", "password": "ocis-demo"}
            )
            assert signed_in.status_code == 200, signed_in.text
            assert signed_in.json() == {"ok": True}
            answer = curl.post("/graphql", json={"query": QUERY}, headers={"origin": base})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert "errors" not in body
            assert body["data"]["tickets"]["edges"]
    finally:
        _stop(process)
