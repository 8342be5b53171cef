"""The per-request context: who is calling, and DataLoaders made for this request only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, Protocol, TypeAlias, TypeVar
from uuid import UUID

import strawberry
from redis.asyncio import Redis
from starlette.responses import Response
from strawberry.dataloader import DataLoader

from auth.policy import Relation
from auth.principal import Principal
from auth.relations import NO_RELATION
from auth.scoping import relations_to, worked_walk_ins
from auth.visitor_ids import Owner, VisitorIds
from models import (
    ConsentSource,
    Export,
    ExternalIdentity,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestStep,
    SignInSession,
    TicketMessage,
    User,
)
from resolvers.exports import load_exports
from resolvers.federated import load_identities
from resolvers.live import Hub
from resolvers.pagination import Page
from resolvers.payments import load_payment_methods
from resolvers.privacy_requests import load_histories, load_privacy_requests
from resolvers.sign_ins import load_sign_ins
from resolvers.tickets import load_message_pages, load_ticket_requesters
from resolvers.users import load_users
from settings import DEFAULT_COST_BUDGET_PER_MINUTE, DEFAULT_MAX_QUERY_COST, Routing

MessagePageKey: TypeAlias = tuple[UUID, int | None, str | None]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
K_in = TypeVar("K_in", bound=Hashable, contravariant=True)


class Loader(Protocol[K_in, V]):
    """What resolvers use of a request's loader."""

    def load(self, key: K_in) -> Awaitable[V]: ...

    def load_many(self, keys: Iterable[K_in]) -> Awaitable[list[V]]: ...

    def prime(self, key: K_in, value: V, force: bool = False) -> None: ...


class LevelLoader(Generic[K, V]):
    """A compiled plan's loader (schema/plan.py): the plan resolves a level at a time and
    awaits each batch before the next, so nothing is in flight to merge; each `load_many`
    loads the keys this request has not loaded yet in one call, with no future per key
    (DataLoader's futures and their callbacks cost the plan a tenth of its time)."""

    __slots__ = ("_known", "_load")

    def __init__(self, load_fn: Callable[[list[K]], Awaitable[Sequence[V]]]) -> None:
        self._load = load_fn
        self._known: dict[K, V] = {}

    async def load_many(self, keys: Iterable[K]) -> list[V]:
        keys = list(keys)
        known = self._known
        missing = [key for key in dict.fromkeys(keys) if key not in known]
        if missing:
            values = await self._load(missing)
            if len(values) != len(missing):
                raise ValueError("a batch load answered a different number of values")
            for key, value in zip(missing, values, strict=True):
                known.setdefault(key, value)
        return [known[key] for key in keys]

    async def load(self, key: K) -> V:
        (value,) = await self.load_many([key])
        return value

    def prime(self, key: K, value: V, force: bool = False) -> None:
        if force or key not in self._known:
            self._known[key] = value


@dataclass(slots=True)
class Loaders:
    users: Loader[UUID, User | None]
    relations: Loader[UUID, Relation]
    message_pages: Loader[MessagePageKey, Page[TicketMessage]]
    payment_methods: Loader[UUID, list[PaymentMethod]]
    sign_ins: Loader[UUID, list[SignInSession]]
    identities: Loader[UUID, list[ExternalIdentity]]
    walk_ins: Loader[str, bool]
    ticket_requesters: Loader[UUID, UUID | None]
    privacy_requests: Loader[UUID, PrivacyRequest | None]
    privacy_request_histories: Loader[UUID, list[PrivacyRequestStep]]
    privacy_request_exports: Loader[UUID, list[Export]]

    @classmethod
    def for_principal(cls, principal: Principal, *, rows: bool = False) -> Loaders:
        """This caller's loaders; with `rows`, a compiled plan's: people read as rows without
        ORM instances (models/rows.py), and loaders that batch a level at a time."""
        loader: Callable[..., Any] = LevelLoader if rows else _data_loader
        users: Loader[UUID, User | None] = loader(
            partial(load_users, rows=True) if rows else load_users
        )

        async def load_relations(ids: list[UUID]) -> list[Relation]:
            people = [person for person in await users.load_many(ids) if person is not None]
            known = await relations_to(principal, people)
            return [known.get(ident, NO_RELATION) for ident in ids]

        async def load_walk_ins(indexes: list[str]) -> list[bool]:
            worked = await worked_walk_ins(principal, indexes)
            return [index in worked for index in indexes]

        return cls(
            users=users,
            relations=loader(load_relations),
            message_pages=loader(partial(load_message_pages, principal)),
            payment_methods=loader(partial(load_payment_methods, principal)),
            sign_ins=loader(partial(load_sign_ins, principal)),
            identities=loader(partial(load_identities, principal)),
            walk_ins=loader(load_walk_ins),
            ticket_requesters=loader(partial(load_ticket_requesters, principal)),
            privacy_requests=loader(partial(load_privacy_requests, principal)),
            privacy_request_histories=loader(partial(load_histories, principal)),
            privacy_request_exports=loader(partial(load_exports, principal)),
        )


def _data_loader(load_fn: Callable[[list[Any]], Awaitable[Sequence[Any]]]) -> DataLoader[Any, Any]:
    return DataLoader(load_fn=load_fn)


async def _nobody() -> Principal | None:
    return None


@dataclass(slots=True)
class LiveConnection:
    """A WebSocket connection's side of live updates: this process's hub of events, how to
    drop the connection (a close code and a reason) when a subscriber falls behind, and the
    caller as the connection's credentials stand for them now (None once they no longer hold,
    the connection then closed), which every event is judged with."""

    hub: Hub
    drop: Callable[[int, str], None] = lambda code, reason: None
    caller_now: Callable[[], Awaitable[Principal | None]] = _nobody


@dataclass(slots=True)
class Context:
    principal: Principal
    request_id: str
    client_ip: str | None = None
    user_agent: str | None = None
    privacy_contact: str = "contact@ocis.app"
    # Where links in notices and mail point (a ticket's, an invitation's).
    public_url: str = "http://127.0.0.1:8000"
    audit_reads: bool = True
    # Whether `__schema` and `__type` may be selected (auth.policy.may_introspect).
    introspection: bool = True
    routing: Routing = field(default_factory=Routing)
    # The most one operation may cost, and what one caller may spend per minute (schema/cost.py).
    max_query_cost: int = DEFAULT_MAX_QUERY_COST
    cost_budget_per_minute: int = DEFAULT_COST_BUDGET_PER_MINUTE
    # The shared store (rate limits) and the response whose status and headers the view sends.
    store: Redis | None = None
    response: Response | None = None
    # The HTTP request's state, where the request log finds the operation's name.
    request_state: dict[str, Any] | None = None
    # Consent: ids for anonymous visitors, where a decision is made (web: cookie or none,
    # mobile: bearer), the request's Sec-GPC signal and whose ledger the web layer already
    # honoured it for, and whether cookies are set Secure (`__Host-`).
    visitor_ids: VisitorIds | None = None
    consent_source: ConsentSource = ConsentSource.WEB
    gpc: bool = False
    gpc_done_for: Owner | None = None
    secure_cookies: bool = False
    # Set on WebSocket connections only (schema/live.py).
    live: LiveConnection | None = None
    # Set once a compiled plan charged this operation's cost (schema/plan.py): a request it
    # hands back to Strawberry is not charged again.
    cost_charged: bool = False
    # Reads go without ORM instances (models/rows.py): set while a compiled plan runs.
    rows: bool = False
    loaders: Loaders = field(init=False)
    reads: dict[UUID, set[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.loaders = Loaders.for_principal(self.principal)

    def fresh_loaders(self, *, rows: bool = False) -> None:
        """Forget what earlier reads loaded: each event of a subscription is a new read, judged
        with the caller's principal as it is now. `rows`: a compiled plan's loaders."""
        self.rows = rows
        self.loaders = Loaders.for_principal(self.principal, rows=rows)

    def note_read(self, subject_id: UUID, field: str) -> None:
        """Remember that this request read a field (`Type.field`) of another person's
        personal data."""
        self.reads.setdefault(subject_id, set()).add(field)


def store_of(context: Context) -> Redis:
    """The shared store, which every server request carries (a bare schema call does not)."""
    if context.store is None:
        raise RuntimeError("this mutation needs the shared store")
    return context.store


Info: TypeAlias = strawberry.Info[Context, None]
