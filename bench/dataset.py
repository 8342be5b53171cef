"""The benchmark data set: realistic rows, sealed with the real keyring, bulk-copied.

Rows are what the ORM writes (``models/users.py``, ``models/tickets.py``, ``models/keys.py``):
UUID keys, enums as their values, roles as a compact JSON list, personal data sealed under the
data key of the row's subject (``Entity.key_subject``) with ``associated_data(table, column,
pk)``, those data keys wrapped by the keyring's master key in ``data_keys``, emails indexed by
``Keyring.blind_index``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid5

import asyncpg

from bench.raw_app import asyncpg_dsn
from models.crypto import DataCipher, KeyPurpose, Keyring
from models.enums import Channel, Role, TicketPriority, TicketStatus, UserStatus
from models.fields import associated_data
from models.keys import KeyState

BENCH_DATABASE = "ocis_bench"
AGENT_EMAIL = "bench-agent@example.com"
AGENT_PASSWORD = "ocis-bench-agent-password"  # noqa: S105 - a throwaway database's account
TEAM_NAME = "Support"

DATA_KEY_COLUMNS = (
    "id",
    "purpose",
    "subject_id",
    "version",
    "state",
    "wrapped_key",
    "kek_id",
    "created_at",
    "updated_at",
)
TEAM_COLUMNS = ("id", "name", "created_at", "archived_at")
USER_COLUMNS = (
    "id",
    "name",
    "email",
    "email_index",
    "email_verified_at",
    "phone",
    "username",
    "username_index",
    "password_hash",
    "date_of_birth",
    "locale",
    "time_zone",
    "roles",
    "status",
    "status_before_disable",
    "source",
    "created_at",
    "updated_at",
    "team_id",
)
TICKET_COLUMNS = (
    "id",
    "subject",
    "status",
    "priority",
    "channel",
    "requester_name",
    "requester_email",
    "requester_email_index",
    "awaiting_requester",
    "created_at",
    "updated_at",
    "closed_at",
    "assignee_id",
    "requester_id",
    "team_id",
    "walk_in_id",
)
WALK_IN_COLUMNS = ("id", "email", "email_index", "name", "created_at")
MESSAGE_COLUMNS = ("id", "body", "internal", "created_at", "author_id", "ticket_id")

FIRST_NAMES = (
    "Ada Alan Amara Ana Ben Chen Chloe Dara Elif Emil Farah Gus Hana Ines Ivan Jonas Kai Lea"
    " Lina Luis Maya Mina Nia Noah Omar Pia Ravi Rosa Sami Tara Theo Uma Yara Zoe"
).split()
LAST_NAMES = (
    "Abara Berg Costa Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Larsen Moreau"
    " Novak Okafor Petrov Quinn Rossi Santos Tanaka Umar Varga Weber Xu Yilmaz Zeller"
).split()
LOCALES = (
    ("en", "Europe/London"),
    ("de", "Europe/Berlin"),
    ("fr", "Europe/Paris"),
    ("es", "Europe/Madrid"),
    ("en", "America/New_York"),
)
PRODUCTS = ("invoice", "password", "mobile app", "export", "subscription", "order", "account")
PROBLEMS = (
    "Cannot open my {p}",
    "Question about my {p}",
    "The {p} shows the wrong amount",
    "Error 500 when I update my {p}",
    "How do I change my {p}?",
    "My {p} stopped working after the update",
    "Refund for my {p}",
)
OPENINGS = (
    "Hello, since this morning my {p} does not work as it should. I tried again after"
    " signing out and in, and cleared the cache, but the problem is still there.",
    "Hi team, I need help with my {p}. The page says something went wrong and asks me to"
    " contact support. Could you have a look? Thanks in advance.",
    "Good afternoon. I was charged twice for my {p} last week and would like to understand"
    " why before the next payment is taken from my account.",
)
REPLIES = (
    "Thanks for reaching out. I have checked your {p} and can see what happened; a fix is"
    " on its way and you should see the change within the next hour.",
    "Thank you for the details. Could you tell us which device and version you use, and"
    " send a screenshot of the message you see when you open the {p}?",
)
FOLLOW_UPS = (
    "Thanks, that worked. Everything looks right now.",
    "I tried again but it still fails in the same way. Anything else I can do?",
    "Here is the screenshot you asked for; it happens every time I open the {p}.",
)
NOTES = (
    "Internal: checked the {p} logs, this matches the known issue from last week.",
    "Internal: customer verified by phone; escalate to billing if it happens again.",
)


@dataclass(frozen=True, slots=True)
class Sizes:
    users: int = 1000
    agents: int = 8
    tickets: int = 10_000
    messages_per_ticket: int = 3


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    records: list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Dataset:
    tables: tuple[Table, ...]  # in foreign-key order
    agent_id: UUID
    team_id: UUID
    sizes: Sizes

    def table(self, name: str) -> Table:
        return next(table for table in self.tables if table.name == name)


class _Generator:
    def __init__(self, ring: Keyring, seed: int, created: datetime) -> None:
        self.ring = ring
        self.rng = random.Random(seed)
        self.created = created
        self.ciphers: dict[UUID, DataCipher] = {}
        self.keys: list[tuple[Any, ...]] = []

    def uuid(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128), version=4)

    def cipher(self, subject: UUID) -> DataCipher:
        """The subject's data key, made (and recorded wrapped) on first use."""
        if subject not in self.ciphers:
            cipher, wrapped = self.ring.new_data_key(subject)
            self.ciphers[subject] = cipher
            self.keys.append(
                (
                    wrapped.key_id,
                    KeyPurpose.DATA.value,
                    subject,
                    1,
                    KeyState.ACTIVE.value,
                    wrapped.wrapped_key,
                    wrapped.kek_id,
                    self.created,
                    self.created,
                )
            )
        return self.ciphers[subject]

    def seal(
        self, table: str, column: str, pk: UUID, value: str | None, subject: UUID
    ) -> str | None:
        if value is None:
            return None
        return self.cipher(subject).seal(value, associated_data(table, column, pk))

    def text(self, templates: tuple[str, ...], product: str) -> str:
        return self.rng.choice(templates).format(p=product)


def generate(
    ring: Keyring, password_hash: str, sizes: Sizes | None = None, *, seed: int = 1, now: datetime
) -> Dataset:
    """A support desk: one team of agents, customers, their tickets and threads."""
    sizes = sizes or Sizes()
    if not 1 <= sizes.agents < sizes.users:
        raise ValueError("need at least one agent and one customer")
    start = now - timedelta(days=180)
    gen = _Generator(ring, seed, start - timedelta(days=800))
    rng = gen.rng

    team_id = gen.uuid()
    teams = Table("teams", TEAM_COLUMNS, [(team_id, TEAM_NAME, start - timedelta(days=400), None)])

    users: list[tuple[Any, ...]] = []
    agents: list[UUID] = []
    customers: list[UUID] = []
    for index in range(sizes.users):
        ident = gen.uuid()
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        is_agent = index < sizes.agents
        role = Role.AGENT if is_agent else Role.CUSTOMER
        if index == 0:
            email, name = AGENT_EMAIL, "Bea Bench"
        elif is_agent:
            email, name = f"agent{index}@example.com", f"{first} {last}"
        else:
            email, name = f"{first}.{last}.{index}@example.com".lower(), f"{first} {last}"
        locale, time_zone = rng.choice(LOCALES)
        phone = (
            None if is_agent or rng.random() < 0.4 else f"+44 20 7946 {rng.randrange(10**4):04d}"
        )
        username = f"{first.lower()}{index}" if not is_agent and rng.random() < 0.1 else None
        birth = None
        if not is_agent and rng.random() < 0.8:
            birth = (date(1950, 1, 1) + timedelta(days=rng.randrange(20_000))).isoformat()
        joined = start - timedelta(days=rng.uniform(1, 700))
        users.append(
            (
                ident,
                gen.seal("users", "name", ident, name, ident),
                gen.seal("users", "email", ident, email, ident),
                ring.blind_index(email),
                joined,  # verified when it joined
                gen.seal("users", "phone", ident, phone, ident),
                gen.seal("users", "username", ident, username, ident),
                ring.blind_index(username) if username else None,
                password_hash,
                gen.seal("users", "date_of_birth", ident, birth, ident),
                gen.seal("users", "locale", ident, locale, ident),
                gen.seal("users", "time_zone", ident, time_zone, ident),
                json.dumps([role.value], separators=(",", ":")),
                UserStatus.ACTIVE.value,
                None,
                "self",
                joined,
                joined,
                team_id if is_agent else None,
            )
        )
        (agents if is_agent else customers).append(ident)

    tickets: list[tuple[Any, ...]] = []
    walk_ins: list[tuple[Any, ...]] = []
    messages: list[tuple[Any, ...]] = []
    step = timedelta(days=180) / sizes.tickets
    for index in range(sizes.tickets):
        ident = gen.uuid()
        created = start + step * index + timedelta(microseconds=rng.randrange(1_000_000))
        recent = index >= sizes.tickets * 0.9
        status = rng.choices(
            list(TicketStatus), weights=(50, 30, 20, 0) if recent else (10, 10, 30, 50)
        )[0]
        assignee = None
        if not (status == TicketStatus.OPEN and rng.random() < 0.5):
            assignee = agents[index % len(agents)]
        product = rng.choice(PRODUCTS)
        email_only = rng.random() < 0.03
        requester = None if email_only else rng.choice(customers)
        requester_name = requester_email = walk_in = None
        if email_only:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            requester_name = f"{first} {last}"
            requester_email = f"{first}.{last}.guest{index}@example.com".lower()
            # Derived, not drawn: the random stream (and so the rest of the set) stays as it was.
            walk_in = uuid5(ident, "walk-in")
            walk_ins.append(
                (
                    walk_in,
                    gen.seal("walk_in_requesters", "email", walk_in, requester_email, walk_in),
                    ring.blind_index(requester_email),
                    gen.seal("walk_in_requesters", "name", walk_in, requester_name, walk_in),
                    created,
                )
            )
        subject = requester or walk_in or ident
        when = created
        thread: list[tuple[UUID | None, str, bool]] = [
            (requester, gen.text(OPENINGS, product), False),
            (assignee or rng.choice(agents), gen.text(REPLIES, product), False),
        ]
        if rng.random() < 0.25:
            thread.append((assignee or rng.choice(agents), gen.text(NOTES, product), True))
        else:
            thread.append((requester, gen.text(FOLLOW_UPS, product), False))
        for author, body, internal in thread[: sizes.messages_per_ticket]:
            message_id = gen.uuid()
            messages.append(
                (
                    message_id,
                    gen.seal("ticket_messages", "body", message_id, body, author or ident),
                    internal,
                    when,
                    author,
                    ident,
                )
            )
            when += timedelta(minutes=rng.uniform(5, 600))
        closed = when if status == TicketStatus.CLOSED else None
        tickets.append(
            (
                ident,
                gen.seal("tickets", "subject", ident, gen.text(PROBLEMS, product), subject),
                status.value,
                rng.choices(list(TicketPriority), weights=(15, 60, 20, 5))[0].value,
                (Channel.EMAIL if email_only else rng.choice(list(Channel))).value,
                gen.seal("tickets", "requester_name", ident, requester_name, subject),
                gen.seal("tickets", "requester_email", ident, requester_email, subject),
                ring.blind_index(requester_email) if requester_email else None,
                False,  # seeded history: no ticket awaits its requester
                created,
                when,
                closed,
                assignee,
                requester,
                team_id,
                walk_in,
            )
        )
    return Dataset(
        tables=(
            Table("data_keys", DATA_KEY_COLUMNS, gen.keys),
            teams,
            Table("users", USER_COLUMNS, users),
            Table("walk_in_requesters", WALK_IN_COLUMNS, walk_ins),
            Table("tickets", TICKET_COLUMNS, tickets),
            Table("ticket_messages", MESSAGE_COLUMNS, messages),
        ),
        agent_id=agents[0],
        team_id=team_id,
        sizes=sizes,
    )


async def copy_into(connection: Any, dataset: Dataset) -> None:
    """Bulk-load every table in one transaction with COPY."""
    async with connection.transaction():
        for table in dataset.tables:
            await connection.copy_records_to_table(
                table.name, records=table.records, columns=list(table.columns)
            )


async def readable_assigned(connection: Any, agent_id: UUID) -> int:
    """Tickets assigned to the agent that have a registered requester."""
    count: int = await connection.fetchval(
        "SELECT count(*) FROM tickets WHERE assignee_id = $1 AND requester_id IS NOT NULL",
        agent_id,
    )
    return count


def sibling_url(database_url: str, name: str) -> str:
    """The URL of another database on the same server."""
    return urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))


async def recreate_database(database_url: str, name: str = BENCH_DATABASE) -> str:
    """Drop and create ``name`` next to ``database_url``; returns its URL."""
    admin = await asyncpg.connect(asyncpg_dsn(sibling_url(database_url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return sibling_url(database_url, name)


async def drop_database(database_url: str, name: str = BENCH_DATABASE) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(sibling_url(database_url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
