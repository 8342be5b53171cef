"""The load run: many clients opening tickets, replying and reading pages on two server processes.

``python -m bench.load_run [--clients 50] [--seconds 60] [--workers 2]`` (``make load``):

1. starts a Redis of its own on a free loopback port and creates a PostgreSQL database of its
   own (``ocis_load_<pid>``) in the cluster of ``--database-url`` (default ``DATABASE_URL``, else
   ``postgres://postgres@127.0.0.1:5432/postgres``), migrates it and signs in customers;
2. serves it with ``python server.py serve --workers N`` (production's shape: PostgreSQL, Redis,
   N processes on one port) and lets ``--clients`` closed-loop clients cycle through open a
   ticket, reply, read a page of tickets with their messages, reply, read, for ``--seconds``;
3. reports throughput, latency percentiles, errors by kind, and audit appends and retries and
   errors by code as ``/metrics`` (summed over the processes) counts them;
4. checks that every acknowledged write (a ``TicketSuccess`` or ``AddMessageSuccess``) is in the
   database exactly once, that no write of any kind is there twice, and that the audit trail
   verifies (what ``python server.py audit-verify`` checks); then drops the database and stops
   its Redis. The database is a copy of a template migrated once per set of migrations
   (``ocis_load_template_<digest>``, kept in the cluster for the next run).

The last line of output is one JSON object of the figures; the exit code is 1 when the
exactly-once check or the audit verification fails, or any request ended in a 5xx or an
INTERNAL_SERVER_ERROR.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from bench.servers import ROOT, free_port

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0
# Per-account limits of auth/rate_limit.py (tickets 30 an hour, replies 60 in 15 minutes): a
# client moves on to its next account before either would refuse it.
TICKETS_PER_ACCOUNT = 28
REPLIES_PER_ACCOUNT = 55
METRICS_TOKEN = secrets.token_hex(24)

CREATE = """mutation Open($subject: String!, $body: String!) {
  createTicket(input: {subject: $subject, body: $body}) {
    __typename
    ... on TicketSuccess { ticket { id } }
    ... on UserError { code }
  }
}"""
REPLY = """mutation Reply($ticket: ID!, $body: String!) {
  addMessage(input: {ticketId: $ticket, body: $body}) {
    __typename
    ... on AddMessageSuccess { message { id } }
    ... on UserError { code }
  }
}"""
PAGE = """query Page {
  tickets(first: 10) {
    edges { node { id subject status messages(first: 5) { edges { node { id body } } } } }
  }
}"""


@dataclass(slots=True)
class Account:
    token: str
    tickets: int = 0
    replies: int = 0


@dataclass(slots=True)
class Client:
    """One closed-loop client: its accounts (used in turn), and what the server acknowledged."""

    number: int
    accounts: list[Account]
    tickets: list[str] = field(default_factory=list)
    current: int = 0

    def account(self, kind: str) -> Account | None:
        """The account for a write of this kind: the current one until its limit is near."""
        limit = TICKETS_PER_ACCOUNT if kind == "create" else REPLIES_PER_ACCOUNT
        while self.current < len(self.accounts):
            account = self.accounts[self.current]
            if (account.tickets if kind == "create" else account.replies) < limit:
                return account
            self.current += 1
            self.tickets = []  # the next account replies to tickets of its own
        return None


@dataclass(slots=True)
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    # Marker -> the id the server answered with, for every acknowledged write.
    acknowledged_tickets: dict[str, str] = field(default_factory=dict)
    acknowledged_messages: dict[str, str] = field(default_factory=dict)
    # Markers of writes sent without an acknowledgement (an error, a timeout).
    unacknowledged: set[str] = field(default_factory=set)

    def add(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)


def _percentile_ms(values: list[float], percent: int) -> float:
    if not values:
        return 0.0
    if len(values) < 2:
        return round(values[0] * 1000, 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[percent - 1] * 1000, 1)


def _uuid_of(global_id: str) -> str:
    padded = global_id + "=" * (-len(global_id) % 4)
    return base64.urlsafe_b64decode(padded).decode().split(":", 1)[1]


async def _send(
    http: httpx.AsyncClient,
    account: Account,
    origin: str,
    kind: str,
    query: str,
    variables: dict[str, Any],
    tally: Tally,
) -> dict[str, Any] | None:
    """One GraphQL request; its latency and any error recorded; the data when it answered."""
    began = time.perf_counter()
    try:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"origin": origin, "cookie": f"ocis_session={account.token}"},
        )
    except httpx.TransportError as error:
        tally.errors[f"transport:{type(error).__name__}"] += 1
        return None
    finally:
        tally.add(kind, time.perf_counter() - began)
    if response.status_code != 200:
        code = ""
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            code = ":" + response.json()["errors"][0]["extensions"]["code"]
        tally.errors[f"http_{response.status_code}{code}"] += 1
        return None
    body = response.json()
    for problem in body.get("errors") or []:
        tally.errors[f"graphql:{(problem.get('extensions') or {}).get('code', 'UNCODED')}"] += 1
    data: dict[str, Any] | None = body.get("data")
    return data


async def _drive(client: Client, base: str, deadline: float, run: str, tally: Tally) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
        step = 0
        while time.perf_counter() < deadline:
            kind = ("create", "reply", "page", "reply", "page")[step % 5]
            step += 1
            account = client.account(kind)
            if kind == "reply" and not client.tickets:
                kind = "create"
                account = client.account(kind)
            if account is None:
                kind, account = "page", client.accounts[-1]
            marker = f"ld-{run}-{client.number}-{step}"
            if kind == "create":
                account.tickets += 1
                data = await _send(
                    http,
                    account,
                    base,
                    kind,
                    CREATE,
                    {"subject": f"subject {marker}", "body": f"body {marker}"},
                    tally,
                )
                result = (data or {}).get("createTicket") or {}
                if result.get("__typename") == "TicketSuccess":
                    ticket = result["ticket"]["id"]
                    tally.acknowledged_tickets[marker] = _uuid_of(ticket)
                    client.tickets.append(ticket)
                else:
                    tally.unacknowledged.add(marker)
                    if result:
                        tally.errors[f"payload:{result['__typename']}:{result.get('code')}"] += 1
            elif kind == "reply":
                account.replies += 1
                ticket = client.tickets[step % len(client.tickets)]
                data = await _send(
                    http,
                    account,
                    base,
                    kind,
                    REPLY,
                    {"ticket": ticket, "body": f"reply {marker}"},
                    tally,
                )
                result = (data or {}).get("addMessage") or {}
                if result.get("__typename") == "AddMessageSuccess":
                    tally.acknowledged_messages[marker] = _uuid_of(result["message"]["id"])
                else:
                    tally.unacknowledged.add(marker)
                    if result:
                        tally.errors[f"payload:{result['__typename']}:{result.get('code')}"] += 1
            else:
                data = await _send(http, account, base, kind, PAGE, {}, tally)
                if data is not None and data.get("tickets") is None:
                    tally.errors["page:no-tickets"] += 1


# --- the private PostgreSQL database and Redis ---------------------------------------------


def _database_urls(base: str) -> tuple[str, str]:
    """(the cluster's maintenance database, this run's own database) beside ``base``."""
    parts = urlsplit(base)
    own = urlunsplit(parts._replace(path=f"/ocis_load_{os.getpid()}", query=""))
    admin = urlunsplit(parts._replace(path="/postgres", query=""))
    return admin, own


def _asyncpg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _template_name() -> str:
    """The migrated template of this set of migrations: a change to any makes a new one."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "migrations").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"ocis_load_template_{digest.hexdigest()[:12]}"


async def _migrated_template(admin: str, base: str) -> str:
    """A database migrated once per set of migrations, which each run copies (fast) instead
    of migrating afresh; older templates are dropped."""
    from models import db

    name = _template_name()
    connection = await asyncpg.connect(_asyncpg_url(admin))
    try:
        # Two runs at once: one migrates, the other waits for it.
        await connection.execute("SELECT pg_advisory_lock(hashtext('ocis_load_template'))")
        present = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate", name
        )
        if not present:
            for (stale,) in await connection.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'ocis_load_template_%'"
            ):
                await connection.execute(f'ALTER DATABASE "{stale}" IS_TEMPLATE false')
                await connection.execute(f'DROP DATABASE "{stale}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{name}"')
            template_url = urlunsplit(urlsplit(base)._replace(path=f"/{name}", query=""))
            await db.migrate(template_url)
            await connection.execute(f'ALTER DATABASE "{name}" IS_TEMPLATE true')
    finally:
        await connection.close()
    return name


@contextlib.asynccontextmanager
async def private_database(base: str) -> AsyncIterator[str]:
    """This run's own database, migrated (a copy of the migrated template), dropped after."""
    admin, own = _database_urls(base)
    name = urlsplit(own).path.lstrip("/")
    template = await _migrated_template(admin, base)
    connection = await asyncpg.connect(_asyncpg_url(admin))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await connection.close()
    try:
        yield own
    finally:
        connection = await asyncpg.connect(_asyncpg_url(admin))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"the load run needs {name} on PATH")
    return path


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed command line
        [
            _program("redis-server"),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(  # noqa: S603 - a fixed command line
                [_program("redis-cli"), "-p", str(port), "ping"], capture_output=True, check=False
            ).stdout.strip()
            != b"PONG"
        ):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the load run's Redis did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- the project itself, in this process: migrate, accounts and sessions, the check ----------


async def _prepare(
    database_url: str, redis_url: str, master_key: bytes, accounts: int
) -> list[str]:
    """Create ``accounts`` customers and a session for each; return the tokens."""
    from redis.asyncio import Redis

    from auth.client_info import ClientInfo
    from auth.passwords import hash_password
    from auth.sessions import start_session
    from models import User, db
    from models.enums import Role

    await db.connect(database_url, master_key)
    store = Redis.from_url(redis_url)
    try:
        await db.load_keys()
        password = await hash_password(secrets.token_urlsafe(16))
        tokens = []
        for number in range(accounts):
            user = User(
                name=f"Load Customer {number}",
                password_hash=password,
                roles=[Role.CUSTOMER.value],
                date_of_birth="1990-01-01",
                email_verified_at=datetime.now(UTC),
            )
            user.set_email(f"load-{number}@load.example.com")
            await user.save()
            session = await start_session(store, user, ClientInfo(), 3600)
            tokens.append(session.token)
        return tokens
    finally:
        await store.aclose()
        await db.disconnect()


@dataclass(slots=True)
class Check:
    acknowledged: int = 0
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)
    unacknowledged_stored: int = 0

    @property
    def exactly_once(self) -> bool:
        return not (self.missing or self.duplicated or self.misplaced)


MARKER = re.compile(r"ld-[a-z]+-\d+-\d+")


async def _verify_audit(database_url: str, redis_url: str, master_key: bytes) -> str | None:
    """What `python server.py audit-verify` checks, in this process: None when intact."""
    from redis.asyncio import Redis

    import settings as config
    from models import db
    from privacy import audit_state, audit_verify

    await db.connect(database_url, master_key)
    store = Redis.from_url(redis_url, decode_responses=True)
    try:
        settings = config.Settings(
            database_url=database_url, redis_url=redis_url, master_key=master_key
        )
        audit_state.configure(settings, store)
        report = await audit_verify.verify_chain()
    finally:
        await store.aclose()
        await db.disconnect()
    if report.intact:
        return None
    return (
        f"broken at record {report.first_broken_seq}: {report.reason} ({report.checked} verified)"
    )


async def _check(database_url: str, master_key: bytes, tally: Tally) -> Check:
    """Every acknowledged write is in the database exactly once, under the id it was given."""
    from models import Ticket, TicketMessage, db

    await db.connect(database_url, master_key)
    try:
        await db.load_keys()
        tickets: dict[str, list[str]] = {}
        for ticket in await Ticket.all():
            for marker in MARKER.findall(ticket.subject or ""):
                tickets.setdefault(marker, []).append(str(ticket.id))
        messages: dict[str, list[str]] = {}
        opening: dict[str, list[str]] = {}
        for message in await TicketMessage.all():
            body = message.body or ""
            for marker in MARKER.findall(body):
                place = opening if body.startswith("body ") else messages
                place.setdefault(marker, []).append(str(message.id))
    finally:
        await db.disconnect()
    check = Check(acknowledged=len(tally.acknowledged_tickets) + len(tally.acknowledged_messages))
    for stored, acknowledged in (
        (tickets, tally.acknowledged_tickets),
        (messages, tally.acknowledged_messages),
    ):
        for marker, ident in acknowledged.items():
            rows = stored.get(marker, [])
            if not rows:
                check.missing.append(marker)
            elif len(rows) > 1:
                check.duplicated.append(marker)
            elif rows[0] != ident:
                check.misplaced.append(marker)
        for marker, rows in stored.items():
            if marker not in acknowledged and len(rows) > 1:
                check.duplicated.append(marker)
    for marker in tally.acknowledged_tickets:
        # A ticket's opening message is written with it, once.
        if len(opening.get(marker, [])) != 1:
            check.duplicated.append(f"{marker} (opening message)")
    check.unacknowledged_stored = sum(
        1 for marker in tally.unacknowledged if marker in tickets or marker in messages
    )
    return check


# --- the server processes ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(environment: dict[str, str], workers: int, log: Path) -> AsyncIterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "server.py",
            "serve",
            "--workers",
            str(workers),
            cwd=ROOT,
            env={**environment, "PORT": str(port), "PUBLIC_URL": base},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=base, timeout=2) as probe:
            ready = 0
            # Ready: several answers in a row, so that every worker is likely up.
            while ready < 3 * workers:
                if process.returncode is not None or time.monotonic() > deadline:
                    written = await asyncio.to_thread(log.read_text)
                    raise RuntimeError("the server did not start:\n" + written[-4000:])
                try:
                    ready = ready + 1 if (await probe.get("/readyz")).status_code == 200 else 0
                except httpx.TransportError:
                    ready = 0
                await asyncio.sleep(0.2)
        yield base
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()


def _metric_sums(text: str) -> dict[str, dict[str, float]]:
    """Sample name -> label set -> value, from the Prometheus text format."""
    sums: dict[str, dict[str, float]] = {}
    sample = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$")
    for line in text.splitlines():
        matched = sample.match(line)
        if matched:
            name, labels, value = matched.groups()
            labelled = sums.setdefault(name, {})
            labelled[labels or ""] = labelled.get(labels or "", 0.0) + float(value)
    return sums


def _label(labels: str, name: str) -> str:
    matched = re.search(rf'{name}="([^"]*)"', labels)
    return matched.group(1) if matched else ""


async def run(args: argparse.Namespace) -> dict[str, Any]:
    master_key = secrets.token_bytes(32)
    run_id = "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
    with private_redis() as redis_url, tempfile.TemporaryDirectory() as scratch:
        async with private_database(args.database_url) as database_url:
            tokens = await _prepare(
                database_url, redis_url, master_key, args.clients * args.accounts_per_client
            )
            environment = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("OCIS_", "OIDC_", "DATABASE_URL", "REDIS_URL", "SMTP_"))
                and key not in ("HOST", "PORT", "PUBLIC_URL", "PROMETHEUS_MULTIPROC_DIR")
            }
            environment |= {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "OCIS_MASTER_KEY": base64.b64encode(master_key).decode(),
                "OCIS_METRICS_TOKEN": METRICS_TOKEN,
                "OCIS_RUN_JOBS_IN_SERVER": "false",
                "OCIS_DB_POOL_SIZE": str(args.pool_size),
                "OCIS_METRICS_DIR": str(Path(scratch) / "metrics"),
                "HOST": "127.0.0.1",
                "PYTHONUNBUFFERED": "1",
            }
            clients = [
                Client(
                    number,
                    [
                        Account(token)
                        for token in tokens[
                            number * args.accounts_per_client : (number + 1)
                            * args.accounts_per_client
                        ]
                    ],
                )
                for number in range(args.clients)
            ]
            tally = Tally()
            log = Path(scratch) / "serve.log"
            async with serving(environment, args.workers, log) as base:
                began = time.perf_counter()
                deadline = began + args.seconds
                await asyncio.gather(
                    *(_drive(client, base, deadline, run_id, tally) for client in clients)
                )
                elapsed = time.perf_counter() - began
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    exposed = await http.get(
                        "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}
                    )
                    exposed.raise_for_status()
            metrics = _metric_sums(exposed.text)
            tracebacks = log.read_text().count('"error":')
            check = await _check(database_url, master_key, tally)
            broken = await _verify_audit(database_url, redis_url, master_key)
    everything = [value for values in tally.latencies.values() for value in values]
    server_errors = {
        _label(labels, "code"): int(value)
        for labels, value in metrics.get("ocis_graphql_errors_total", {}).items()
        if value
    }
    statuses: Counter[str] = Counter()
    for labels, value in metrics.get("ocis_requests_total", {}).items():
        statuses[_label(labels, "status")] += int(value)
    internal = sum(
        count
        for kind, count in tally.errors.items()
        if kind.startswith("http_5") or "INTERNAL_SERVER_ERROR" in kind
    )
    return {
        "clients": args.clients,
        "workers": args.workers,
        "seconds": round(elapsed, 1),
        "requests": len(everything),
        "rps": round(len(everything) / elapsed, 1),
        "p50_ms": _percentile_ms(everything, 50),
        "p99_ms": _percentile_ms(everything, 99),
        "p99_ms_by_kind": {
            kind: _percentile_ms(values, 99) for kind, values in sorted(tally.latencies.items())
        },
        "requests_by_kind": {kind: len(values) for kind, values in sorted(tally.latencies.items())},
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(sorted(tally.errors.items())),
        "internal_errors": internal,
        "server_error_codes": server_errors,
        "server_statuses": dict(sorted(statuses.items())),
        "server_logged_exceptions": tracebacks,
        "audit_appends": int(sum(metrics.get("ocis_audit_appends_total", {}).values())),
        "audit_retries": int(sum(metrics.get("ocis_audit_append_retries_total", {}).values())),
        "acknowledged_writes": check.acknowledged,
        "exactly_once": check.exactly_once,
        "missing": len(check.missing),
        "duplicated": len(check.duplicated),
        "misplaced": len(check.misplaced),
        "unacknowledged_writes": len(tally.unacknowledged),
        "unacknowledged_stored": check.unacknowledged_stored,
        "audit_verified": broken is None,
        "audit_broken": broken,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_run", description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--pool-size", type=int, default=10, help="OCIS_DB_POOL_SIZE of each server process"
    )
    parser.add_argument(
        "--accounts-per-client",
        type=int,
        default=6,
        help="customers each client signs in as in turn (each within the per-account limits)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres",
        help="any database of the PostgreSQL cluster to create the run's own database in",
    )
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args))
    print(json.dumps(figures, separators=(",", ":")), flush=True)  # noqa: T201
    passed = (
        figures["exactly_once"] and figures["audit_verified"] and figures["internal_errors"] == 0
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
