"""`make bench`: OCIS's GraphQL endpoint against a hand-written one, side by side.

Seeds a dedicated database, serves OCIS and ``bench.raw_app`` from uvicorn subprocesses,
checks both answer the benchmark query with the same JSON, loads them in alternating rounds
and ends with one JSON line (ratio, rps, raw_rps, p50_ms, p99_ms, statements_per_request...).
`python -m bench registration-timing` compares `register` for taken and free addresses instead
(bench/registration_timing.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

import settings as config
from auth.passwords import hash_password
from bench import QUERY
from bench.dataset import (
    AGENT_EMAIL,
    AGENT_PASSWORD,
    BENCH_DATABASE,
    Dataset,
    Sizes,
    copy_into,
    drop_database,
    generate,
    readable_assigned,
    recreate_database,
)
from bench.inprocess import BenchError, count_statements, graphql_headers, sign_in
from bench.load import Tally, Target, run_round
from bench.raw_app import MESSAGES_FIRST, TICKETS_FIRST, asyncpg_dsn
from bench.servers import cpu_seconds, free_port, server_env, uvicorn_server
from models import db
from models.crypto import Keyring
from resolvers.documents import document_hash

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
COOKIE = "ocis_session"  # plain-http PUBLIC_URL, so not the __Host- name
UNLIMITED_BUDGET = str(10**12)
# The bench database's audit checkpoints: its own, never `make run`'s var/audit-checkpoints,
# against which `audit-verify` would read the local database as truncated.
CHECKPOINTS = config.ROOT / "var" / "bench" / "audit-checkpoints"


def say(line: str = "") -> None:
    print(line, flush=True)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=_env_number("BENCH_SECONDS", 5.0))
    parser.add_argument("--rounds", type=int, default=int(_env_number("BENCH_ROUNDS", 3)))
    parser.add_argument("--warmup", type=float, default=_env_number("BENCH_WARMUP", 2.0))
    parser.add_argument(
        "--concurrency", type=int, default=int(_env_number("BENCH_CONCURRENCY", 20))
    )
    parser.add_argument(
        "--max-requests", type=int, default=50_000, help="per target and round (default 50000)"
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DATABASE} database")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.concurrency < 1 or args.max_requests < 1:
        parser.error("--seconds, --rounds, --concurrency and --max-requests must be positive")
    return args


async def seed(database_url: str, ring: Keyring, args: argparse.Namespace) -> Dataset:
    began = time.perf_counter()
    await db.migrate(database_url)
    migrated = time.perf_counter()
    sizes = Sizes(users=args.users, agents=args.agents, tickets=args.tickets)
    data = generate(
        ring, await hash_password(AGENT_PASSWORD), sizes, seed=args.seed, now=datetime.now(UTC)
    )
    generated = time.perf_counter()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await copy_into(connection, data)
        await connection.execute("ANALYZE")
        assigned = await readable_assigned(connection, data.agent_id)
    finally:
        await connection.close()
    done = time.perf_counter()
    messages = len(data.table("ticket_messages").records)
    say(
        f"seeded {sizes.users} users ({sizes.agents} agents in one team), {sizes.tickets} tickets,"
        f" {messages} messages in {done - began:.1f} s (migrate {migrated - began:.1f} s,"
        f" generate and seal {generated - migrated:.1f} s, COPY {done - generated:.1f} s)"
    )
    if assigned < TICKETS_FIRST:
        raise BenchError(
            f"the benchmark agent has {assigned} assigned tickets with a requester;"
            f" {TICKETS_FIRST} are needed (use more --tickets)"
        )
    say(f"benchmark agent {AGENT_EMAIL}: {assigned} assigned tickets with a requester")
    return data


def verify(ocis: bytes, raw: bytes, in_process: bytes) -> int:
    """Both bodies must be the same non-empty page; returns the number of messages in it."""
    answer = json.loads(ocis)
    if "errors" in answer:
        codes = sorted({str(e.get("extensions", {}).get("code")) for e in answer["errors"]})
        raise BenchError(f"OCIS answered the benchmark query with errors: {codes}")
    edges = answer["data"]["tickets"]["edges"]
    if len(edges) != TICKETS_FIRST:
        raise BenchError(f"OCIS returned {len(edges)} tickets, expected {TICKETS_FIRST}")
    if json.loads(in_process) != answer:
        raise BenchError("the in-process app and the served app answered differently")
    raw_answer = json.loads(raw)
    if raw_answer != answer:
        raw_edges = raw_answer.get("data", {}).get("tickets", {}).get("edges", [])
        where = next(
            (i for i, (a, b) in enumerate(zip(edges, raw_edges, strict=False)) if a != b),
            min(len(edges), len(raw_edges)),
        )
        raise BenchError(
            f"the raw endpoint's JSON differs from OCIS's (first difference at edge {where};"
            f" {len(raw_edges)} raw edges): the comparison would be meaningless"
        )
    messages = sum(len(edge["node"]["messages"]["edges"]) for edge in edges)
    if messages == 0:
        raise BenchError("the page has no messages; the data set is not what it should be")
    say(
        f"verified: both bodies are equal ({TICKETS_FIRST} tickets, {messages} messages,"
        f" {len(ocis)} bytes; byte-identical: {ocis == raw})"
    )
    return messages


def _distinct_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


async def measure(
    args: argparse.Namespace,
    database_url: str,
    master_key: bytes,
    data: Dataset,
) -> dict[str, Any]:
    text_body = json.dumps({"query": QUERY}).encode()
    # The same page as a registered document: its hash alone (Apollo's persisted query),
    # registered by the first request, which sends the text beside the hash.
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": document_hash(QUERY)}}
    register_body = json.dumps({"query": QUERY, "extensions": persisted}).encode()
    request_body = json.dumps({"extensions": persisted}).encode()
    redis_url = os.environ.get("REDIS_URL") or None
    ocis_port, raw_port, quiet_port = _distinct_ports(3)
    origin = f"http://127.0.0.1:{ocis_port}"
    in_process = await count_statements(
        config.Settings(
            env="development",
            database_url=database_url,
            redis_url=redis_url,
            public_url=origin,
            master_key=master_key,
            audit_checkpoint_dir=CHECKPOINTS,
        ),
        AGENT_EMAIL,
        AGENT_PASSWORD,
        [register_body, request_body, text_body],
    )
    statements, text_statements = (len(counted) for counted in in_process.statements[1:])
    for name, counted in (
        ("the registered document", in_process.statements[1]),
        ("the text", in_process.statements[2]),
    ):
        say(f"SQL statements for one request of {name} (in-process, counted): {len(counted)}")
        for number, statement in enumerate(counted, 1):
            say(f"  {number}. {' '.join(statement.split())[:110]}")

    key = base64.b64encode(master_key).decode()
    ocis_env = server_env(
        {
            "DATABASE_URL": database_url,
            "OCIS_ENV": "development",
            "OCIS_MASTER_KEY": key,
            "PUBLIC_URL": origin,
            "OCIS_AUDIT_CHECKPOINT_DIR": str(CHECKPOINTS),
            # One agent sends every request here: the per-caller budget would measure itself.
            "OCIS_COST_BUDGET_PER_MINUTE": UNLIMITED_BUDGET,
        }
    )
    # The same app with the read audit off, to show what the audit costs.
    quiet_env = server_env(
        {
            "DATABASE_URL": database_url,
            "OCIS_ENV": "development",
            "OCIS_MASTER_KEY": key,
            "PUBLIC_URL": origin,
            "OCIS_AUDIT_CHECKPOINT_DIR": str(CHECKPOINTS),
            "OCIS_AUDIT_READS": "false",
            "OCIS_COST_BUDGET_PER_MINUTE": UNLIMITED_BUDGET,
        }
    )
    raw_env = server_env(
        {
            "BENCH_DATABASE_URL": database_url,
            "OCIS_MASTER_KEY": key,
            "BENCH_AGENT_ID": str(data.agent_id),
        }
    )
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    pids: dict[str, int] = {}
    async with (
        uvicorn_server("OCIS", "server:serving_app", ocis_port, ocis_env, pids) as ocis_url,
        uvicorn_server("raw", "bench.raw_app:create_app", raw_port, raw_env, pids) as raw_url,
        uvicorn_server("no-audit", "server:serving_app", quiet_port, quiet_env, pids) as quiet_url,
        httpx.AsyncClient(base_url=ocis_url, limits=limits, timeout=30.0) as ocis_client,
        httpx.AsyncClient(base_url=raw_url, limits=limits, timeout=30.0) as raw_client,
        httpx.AsyncClient(base_url=quiet_url, limits=limits, timeout=30.0) as quiet_client,
    ):
        say(f"serving OCIS at {ocis_url} and the raw endpoint at {raw_url} (uvicorn, 1 worker)")
        token = await sign_in(ocis_client, COOKIE, AGENT_EMAIL, AGENT_PASSWORD, origin)
        headers = graphql_headers(COOKIE, token, origin)
        quiet_token = await sign_in(quiet_client, COOKIE, AGENT_EMAIL, AGENT_PASSWORD, origin)
        quiet_headers = graphql_headers(COOKIE, quiet_token, origin)
        for client, client_headers in ((ocis_client, headers), (quiet_client, quiet_headers)):
            registered = await client.post(
                "/graphql", content=register_body, headers=client_headers
            )
            if registered.status_code != 200:
                raise BenchError(f"registering the page answered {registered.status_code}")
        ocis_first = await ocis_client.post("/graphql", content=request_body, headers=headers)
        text_first = await ocis_client.post("/graphql", content=text_body, headers=headers)
        raw_first = await raw_client.post("/graphql", content=text_body, headers=headers)
        quiet_first = await quiet_client.post(
            "/graphql", content=request_body, headers=quiet_headers
        )
        for name, response in (
            ("OCIS", ocis_first),
            ("OCIS (text)", text_first),
            ("raw", raw_first),
            ("no-audit", quiet_first),
        ):
            if response.status_code != 200:
                raise BenchError(f"{name} answered {response.status_code}: {response.text[:300]}")
        verify(ocis_first.content, raw_first.content, in_process.bodies[1])
        if text_first.content != ocis_first.content or in_process.bodies[2] != ocis_first.content:
            raise BenchError("the page sent as text answered differently from its hash")
        if quiet_first.content != ocis_first.content:
            raise BenchError("OCIS with the read audit off answered differently")

        targets = [
            Target("OCIS", ocis_client, request_body, headers, ocis_first.content),
            Target("text", ocis_client, text_body, headers, text_first.content),
            Target("raw", raw_client, text_body, headers, raw_first.content),
            Target("no-audit", quiet_client, request_body, quiet_headers, quiet_first.content),
        ]
        server_of = {"OCIS": "OCIS", "text": "OCIS", "raw": "raw", "no-audit": "no-audit"}
        say(
            f"load: {args.concurrency} concurrent requests, warm-up {args.warmup:.1f} s each,"
            f" then {args.rounds} alternating rounds of {args.seconds:.1f} s per target"
        )
        for target in targets:
            await run_round(
                target,
                concurrency=args.concurrency,
                seconds=args.warmup,
                max_requests=args.max_requests,
                tally=None,
            )
        tallies = {target.name: Tally() for target in targets}
        for number in range(args.rounds):
            shift = number % len(targets)
            for target in targets[shift:] + targets[:shift]:
                tally = tallies[target.name]
                count, elapsed = len(tally.latencies), tally.elapsed
                cpu = cpu_seconds(pids[server_of[target.name]])
                await run_round(
                    target,
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    max_requests=args.max_requests,
                    tally=tally,
                )
                count, elapsed = len(tally.latencies) - count, tally.elapsed - elapsed
                tally.cpu_s += cpu_seconds(pids[server_of[target.name]]) - cpu
                say(
                    f"  round {number + 1} {target.name:8}: {count:6d} requests in"
                    f" {elapsed:4.1f} s = {count / elapsed:7.1f} req/s"
                )
    failures = {name: tally.failures for name, tally in tallies.items() if tally.failures}
    if failures:
        raise BenchError(f"answers that were not 200 with the verified body: {failures}")
    ocis, text, raw, quiet = (tallies[name] for name in ("OCIS", "text", "raw", "no-audit"))
    return {
        "ratio": round(ocis.rps / raw.rps, 4),
        "text_ratio": round(text.rps / raw.rps, 4),
        "text_rps": round(text.rps, 1),
        "text_p50_ms": round(text.percentile_ms(50), 2),
        "text_p99_ms": round(text.percentile_ms(99), 2),
        "text_statements_per_request": text_statements,
        "cpu_ms_per_request": round(ocis.cpu_ms_per_request, 2),
        "text_cpu_ms_per_request": round(text.cpu_ms_per_request, 2),
        "raw_cpu_ms_per_request": round(raw.cpu_ms_per_request, 2),
        "p99_over_raw_p99": round(ocis.percentile_ms(99) / raw.percentile_ms(99), 2),
        "audit_off_rps": round(quiet.rps, 1),
        "audit_off_p50_ms": round(quiet.percentile_ms(50), 2),
        "audit_throughput_share": round(ocis.rps / quiet.rps, 4),
        "rps": round(ocis.rps, 1),
        "raw_rps": round(raw.rps, 1),
        "p50_ms": round(ocis.percentile_ms(50), 2),
        "p99_ms": round(ocis.percentile_ms(99), 2),
        "raw_p50_ms": round(raw.percentile_ms(50), 2),
        "raw_p99_ms": round(raw.percentile_ms(99), 2),
        "statements_per_request": statements,
        "concurrency": args.concurrency,
        "duration_s": round(args.rounds * args.seconds, 1),
        "rounds": args.rounds,
        "requests": len(ocis.latencies),
        "text_requests": len(text.latencies),
        "raw_requests": len(raw.latencies),
        "response_bytes": len(ocis_first.content),
        "tickets": data.sizes.tickets,
        "users": data.sizes.users,
        "messages": len(data.table("ticket_messages").records),
        "page": {"tickets": TICKETS_FIRST, "messages": MESSAGES_FIRST},
    }


def _master_key() -> bytes:
    """OCIS_MASTER_KEY when set (to reuse a kept database), else a fresh random key."""
    raw = os.environ.get("OCIS_MASTER_KEY")
    if not raw:
        return os.urandom(32)
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError as error:
        raise BenchError("OCIS_MASTER_KEY must be 32 bytes, base64-encoded") from error
    if len(key) != 32:
        raise BenchError("OCIS_MASTER_KEY must be 32 bytes, base64-encoded")
    return key


async def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    base = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if urlsplit(base).scheme not in ("postgres", "postgresql"):
        raise BenchError(f"make bench needs PostgreSQL; DATABASE_URL is {urlsplit(base).scheme}:")
    master_key = _master_key()
    ring = Keyring.from_master_key(master_key)
    where = urlsplit(base)
    say(f"OCIS benchmark: PostgreSQL at {where.hostname}:{where.port or 5432}")
    say(f"database {BENCH_DATABASE}: dropped if present, created, migrated, seeded")
    database_url = await recreate_database(base)
    # A new database: the checkpoints of the one it replaced name records it never had.
    shutil.rmtree(CHECKPOINTS, ignore_errors=True)
    try:
        data = await seed(database_url, ring, args)
        result = await measure(args, database_url, master_key, data)
    finally:
        if args.keep:
            key = base64.b64encode(master_key).decode()
            say(f"kept database {BENCH_DATABASE} (--keep); its OCIS_MASTER_KEY is {key}")
        else:
            await drop_database(base)
            shutil.rmtree(CHECKPOINTS, ignore_errors=True)
            say(f"dropped database {BENCH_DATABASE}")
    result["total_s"] = round(time.perf_counter() - began, 1)
    return result


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(args)


def report(result: dict[str, Any]) -> None:
    say()
    say(
        f"registered   : {result['rps']:8.1f} req/s   p50 {result['p50_ms']:7.2f} ms"
        f"   p99 {result['p99_ms']:7.2f} ms   CPU {result['cpu_ms_per_request']:6.2f} ms/req"
        f"   {result['statements_per_request']} statements   ({result['requests']} requests,"
        " the page by its hash: the compiled plan)"
    )
    say(
        f"text         : {result['text_rps']:8.1f} req/s   p50 {result['text_p50_ms']:7.2f} ms"
        f"   p99 {result['text_p99_ms']:7.2f} ms   CPU {result['text_cpu_ms_per_request']:6.2f}"
        f" ms/req   {result['text_statements_per_request']} statements"
        f"   ({result['text_requests']} requests, the page as text: Strawberry)"
    )
    say(
        f"raw endpoint : {result['raw_rps']:8.1f} req/s   p50 {result['raw_p50_ms']:7.2f} ms"
        f"   p99 {result['raw_p99_ms']:7.2f} ms   CPU {result['raw_cpu_ms_per_request']:6.2f}"
        f" ms/req   ({result['raw_requests']} requests)"
    )
    say(
        f"audit off    : {result['audit_off_rps']:8.1f} req/s   p50"
        f" {result['audit_off_p50_ms']:7.2f} ms   (same app, OCIS_AUDIT_READS=false)"
    )
    say(f"ratio        : {result['ratio']:.3f} (registered document / raw throughput)")
    say(f"text ratio   : {result['text_ratio']:.3f} (the page as text / raw throughput)")
    say(f"p99          : {result['p99_over_raw_p99']:.2f} times the raw endpoint's")
    say(f"audit        : {result['audit_throughput_share']:.3f} (throughput with / without it)")
    say(f"total        : {result['total_s']:.1f} s (load generator shares the machine)")
    say(json.dumps(result, separators=(",", ":")))


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["registration-timing"]:
        from bench import registration_timing

        return registration_timing.main(given[1:])
    args = parse_args(given)
    try:
        result = asyncio.run(_main(args))
    except BenchError as error:
        print(f"benchmark aborted: {error}", file=sys.stderr, flush=True)
        return 1
    except asyncio.CancelledError:
        print("benchmark stopped", file=sys.stderr, flush=True)
        return 143
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
