"""A hand-written endpoint for the benchmark query: the same rows, driver and keys, no ORM.

It answers one query only, for one configured caller,

    { tickets(first: 50) { edges { node { id subject status requester { name email }
      messages(first: 10) { edges { node { body } } } } } } }

and returns the bytes OCIS's GraphQL endpoint returns for it: the same scoping
(``auth.scoping.readable_tickets``), order (newest first, then oldest message first), the
same need-to-know rules (``auth.policy``), the same data keys (``data_keys``, unwrapped with
the same ``Keyring``) and the same JSON encoding.

Authentication: the caller's account id comes from configuration (``BENCH_AGENT_ID``), not
from a session cookie, because without ``REDIS_URL`` OCIS keeps its sessions inside its own
process where no other process can look them up. Like OCIS resolving a session, every
request still loads the caller's roles and team from ``users``.

Reading rows is one function, ``fetch_page``, over a ``Fetch`` callable, so the test suite
can feed the same SQL through Tortoise's connection on SQLite as well as PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import settings as config
from auth.policy import Relation, contact_need_to_know, display_name
from auth.principal import Principal, parse_roles
from auth.scopes import STAFF_ROLES, Scope
from auth.scoping import QUEUE_STATUSES
from models import crypto
from models.crypto import DataCipher, Keyring
from models.enums import TicketStatus
from models.fields import associated_data

Row = Mapping[str, Any]
Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Row]]]

TICKETS_FIRST = 50
MESSAGES_FIRST = 10
POOL_MAX_SIZE = 5  # Tortoise's default pool size for asyncpg, so both sides get as many
_STAFF = frozenset(role.value for role in STAFF_ROLES)
_QUEUE = ", ".join(f"'{status.value}'" for status in QUEUE_STATUSES)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How parameters are written: asyncpg numbers them, sqlite3 does not."""

    name: str
    numbered: bool

    def param(self, position: int) -> str:
        return f"${position}" if self.numbered else "?"

    def key(self, ident: UUID) -> object:
        return ident if self.numbered else str(ident)


POSTGRES = Dialect("postgres", numbered=True)
SQLITE = Dialect("sqlite", numbered=False)


class _Params:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.values: list[object] = []

    def __call__(self, value: object) -> str:
        self.values.append(value)
        return self.dialect.param(len(self.values))

    def many(self, values: Sequence[object]) -> str:
        return ", ".join(self(value) for value in values)


class UnsupportedCaller(Exception):
    """The caller would get a FORBIDDEN error from OCIS; this endpoint only renders data."""


@dataclass(frozen=True, slots=True)
class TicketPage:
    principal: Principal
    tickets: Sequence[Row]
    requesters: dict[str, Row] = field(default_factory=dict)
    messages: dict[str, list[Row]] = field(default_factory=dict)
    messages_first: int = MESSAGES_FIRST


def _ticket_scope(principal: Principal, params: _Params) -> str:
    """The WHERE clause of ``auth.scoping.readable_tickets``, written by hand."""
    me = principal.user_id
    if me is None:
        return "1 = 0"
    if principal.has(Scope.TICKETS_ALL):
        return "1 = 1"
    team = principal.team_id
    clauses = []
    if principal.has(Scope.TICKETS_OWN):
        clauses.append(f"requester_id = {params(params.dialect.key(me))}")
    if principal.has(Scope.TICKETS_WORK):
        clauses.append(f"assignee_id = {params(params.dialect.key(me))}")
        if team is not None:
            team_key = params(params.dialect.key(team))
            clauses.append(f"(team_id = {team_key} AND status IN ({_QUEUE}))")
    if principal.has(Scope.TICKETS_TEAM) and team is not None:
        clauses.append(f"team_id = {params(params.dialect.key(team))}")
    return " OR ".join(clauses) if clauses else "1 = 0"


async def fetch_page(
    fetch: Fetch,
    dialect: Dialect,
    caller_id: UUID,
    *,
    first: int = TICKETS_FIRST,
    messages_first: int = MESSAGES_FIRST,
) -> TicketPage | None:
    """Every row the benchmark query needs, in four statements; None for an unknown caller."""
    params = _Params(dialect)
    callers = await fetch(
        f"SELECT roles, team_id FROM users WHERE id = {params(dialect.key(caller_id))}"  # noqa: S608 - placeholders only
        " AND status <> 'erased'",
        params.values,
    )
    if not callers:
        return None
    team = callers[0]["team_id"]
    principal = Principal.for_user(
        caller_id,
        parse_roles(json.loads(callers[0]["roles"])),
        UUID(str(team)) if team is not None else None,
    )

    params = _Params(dialect)
    scope = _ticket_scope(principal, params)
    tickets = await fetch(
        "SELECT id, subject, status, requester_id, assignee_id, team_id FROM tickets"  # noqa: S608 - placeholders only
        f" WHERE {scope} ORDER BY created_at DESC, id DESC LIMIT {params(first)}",
        params.values,
    )
    if not tickets:
        return TicketPage(principal, tickets, messages_first=messages_first)

    requester_ids = list(
        {UUID(str(t["requester_id"])) for t in tickets if t["requester_id"] is not None}
    )
    requesters: dict[str, Row] = {}
    if requester_ids:
        params = _Params(dialect)
        keys = params.many([dialect.key(ident) for ident in requester_ids])
        rows = await fetch(
            f"SELECT id, name, email, roles FROM users WHERE id IN ({keys})",  # noqa: S608 - placeholders only
            params.values,
        )
        requesters = {str(row["id"]): row for row in rows}

    params = _Params(dialect)
    keys = params.many([dialect.key(UUID(str(t["id"]))) for t in tickets])
    hidden = "" if principal.has(Scope.NOTES_INTERNAL) else " AND internal = FALSE"
    rows = await fetch(
        f"SELECT id, ticket_id, body FROM ticket_messages WHERE ticket_id IN ({keys}){hidden}"  # noqa: S608 - placeholders only
        " ORDER BY created_at, id",
        params.values,
    )
    threads: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        threads[str(row["ticket_id"])].append(row)
    return TicketPage(principal, tickets, requesters, dict(threads), messages_first)


def global_id(type_name: str, ident: str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{ident}".encode()).decode().rstrip("=")


def _works(principal: Principal, ticket: Row) -> bool:
    if ticket["assignee_id"] is not None and str(ticket["assignee_id"]) == str(principal.user_id):
        return True
    team = principal.team_id
    return (
        team is not None
        and ticket["team_id"] is not None
        and str(ticket["team_id"]) == str(team)
        and ticket["status"] in QUEUE_STATUSES
    )


class DataKeys:
    """The data keys ciphertexts name, read from ``data_keys`` and unwrapped once per process.

    OCIS keeps unwrapped keys in a process cache too (``models.keys``), so both sides pay for
    unwrapping once, not per request.
    """

    def __init__(self, ring: Keyring) -> None:
        self.ring = ring
        self.ciphers: dict[str, DataCipher] = {}

    async def load(self, fetch: Fetch, dialect: Dialect, page: TicketPage) -> None:
        sealed = [ticket["subject"] for ticket in page.tickets]
        for person in page.requesters.values():
            sealed += [person["name"], person["email"]]
        for thread in page.messages.values():
            sealed += [message["body"] for message in thread[: page.messages_first]]
        missing = sorted(
            {crypto.key_id_of(value) for value in sealed if value is not None} - self.ciphers.keys()
        )
        if not missing:
            return
        params = _Params(dialect)
        rows = await fetch(
            "SELECT id, subject_id, wrapped_key, kek_id FROM data_keys"  # noqa: S608 - placeholders only
            f" WHERE id IN ({params.many(missing)}) AND purpose = 'data'",
            params.values,
        )
        for row in rows:
            self.ciphers[row["id"]] = self.ring.open_data_key(
                row["id"], UUID(str(row["subject_id"])), row["wrapped_key"], row["kek_id"]
            )

    def open(self, ciphertext: str, associated_data: str) -> str:
        return self.ciphers[crypto.key_id_of(ciphertext)].open(ciphertext, associated_data)


def render(page: TicketPage, ring: DataKeys) -> bytes:
    """The GraphQL response body, byte for byte (orjson, as schema/view.py encodes it)."""
    principal = page.principal
    me = str(principal.user_id)
    worked = {
        str(ticket["requester_id"])
        for ticket in page.tickets
        if ticket["requester_id"] is not None and _works(principal, ticket)
    }
    edges = []
    for ticket in page.tickets:
        ticket_id = str(ticket["id"])
        requester: dict[str, str] | None = None
        person = page.requesters.get(str(ticket["requester_id"]))
        if person is not None:
            person_id = str(person["id"])
            relation = Relation(
                is_self=person_id == me,
                subject_is_staff=bool(_STAFF.intersection(json.loads(person["roles"]))),
                works_their_ticket=person_id in worked,
            )
            if not (
                display_name(principal, relation) and contact_need_to_know(principal, relation)
            ):
                raise UnsupportedCaller("OCIS would answer FORBIDDEN for this requester")
            requester = {
                "name": ring.open(person["name"], associated_data("users", "name", person_id)),
                "email": ring.open(person["email"], associated_data("users", "email", person_id)),
            }
        thread = page.messages.get(ticket_id, [])[: page.messages_first]
        edges.append(
            {
                "node": {
                    "id": global_id("Ticket", ticket_id),
                    "subject": ring.open(
                        ticket["subject"], associated_data("tickets", "subject", ticket_id)
                    ),
                    "status": TicketStatus(ticket["status"]).name,
                    "requester": requester,
                    "messages": {
                        "edges": [
                            {
                                "node": {
                                    "body": ring.open(
                                        message["body"],
                                        associated_data("ticket_messages", "body", message["id"]),
                                    )
                                }
                            }
                            for message in thread
                        ]
                    },
                }
            }
        )
    return orjson.dumps({"data": {"tickets": {"edges": edges}}})


@dataclass(frozen=True, slots=True)
class RawConfig:
    database_url: str
    master_key: bytes
    caller_id: UUID
    first: int = TICKETS_FIRST
    messages_first: int = MESSAGES_FIRST

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RawConfig:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env["BENCH_DATABASE_URL"],
            master_key=config.from_environ(env).master_key,
            caller_id=UUID(env["BENCH_AGENT_ID"]),
        )


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgres://", "postgresql://", 1)


def create_app(
    raw: RawConfig | None = None, *, fetch: Fetch | None = None, dialect: Dialect = POSTGRES
) -> Starlette:
    """The raw endpoint at POST /graphql; with no ``fetch`` it opens its own asyncpg pool."""
    raw = raw or RawConfig.from_environ()
    ring = DataKeys(Keyring.from_master_key(raw.master_key))
    state: dict[str, Fetch] = {"fetch": fetch} if fetch is not None else {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if fetch is not None:
            yield
            return
        pool = await asyncpg.create_pool(
            asyncpg_dsn(raw.database_url), min_size=1, max_size=POOL_MAX_SIZE
        )

        async def pooled(sql: str, values: Sequence[Any]) -> Sequence[Row]:
            rows: Sequence[Row] = await pool.fetch(sql, *values)
            return rows

        state["fetch"] = pooled
        try:
            yield
        finally:
            await pool.close()

    async def tickets(request: Request) -> Response:
        await request.body()
        page = await fetch_page(
            state["fetch"],
            dialect,
            raw.caller_id,
            first=raw.first,
            messages_first=raw.messages_first,
        )
        if page is None:
            return JSONResponse({"error": "The configured caller does not exist."}, 401)
        await ring.load(state["fetch"], dialect, page)
        return Response(render(page, ring), media_type="application/json")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/graphql", tickets, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
