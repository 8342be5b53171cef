"""`python -m bench registration-timing`: does `register` take as long for a taken address as
for a free one? (With --reset: does `requestPasswordReset` take as long for an address that gets
a link as for an unknown one?)

Serves the real app in this process (PostgreSQL in a database of its own when DATABASE_URL is
set, else a throwaway SQLite file; the in-process store), seeds verified accounts, then sends
`register` for taken and free addresses in alternation, each from its own client address so no
rate limit answers instead, and ends with one JSON line: the medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx

import settings as config
from auth.passwords import hash_password
from bench.dataset import drop_database, recreate_database
from models import Role, User, db
from server import create_app

DATABASE = "ocis_bench_registration"
FIRST_CLIENT = IPv4Address("198.18.0.1")  # the benchmarking range (RFC 2544)
REGISTER = "mutation R($input: RegisterInput!) { register(input: $input) { __typename } }"
RESET = "mutation R($e: String!) { requestPasswordReset(email: $e) { __typename } }"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench registration-timing")
    parser.add_argument("--attempts", type=int, default=50, help="per kind (default 50)")
    parser.add_argument(
        "--reset", action="store_true", help="time requestPasswordReset instead of register"
    )
    args = parser.parse_args(argv)
    if args.attempts < 1:
        parser.error("--attempts must be positive")
    return args


def _form(email: str) -> dict[str, Any]:
    return {
        "input": {
            "name": "Tim Timing",
            "email": email,
            "password": "a long enough password",
            "dateOfBirth": "1990-05-17",
        }
    }


async def _seed(count: int) -> list[str]:
    """Verified accounts whose addresses the taken attempts use (one each: the per-address
    limit would otherwise answer)."""
    password_hash = await hash_password("a seeded password, never typed")
    emails = [f"taken{index}@example.com" for index in range(count)]
    for email in emails:
        user = User(
            name="Taken",
            password_hash=password_hash,
            roles=[Role.CUSTOMER.value],
            email_verified_at=datetime.now(UTC),
        )
        user.set_email(email)
        await user.save()
    return emails


async def _timed(
    app: Any, settings: config.Settings, client_ip: str, email: str, reset: bool = False
) -> float:
    transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
    origin = settings.public_origin
    query, variables = (RESET, {"e": email}) if reset else (REGISTER, _form(email))
    async with httpx.AsyncClient(transport=transport, base_url=origin) as http:
        started = time.perf_counter()
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"origin": origin},
        )
        elapsed = time.perf_counter() - started
    kind = response.json()["data"]["requestPasswordReset" if reset else "register"]["__typename"]
    if response.status_code != 200 or kind != "CheckYourMail":
        raise RuntimeError(f"register answered {response.status_code} {kind}")
    return elapsed


async def measure(
    settings: config.Settings, attempts: int, *, reset: bool = False
) -> dict[str, Any]:
    await db.migrate(settings.database_url)
    app = create_app(settings)
    taken_ms: list[float] = []
    free_ms: list[float] = []
    async with app.router.lifespan_context(app):
        emails = await _seed(attempts)
        # Warm up both paths (first connections, first key loads) before counting.
        await _timed(app, settings, str(FIRST_CLIENT), emails[0], reset)
        await _timed(app, settings, str(FIRST_CLIENT + 1), "warmup@example.com", reset)
        for index in range(attempts):
            ip = FIRST_CLIENT + 2 + 2 * index
            pair = [("taken", emails[index]), ("free", f"free{index}@example.com")]
            if index % 2:  # alternate which goes first, so neither always follows the other
                pair.reverse()
            for offset, (kind, email) in enumerate(pair):
                seconds = await _timed(app, settings, str(ip + offset), email, reset)
                (taken_ms if kind == "taken" else free_ms).append(seconds * 1000)
    taken, free = statistics.median(taken_ms), statistics.median(free_ms)
    return {
        "mutation": "requestPasswordReset" if reset else "register",
        "attempts": attempts,
        "taken_median_ms": round(taken, 2),
        "free_median_ms": round(free, 2),
        "ratio": round(max(taken, free) / min(taken, free), 3),
        "backend": "postgres" if settings.database_url.startswith("postgres") else "sqlite",
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    base = replace(config.from_environ(os.environ), redis_url=None, smtp_url=None)
    postgres_url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory() as scratch:
        settings = replace(base, audit_checkpoint_dir=Path(scratch) / "checkpoints")
        if postgres_url:
            url = await recreate_database(postgres_url, DATABASE)
            try:
                return await measure(
                    replace(settings, database_url=url), args.attempts, reset=args.reset
                )
            finally:
                await drop_database(postgres_url, DATABASE)
        url = f"sqlite://{Path(scratch) / 'registration.sqlite3'}"
        return await measure(replace(settings, database_url=url), args.attempts, reset=args.reset)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(_main(args))
    print(
        f"{result['mutation']}, taken address: median {result['taken_median_ms']:.1f} ms;"
        f" free address: median {result['free_median_ms']:.1f} ms;"
        f" ratio {result['ratio']:.3f} over {result['attempts']} attempts each",
        flush=True,
    )
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
