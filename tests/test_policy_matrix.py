"""The need-to-know matrix (P19), generated from the policy table and the live schema.

No field is listed here by hand. Selections come from the GraphQL schema (every field of
every type, nested objects included); the expected outcome of every field comes from its
rule in ``auth.policy.FIELD_POLICY``, applied to the relation the world below establishes
between the viewer and the person the object is about. The hand-written parts are the
world itself, ``REACH`` (which rows each viewer reaches, as auth/scoping.py promises) and
``ROOTS`` (what each root query returns); both are small enough to review against the code.

Every personal value stored in the world is a canary no other value contains, so a denied
value is searched for in the whole response text, not only where it should have been null.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    get_named_type,
)
from strawberry.types.base import StrawberryObjectDefinition
from tortoise import Tortoise
from tortoise.models import Model

import settings as config
from auth import scoping
from auth.client_info import ClientInfo
from auth.policy import FIELD_POLICY, Relation, Rule
from auth.principal import ANONYMOUS, Principal, parse_roles
from auth.scopes import STAFF_ROLES, Scope
from auth.sessions import start_session
from models import (
    OPEN_PRIVACY_REQUEST_STATUSES,
    AuditEvent,
    Channel,
    ConsentEntry,
    ConsentPurpose,
    ConsentSource,
    CorrectableField,
    Export,
    ExportPart,
    ExportStatus,
    ExternalIdentity,
    Invitation,
    LegalDisclosure,
    LegalHold,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestAction,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    PrivacyRequestStep,
    Role,
    Team,
    Ticket,
    TicketMessage,
    TicketPriority,
    TicketStatus,
    User,
    crypto,
    part_id,
)
from privacy import audit, audit_verify, rectification
from privacy.rectification import Correction
from schema import schema
from schema.relay import to_global_id
from tests.helpers import Api

GQL = schema._schema
HOPS = 2  # object fields followed below each reached object (depth stays under the limit)
MIN_CASES = 1000
Path = tuple[str | int, ...]

# --- The only hand-written knowledge: who reaches which rows, what each root returns. ---

ALL = "all"  # every row of the type
OWN = "own"  # rows about the viewer themselves
NONE: frozenset[str] = frozenset()
Reach = str | frozenset[str]

_OWN_ONLY: dict[str, Reach] = {
    "SignIn": OWN,
    "PaymentMethod": OWN,
    "PrivacyRequest": OWN,
    "PrivacyRequestStep": OWN,
    "PrivacyExport": OWN,
    "ConsentEntry": OWN,
    "AuditEntry": OWN,
    "LinkedIdentity": OWN,
}
OWNER_MESSAGES = frozenset({"m_owner", "m_reply", "m_note"})
# Staff administration's rows: administrators reach all of them, nobody else any.
_ADMIN_ONLY: dict[str, Reach] = {"Invitation": NONE, "Team": NONE}
# Legal holds and disclosures: the legal scope (the officer, administrators) reaches them all.
_LEGAL_ONLY: dict[str, Reach] = {"LegalHold": NONE, "LegalDisclosure": NONE}
_LEGAL_ALL: dict[str, Reach] = dict.fromkeys(_LEGAL_ONLY, ALL)

# Row scoping per viewer and type (auth/scoping.py, resolvers/nodes.py, the list loaders).
REACH: dict[str, dict[str, Reach]] = {
    "owner": {
        **_OWN_ONLY,
        **_ADMIN_ONLY,
        **_LEGAL_ONLY,
        "User": frozenset({"owner", "agent"}),
        "Ticket": frozenset({"t_open", "t_solved"}),
        "TicketMessage": frozenset({"m_owner", "m_reply", "m_solved"}),
    },
    "other": {
        **_OWN_ONLY,
        **_ADMIN_ONLY,
        **_LEGAL_ONLY,
        "User": frozenset({"other"}),
        "Ticket": frozenset({"t_other", "t_behalf"}),
        "TicketMessage": frozenset({"m_other", "m_behalf"}),
    },
    "agent": {
        **_OWN_ONLY,
        **_ADMIN_ONLY,
        **_LEGAL_ONLY,
        "User": frozenset({"agent", "owner"}),  # not "other": t_behalf awaits them
        "Ticket": frozenset({"t_open", "t_walkin", "t_behalf"}),
        "TicketMessage": OWNER_MESSAGES | {"m_walkin", "m_behalf"},
    },
    "agent2": {
        **_OWN_ONLY,
        **_ADMIN_ONLY,
        **_LEGAL_ONLY,
        "User": frozenset({"agent2", "other"}),
        "Ticket": frozenset({"t_other"}),
        "TicketMessage": frozenset({"m_other"}),
    },
    "lead": {
        **_OWN_ONLY,
        **_ADMIN_ONLY,
        **_LEGAL_ONLY,
        "User": ALL,
        "Ticket": frozenset(
            {"t_open", "t_solved", "t_walkin", "t_walkin_old", "t_walkin_done", "t_behalf"}
        ),
        "TicketMessage": OWNER_MESSAGES
        | {"m_solved", "m_walkin", "m_walkin_old", "m_walkin_done", "m_behalf"},
    },
    "officer": {
        **_OWN_ONLY,
        **_ADMIN_ONLY,
        **_LEGAL_ONLY,
        "User": ALL,
        "Ticket": NONE,
        "TicketMessage": NONE,
        "PrivacyRequest": ALL,
        "ConsentEntry": ALL,
        "PrivacyRequestStep": ALL,
        "PrivacyExport": ALL,
        "AuditEntry": ALL,
        **_LEGAL_ALL,
    },
    "admin": {
        **_OWN_ONLY,
        "User": ALL,
        "Ticket": ALL,
        "TicketMessage": frozenset(
            {"m_owner", "m_reply", "m_solved", "m_walkin", "m_walkin_old", "m_walkin_done"}
            | {"m_other", "m_behalf"}
        ),
        "SignIn": ALL,
        "LinkedIdentity": ALL,
        "Invitation": ALL,
        "Team": ALL,
        **_LEGAL_ALL,
    },
    "anonymous": dict.fromkeys(
        [*_OWN_ONLY, *_ADMIN_ONLY, *_LEGAL_ONLY, "User", "Ticket", "TicketMessage"], NONE
    ),
}

RowFilter = Callable[["World", "Viewer", "Obj", str], bool]


@dataclass(frozen=True)
class RootSpec:
    """A root query field: its arguments, who may call it, which rows it answers with."""

    args: str = ""
    variables: str = ""
    signed_in: bool = False
    scope: Scope | None = None
    rows: RowFilter = lambda world, viewer, obj, subject: True
    subjects: tuple[str, ...] = ("",)
    # The variables for one subject; unset: the person's id as $subject.
    bind: Callable[[World, str], dict[str, Any]] | None = None
    # Who else is refused, beyond `signed_in` and `scope`: the error code, or None.
    refuse: Callable[[World, Viewer, str], str | None] | None = None


def team_refusal(world: World, viewer: Viewer, team: str) -> str | None:
    """A team's queue: its members, its lead and administrators."""
    principal = viewer.principal
    if principal.user_id is None:
        return "UNAUTHENTICATED"
    if principal.has(Scope.TICKETS_ALL) or principal.works_in(world.teams[team].id):
        return None
    return "FORBIDDEN"


# Types this world holds no rows of: answered to the caller alone, or (ConsentState) computed
# from the ledger. Their rules are proven in tests/test_consents_and_requests.py,
# tests/test_visitor_consent.py (the privacy officer's consentsOf, a visitor's consents),
# tests/test_sign_out_everywhere.py and tests/test_ticket_notices.py rather than by this matrix.
CALLER_ONLY: dict[str, tuple[str, ...]] = {
    "ConsentState": ("myConsents", "consents", "consentsOf"),
    "Notice": ("myNotices",),
    "NoticePreference": ("myNoticePreferences",),
}

QUEUE = frozenset({TicketStatus.OPEN, TicketStatus.PENDING})

ROOTS: dict[str, RootSpec] = {
    "me": RootSpec(rows=lambda w, v, o, s: o.key == v.key),
    "tickets": RootSpec(args="(first: 100)"),
    "users": RootSpec(args="(first: 100)", scope=Scope.USERS_DIRECTORY),
    "myConsentLedger": RootSpec(signed_in=True, rows=lambda w, v, o, s: o.subject == v.key),
    "myPrivacyRequests": RootSpec(signed_in=True, rows=lambda w, v, o, s: o.subject == v.key),
    "consentLedgerOf": RootSpec(
        args="(userId: $subject)",
        variables="($subject: ID!)",
        signed_in=True,
        refuse=lambda w, v, s: (
            None if v.key == s or v.principal.has(Scope.PRIVACY_REQUESTS) else "FORBIDDEN"
        ),
        rows=lambda w, v, o, s: o.subject == s,
        subjects=("owner", "other"),
    ),
    "myDataAccesses": RootSpec(
        args="(first: 200)",
        signed_in=True,
        rows=lambda w, v, o, s: o.subject == v.key and o.row.actor_id != v.principal.user_id,
    ),
    "teamQueue": RootSpec(
        args="(teamId: $team, first: 100)",
        variables="($team: ID!)",
        bind=lambda w, s: {"team": str(to_global_id("Team", w.teams[s].id))},
        refuse=team_refusal,
        rows=lambda w, v, o, s: o.row.team_id == w.teams[s].id and o.row.status in QUEUE,
        subjects=("Support", "Billing"),
    ),
    "myOpenTickets": RootSpec(
        args="(first: 100)",
        signed_in=True,
        refuse=lambda w, v, s: None if v.principal.has(Scope.TICKETS_WORK) else "FORBIDDEN",
        rows=lambda w, v, o, s: (
            o.row.assignee_id == v.principal.user_id and o.row.status != TicketStatus.CLOSED
        ),
    ),
    "auditTrail": RootSpec(
        args="(subjectId: $subject, first: 200)",
        variables="($subject: ID!)",
        scope=Scope.PRIVACY_REQUESTS,
        rows=lambda w, v, o, s: o.subject == s,
        subjects=("owner", "other"),
    ),
    "privacyRequestQueue": RootSpec(
        args="(first: 100)",
        signed_in=True,
        scope=Scope.PRIVACY_REQUESTS,
        rows=lambda w, v, o, s: o.row.status in OPEN_REQUESTS,
    ),
    "legalHoldsOf": RootSpec(
        args="(userId: $subject)",
        variables="($subject: ID!)",
        signed_in=True,
        scope=Scope.LEGAL_HOLDS,
        rows=lambda w, v, o, s: o.subject == s,
        subjects=("owner", "other"),
    ),
    "legalDisclosuresOf": RootSpec(
        args="(userId: $subject)",
        variables="($subject: ID!)",
        signed_in=True,
        scope=Scope.LEGAL_HOLDS,
        rows=lambda w, v, o, s: o.subject == s,
        subjects=("owner", "other"),
    ),
    "invitations": RootSpec(scope=Scope.STAFF_ADMIN),
    "teams": RootSpec(scope=Scope.STAFF_ADMIN),
}

# Values a field computes rather than stores.
COMPUTED: dict[tuple[str, str], Callable[[Obj, Viewer], Any]] = {
    ("SignIn", "current"): lambda obj, viewer: obj.row.id == viewer.principal.session_id,
    # This world publishes no version of the privacy policy: nothing awaits acceptance.
    ("User", "pendingPolicyAcceptance"): lambda obj, viewer: False,
    # Every request of this world is due in the future.
    ("PrivacyRequest", "overdue"): lambda obj, viewer: False,
    ("PrivacyExport", "downloadPath"): lambda obj, viewer: (
        f"/privacy/exports/{obj.row.id}" if obj.row.status is ExportStatus.READY else None
    ),
    ("LegalHold", "active"): lambda obj, viewer: obj.row.lifted_at is None,
}

# Values without rows of their own, as the domain decodes them from their owner's row.
VALUES: dict[tuple[str, str], Callable[[Obj], list[Any]]] = {
    ("PrivacyRequest", "corrections"): lambda obj: rectification.loads(obj.row.corrections),
}

OPEN_REQUESTS: frozenset[PrivacyRequestStatus] = frozenset(OPEN_PRIVACY_REQUEST_STATUSES)
STAFF = frozenset(role.value for role in STAFF_ROLES)


# --- The schema, read generically. ---


@dataclass(frozen=True)
class Shape:
    kind: str  # scalar | link | list | connection
    target: str = ""


def shape_of(gql_field: GraphQLField) -> Shape:
    named = get_named_type(gql_field.type)
    if isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return Shape("scalar")
    assert isinstance(named, GraphQLObjectType), named
    wrapped = gql_field.type
    inner = wrapped.of_type if isinstance(wrapped, GraphQLNonNull) else wrapped
    if isinstance(inner, GraphQLList):
        # A list of values without rows of their own (a request's corrections): compared whole.
        return Shape("list" if is_model_type(named.name) else "value", named.name)
    edges = named.fields.get("edges")
    if edges is not None:
        edge = get_named_type(edges.type)
        assert isinstance(edge, GraphQLObjectType)
        node = get_named_type(edge.fields["node"].type)
        return Shape("connection", node.name)
    return Shape("link", named.name)


def object_type(name: str) -> GraphQLObjectType:
    found = GQL.type_map[name]
    assert isinstance(found, GraphQLObjectType), name
    return found


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def is_model_type(type_name: str) -> bool:
    definition = schema.get_type_by_name(type_name)
    assert isinstance(definition, StrawberryObjectDefinition), type_name
    return "model" in definition.origin.__annotations__


def model_of(type_name: str) -> type[Model]:
    """The ORM model behind a GraphQL type, read from the Strawberry type's private field."""
    definition = schema.get_type_by_name(type_name)
    assert isinstance(definition, StrawberryObjectDefinition), type_name
    model: type[Model] = get_args(definition.origin.__annotations__["model"])[0]
    return model


def serialize(output: GraphQLOutputType, raw: Any) -> Any:
    if raw is None:
        return None
    if isinstance(output, GraphQLNonNull):
        return serialize(output.of_type, raw)
    if isinstance(output, GraphQLList):
        return [serialize(output.of_type, item) for item in raw]
    assert isinstance(output, GraphQLScalarType | GraphQLEnumType), output
    if output.name == "Date" and isinstance(raw, str):
        raw = date.fromisoformat(raw)
    return output.serialize(raw)


@dataclass(frozen=True)
class Pick:
    name: str
    shape: Shape
    output: GraphQLOutputType
    child: Selection | None = None


@dataclass(frozen=True)
class Selection:
    type_name: str
    picks: tuple[Pick, ...]

    def render(self) -> str:
        parts = ["__typename"]
        for pick in self.picks:
            if pick.child is None:
                parts.append(pick.name)
            elif pick.shape.kind == "connection":
                parts.append(f"{pick.name} {{ edges {{ node {{ {pick.child.render()} }} }} }}")
            else:
                parts.append(f"{pick.name} {{ {pick.child.render()} }}")
        return " ".join(parts)


def selection(type_name: str, hops: int = HOPS) -> Selection:
    """Every field of the type; object fields in full while hops remain, else just their id."""
    picks = []
    for name, gql_field in object_type(type_name).fields.items():
        shape = shape_of(gql_field)
        child = None
        if shape.kind != "scalar":
            assert shape.target in FIELD_POLICY, f"{type_name}.{name} reaches {shape.target}"
            child = selection(shape.target, hops - 1) if hops > 0 else id_only(shape.target)
        picks.append(Pick(name, shape, gql_field.type, child))
    return Selection(type_name, tuple(picks))


def id_only(type_name: str) -> Selection:
    """The id; for a value type without one (a request's corrections), its scalar fields."""
    fields = object_type(type_name).fields
    if "id" not in fields:
        return Selection(
            type_name,
            tuple(
                Pick(name, shape, gql_field.type)
                for name, gql_field in fields.items()
                if (shape := shape_of(gql_field)).kind == "scalar"
            ),
        )
    return Selection(type_name, (Pick("id", Shape("scalar"), fields["id"].type),))


def node_types() -> list[str]:
    return sorted(
        name
        for name in FIELD_POLICY
        if any(interface.name == "Node" for interface in object_type(name).interfaces)
    )


# --- The world. ---


@dataclass
class Obj:
    type_name: str
    key: str
    row: Any
    subject: str  # the person the object is about (a viewer key or an email-only requester)
    gid: str


@dataclass(frozen=True)
class Viewer:
    key: str
    principal: Principal
    api: Api


@dataclass
class World:
    objects: dict[str, dict[str, Obj]] = field(default_factory=lambda: defaultdict(dict))
    viewers: dict[str, Viewer] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    planted: set[str] = field(default_factory=set)
    unexposed: set[str] = field(default_factory=set)  # stored in columns no field shows
    canaries: dict[str, list[str]] = field(default_factory=dict)  # value -> ["obj.field"]
    counter: int = 0

    def canary(self, suffix: str = "") -> str:
        self.counter += 1
        return self.plant(f"cx{self.counter:03d}{secrets.token_hex(4)}{suffix}")

    def plant(self, value: str) -> str:
        self.planted.add(value)
        return value

    def never_shown(self) -> str:
        value = self.canary()
        self.unexposed.add(value)
        return value

    def add(self, type_name: str, key: str, row: Any, subject: str) -> Obj:
        gid = str(row.seq) if type_name == "AuditEntry" else str(to_global_id(type_name, row.pk))
        obj = Obj(type_name, key, row, subject, gid)
        self.objects[type_name][key] = obj
        return obj

    def all(self) -> Iterator[Obj]:
        for per_type in list(self.objects.values()):
            yield from list(per_type.values())

    def by_gid(self, type_name: str, gid: str) -> Obj | None:
        return next((o for o in self.objects[type_name].values() if o.gid == gid), None)

    def by_pk(self, type_name: str, pk: Any) -> Obj | None:
        return next((o for o in self.objects[type_name].values() if o.row.pk == pk), None)

    def person_key(self, user_id: Any) -> str:
        person = self.by_pk("User", user_id)
        return person.key if person else f"unknown:{user_id}"

    async def reload(self) -> None:
        """Read every row back as the API will, then index the canaries by (object, field)."""
        for obj in self.all():
            obj.row = await type(obj.row).get(pk=obj.row.pk)
        for obj in self.all():
            for name in FIELD_POLICY.get(obj.type_name, {}):
                value = getattr(obj.row, snake(name), None)
                if isinstance(value, str) and value in self.planted:
                    self.canaries.setdefault(value, []).append(f"{obj.key}.{name}")
            for (type_name, name), decode in VALUES.items():
                if type_name != obj.type_name:
                    continue
                for entry in decode(obj):
                    for value in dataclasses.astuple(entry):
                        if isinstance(value, str) and value in self.planted:
                            self.canaries.setdefault(value, []).append(f"{obj.key}.{name}")
        unplaced = self.planted - self.unexposed - set(self.canaries)
        assert not unplaced, f"planted values no GraphQL field holds: {sorted(unplaced)}"

    async def refresh_audit(self) -> None:
        """Audit entries grow as the matrix reads; know every one before the next request."""
        known = {obj.row.seq for obj in self.objects["AuditEntry"].values()}
        for event in await AuditEvent.filter(seq__gt=max(known, default=0)).order_by("seq"):
            if event.seq not in known:
                self.add(
                    "AuditEntry", f"audit:{event.seq}", event, self.person_key(event.subject_id)
                )

    # The relation the world establishes: independent of the product's own computation.
    def relation(self, viewer: Viewer, subject: str) -> Relation:
        person = self.objects["User"].get(subject)
        me, team = viewer.principal.user_id, viewer.principal.team_id
        works = me is not None and any(
            ticket.subject == subject
            and not ticket.row.awaiting_requester
            and (
                ticket.row.assignee_id == me
                or (team is not None and ticket.row.team_id == team and ticket.row.status in QUEUE)
            )
            for ticket in self.objects["Ticket"].values()
        )
        handles = viewer.principal.has(Scope.PRIVACY_REQUESTS) and any(
            request.subject == subject
            and request.row.status in OPEN_REQUESTS
            and request.row.assignee_id in (None, me)
            for request in self.objects["PrivacyRequest"].values()
        )
        return Relation(
            is_self=viewer.key == subject,
            subject_is_staff=person is not None and bool(STAFF.intersection(person.row.roles)),
            works_their_ticket=works,
            handles_their_privacy_request=handles,
        )

    def relation_on(self, viewer: Viewer, obj: Obj) -> Relation:
        """The relation an object carries: a ticket awaiting its requester grants nothing."""
        relation = self.relation(viewer, obj.subject)
        if obj.type_name == "Ticket" and obj.row.awaiting_requester:
            return dataclasses.replace(
                relation, works_their_ticket=False, ticket_awaits_requester=True
            )
        return relation

    def reaches(self, viewer: Viewer, obj: Obj) -> bool:
        rows = REACH[viewer.key].get(obj.type_name)
        if rows is None:
            pytest.fail(f"REACH says nothing about {viewer.key} and {obj.type_name}")
        if rows == ALL:
            return True
        if rows == OWN:
            return obj.subject == viewer.key
        return obj.key in rows

    def link(self, obj: Obj, name: str, target: str) -> Obj | None:
        pk = getattr(obj.row, f"{snake(name)}_id")
        if pk is None:
            return None
        found = self.by_pk(target, pk)
        assert found is not None, f"{obj.key}.{name} points outside the world"
        return found

    def children(self, parent: Obj, target: str) -> list[Obj]:
        """Objects of the target type whose foreign key names the parent (from the ORM)."""
        child_model, parent_model = model_of(target), model_of(parent.type_name)
        keys = [
            name
            for name in child_model._meta.fk_fields
            if getattr(child_model._meta.fields_map[name], "related_model", None) is parent_model
        ]
        assert len(keys) == 1, (target, parent.type_name, keys)
        return [
            obj
            for obj in self.objects[target].values()
            if getattr(obj.row, f"{keys[0]}_id") == parent.row.pk
        ]

    def raw(self, obj: Obj, name: str, viewer: Viewer) -> Any:
        if name == "id":
            return obj.gid
        computed = COMPUTED.get((obj.type_name, name))
        if computed is not None:
            return computed(obj, viewer)
        attribute = snake(name)
        assert hasattr(obj.row, attribute), f"{obj.type_name}.{name}: no stored value to expect"
        return getattr(obj.row, attribute)

    @property
    def secret_ids(self) -> set[str]:
        return {o.gid for o in self.all() if o.type_name != "AuditEntry"}

    def describe(self, gid: str) -> str:
        found = next((o for o in self.all() if o.gid == gid), None)
        return f"{found.type_name} {found.key}" if found else gid


PEOPLE = (
    ("owner", Role.CUSTOMER, None),
    ("other", Role.CUSTOMER, None),
    ("agent", Role.AGENT, "Support"),
    ("agent2", Role.AGENT, "Billing"),
    ("lead", Role.TEAM_LEAD, "Support"),
    ("officer", Role.PRIVACY_OFFICER, None),
    ("admin", Role.ADMINISTRATOR, None),
)
OPEN, SOLVED = TicketStatus.OPEN, TicketStatus.SOLVED
TICKETS = (  # key, requester, email-only requester, assignee, team, status, channel, on behalf
    ("t_open", "owner", None, "agent", "Support", OPEN, Channel.WEB, False),
    ("t_solved", "owner", None, None, "Support", SOLVED, Channel.MOBILE, False),
    ("t_walkin", None, "walkin", None, "Support", OPEN, Channel.EMAIL, False),
    ("t_walkin_old", None, "walkin", None, "Support", SOLVED, Channel.EMAIL, False),
    ("t_walkin_done", None, "walkin2", None, "Support", SOLVED, Channel.EMAIL, False),
    ("t_other", "other", None, None, "Billing", OPEN, Channel.WEB, False),
    ("t_behalf", "other", None, None, "Support", OPEN, Channel.EMAIL, True),
)
MESSAGES = (  # key, ticket, author, internal
    ("m_owner", "t_open", "owner", False),
    ("m_reply", "t_open", "agent", False),
    ("m_note", "t_open", "agent", True),
    ("m_solved", "t_solved", "owner", False),
    ("m_walkin", "t_walkin", "agent", False),
    ("m_walkin_old", "t_walkin_old", "lead", False),
    ("m_walkin_done", "t_walkin_done", "lead", False),
    ("m_other", "t_other", "other", False),
    ("m_behalf", "t_behalf", "agent", False),  # the agent opened it on their behalf
)


async def build_world(app: Any, client: httpx.AsyncClient) -> World:
    """Each personal-data type with objects about "owner", and the relations around them."""
    world = World()
    now = datetime.now(UTC)
    teams = {name: await Team.create(name=name) for name in ("Support", "Billing")}
    for name, team_row in teams.items():
        world.add("Team", f"team_{name}", team_row, "")
    world.teams = teams
    users: dict[str, User] = {}
    for index, (key, role, team) in enumerate(PEOPLE):
        user = User(
            name=world.canary(),
            phone=world.canary(),
            date_of_birth=world.plant(f"19{40 + index}-{index + 1:02d}-{10 + index}"),
            locale=world.canary(),
            time_zone=world.canary(),
            roles=[role.value],
            source=world.canary(),
            team=teams[team] if team else None,
        )
        user.set_email(world.canary("@example.test"))
        user.set_username(world.canary())
        await user.save()
        users[key] = user
        world.add("User", key, user, key)

    tickets: dict[str, Ticket] = {}
    walk_ins: dict[str, tuple[str, str]] = {}
    for key, requester, walk_in, assignee, team, status, channel, behalf in TICKETS:
        ticket = Ticket(
            subject=world.canary(),
            status=status,
            priority=TicketPriority.HIGH,
            channel=channel,
            requester=users[requester] if requester else None,
            assignee=users[assignee] if assignee else None,
            team=teams[team],
            closed_at=now if status == SOLVED else None,
            awaiting_requester=behalf,
        )
        if walk_in:  # someone who wrote in by email: known by that address alone
            if walk_in not in walk_ins:
                walk_ins[walk_in] = (world.canary("@walk-in.test"), world.canary())
            email, name = walk_ins[walk_in]
            ticket.requester_email = email
            ticket.requester_email_index = crypto.blind_index(email)
            ticket.requester_name = name
        await ticket.save()
        tickets[key] = ticket
        world.add("Ticket", key, ticket, requester or walk_in or "")
    for key, ticket_key, author, internal in MESSAGES:
        message = await TicketMessage.create(
            ticket=tickets[ticket_key], author=users[author], body=world.canary(), internal=internal
        )
        world.add("TicketMessage", key, message, author)

    def client_info() -> ClientInfo:
        return ClientInfo(**{meta.name: world.canary() for meta in dataclasses.fields(ClientInfo)})

    store = app.state.store
    older = await start_session(store, users["owner"], client_info(), 3600, world.canary())
    world.add("SignIn", "s_owner_old", older.sign_in, "owner")
    for key, user in users.items():
        session = await start_session(store, user, client_info(), 3600, world.canary())
        world.add("SignIn", f"s_{key}", session.sign_in, key)
        principal = Principal.for_user(
            user.id,
            parse_roles(user.roles),
            user.team_id,
            session_id=session.sign_in.id,
        )
        world.viewers[key] = Viewer(key, principal, Api(client, session.token))
    world.viewers["anonymous"] = Viewer("anonymous", ANONYMOUS, Api(client))

    for index, key in enumerate(("owner", "other")):
        method = await PaymentMethod.create(
            user=users[key],
            gateway_token=world.never_shown(),
            brand=world.canary(),
            last4=world.plant(f"~{index}^~"),  # four characters no id, date or token contains
            exp_month=7 + index,
            exp_year=now.year + 5 + index,
        )
        world.add("PaymentMethod", f"pm_{key}", method, key)
        entry = await ConsentEntry.create(
            user=users[key],
            purpose=ConsentPurpose.MARKETING_EMAIL if index == 0 else ConsentPurpose.STATISTICS,
            granted=index == 0,
            policy_version=world.canary(),
            source=ConsentSource.WEB,
            ip_address=world.never_shown(),
            user_agent=world.never_shown(),
        )
        world.add("ConsentEntry", f"ce_{key}", entry, key)
        if "LinkedIdentity" in FIELD_POLICY:
            identity = await ExternalIdentity.create(
                user=users[key],
                issuer=world.never_shown(),
                subject=world.never_shown(),
                provider=world.canary(),
                email=world.canary("@idp.test"),
                email_verified=index == 0,
            )
            world.add("LinkedIdentity", f"li_{key}", identity, key)
    for key, team_key, accepted in (("inv_open", "Support", False), ("inv_bare", None, False)):
        invitation = Invitation(
            email=world.canary("@invited.test"),
            email_index=world.never_shown(),
            roles=[Role.AGENT.value, Role.TEAM_LEAD.value],
            team=teams[team_key] if team_key else None,
            invited_by=users["admin"],
            token_hash=world.never_shown(),
            expires_at=now + timedelta(days=7),
            accepted_at=now if accepted else None,
        )
        await invitation.save()
        # The invitee has no account: the invitation is about nobody a viewer relates to.
        world.add("Invitation", key, invitation, f"invitee:{key}")
    # Rectifications with their corrections (values of their own, read through the request):
    # the owner's open and undecided, the other's decided with a reason.
    corrections = {
        "owner": [
            Correction(CorrectableField.NAME, world.canary()),
            Correction(CorrectableField.PHONE, None),
        ],
        "other": [
            Correction(CorrectableField.NAME, world.canary(), accepted=True),
            Correction(CorrectableField.PHONE, world.canary(), False, world.canary()),
        ],
    }
    for key, request_status in (
        ("owner", PrivacyRequestStatus.RECEIVED),  # open: the officer handles it
        ("other", PrivacyRequestStatus.COMPLETED),  # closed: no reason any more
    ):
        request = await PrivacyRequest.create(
            subject=users[key],
            kind=PrivacyRequestKind.RECTIFICATION,
            status=request_status,
            details=world.canary(),
            corrections=rectification.dumps(corrections[key]),
            received_at=now - timedelta(days=3),
            due_at=now + timedelta(days=27),
            closed_at=None if request_status in OPEN_REQUESTS else now,
            assignee=users["officer"],
            outcome=world.canary(),
        )
        world.add("PrivacyRequest", f"pr_{key}", request, key)
        # An access request of each, closed, with its export: the owner's ready, the other's
        # still building. The export's content and its link's hash no field shows.
        access = await PrivacyRequest.create(
            subject=users[key],
            kind=PrivacyRequestKind.ACCESS,
            status=PrivacyRequestStatus.COMPLETED,
            received_at=now - timedelta(days=4),
            due_at=now + timedelta(days=26),
            closed_at=now,
            outcome=world.canary(),
        )
        world.add("PrivacyRequest", f"pr_{key}_access", access, key)
        ready = key == "owner"
        export = await Export.create(
            request=access,
            subject=users[key],
            kind=PrivacyRequestKind.ACCESS,
            status=ExportStatus.READY if ready else ExportStatus.BUILDING,
            token_hash=world.never_shown() if ready else None,
            part_count=1 if ready else 0,
            downloads_left=2 if ready else 0,
            ready_at=now - timedelta(hours=1) if ready else None,
            expires_at=now + timedelta(days=6) if ready else None,
        )
        world.add("PrivacyExport", f"ex_{key}", export, key)
        part = ExportPart(id=part_id(export.id, 0), export=export, subject=users[key], index=0)
        part.data = world.never_shown()
        await part.save(force_create=True)
        step = await PrivacyRequestStep.create(
            request=request,
            subject=users[key],
            action=PrivacyRequestAction.ASSIGNED,
            from_status=request_status,
            to_status=request_status,
            actor=users["officer"],
            at=now - timedelta(days=2),
            note=world.canary(),
        )
        world.add("PrivacyRequestStep", f"ps_{key}", step, key)
    for index, key in enumerate(("owner", "other")):
        hold = await LegalHold.create(
            subject=users[key],
            authority=world.canary(),
            reference=world.canary(),
            reason=world.canary(),
            review_on=date(2031, 1, 1 + index),
            placed_by=users["officer"],
            placed_at=now - timedelta(days=1),
            lifted_at=now if index else None,
        )
        world.add("LegalHold", f"lh_{key}", hold, key)
        disclosure = await LegalDisclosure.create(
            subject=users[key],
            authority=world.canary(),
            legal_basis=world.canary(),
            data_categories=["tickets"],
            disclosed_on=date(2026, 1, 1 + index),
            subject_may_be_told_on=date(2027, 1, 1 + index),
            recorded_by=users["officer"],
            recorded_at=now,
        )
        world.add("LegalDisclosure", f"ld_{key}", disclosure, key)
    for key, actor, subject in (
        ("ae_owner", "agent", "owner"),
        ("ae_owner_self", "owner", "owner"),
        ("ae_other", "lead", "other"),
    ):
        event = await audit.record(
            Principal.for_user(
                users[actor].id,
                parse_roles(users[actor].roles),
                users[actor].team_id,
                request_id=world.canary(),
            ),
            action=world.canary(),
            entity="User",
            entity_id=users[subject].id,
            subject_id=users[subject].id,
            field_names=["User.email"],
            purpose=world.canary(),
        )
        world.add("AuditEntry", key, event, subject)
    await world.reload()
    return world


@pytest.fixture
def app_settings(app_settings: config.Settings) -> config.Settings:
    """Every field of every type, 100 rows a page: a probe of the policy, not a client's query,
    so it runs past the query-cost limit and budget (tests/test_query_cost.py tests those)."""
    return dataclasses.replace(app_settings, max_query_cost=10**9, cost_budget_per_minute=10**12)


@pytest.fixture
async def world(app: Any, client: httpx.AsyncClient) -> World:
    return await build_world(app, client)


# --- Running one request and checking every field of its answer. ---


def relation_label(relation: Relation) -> str:
    if relation.is_self:
        return "self"
    if relation.works_their_ticket or relation.handles_their_privacy_request:
        return "related"
    return "unrelated"


@dataclass
class Tally:
    cases: int = 0
    requests: int = 0
    outcomes: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    by_path: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_relation: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def record(self, obj: Obj, name: str, outcome: str, path: str, label: str) -> None:
        self.cases += 1
        self.outcomes[(obj.type_name, name)][outcome] += 1
        self.by_path[(path, outcome)] += 1
        self.by_relation[(label, outcome)] += 1


@dataclass
class Run:
    world: World
    viewer: Viewer
    path_kind: str  # direct | node | alias
    tally: Tally
    title: str
    errors: dict[Path, str] = field(default_factory=dict)
    allowed: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)

    def problem(self, message: str) -> None:
        self.tally.problems.append(f"[{self.viewer.key} · {self.title}] {message}")

    def expect_error(self, path: Path, code: str) -> None:
        assert path not in self.errors, path
        self.errors[path] = code

    def hide(self, obj: Obj, depth: int) -> None:
        """The object is outside the viewer's rows: every field of it counts as withheld."""
        label = relation_label(self.world.relation_on(self.viewer, obj))
        kind = self.path_kind if depth == 0 else "nested"
        for name in FIELD_POLICY[obj.type_name]:
            self.tally.record(obj, name, "hidden", kind, label)
        if depth > 0:
            return
        # The items of its lists are withheld with it (a request's history steps).
        for gql_field in object_type(obj.type_name).fields.values():
            shape = shape_of(gql_field)
            if shape.kind == "list":
                for child in self.world.children(obj, shape.target):
                    self.hide(child, depth + 1)

    def check(self, obj: Obj, chosen: Selection, data: Any, path: Path, depth: int) -> None:
        where = ".".join(str(part) for part in path)
        if not isinstance(data, dict) or data.get("__typename") != obj.type_name:
            self.problem(f"{where}: expected {obj.type_name} {obj.key}, got {data!r}")
            return
        self.present.add(obj.gid)
        relation = self.world.relation_on(self.viewer, obj)
        label = relation_label(relation)
        kind = self.path_kind if depth == 0 else "nested"
        rules: dict[str, Rule] = FIELD_POLICY[obj.type_name]
        for pick in chosen.picks:
            here = (*path, pick.name)
            value = data.get(pick.name)
            about = f"{obj.type_name}.{pick.name} of {obj.key} ({label}) at {where}.{pick.name}"
            if not rules[pick.name](self.viewer.principal, relation):
                self.tally.record(obj, pick.name, "forbidden", kind, label)
                self.expect_error(here, "FORBIDDEN")
                if value is not None:
                    self.problem(f"{about}: denied by policy but returned {value!r}")
                continue
            self.tally.record(obj, pick.name, "allow", kind, label)
            if pick.shape.kind == "scalar":
                raw = self.world.raw(obj, pick.name, self.viewer)
                expected = serialize(pick.output, raw)
                if value != expected:
                    self.problem(f"{about}: expected {expected!r}, got {value!r}")
                if isinstance(raw, str) and raw in self.world.canaries:
                    self.allowed.add(raw)
            elif pick.shape.kind == "value":
                expected = VALUES[(obj.type_name, pick.name)](obj)
                assert pick.child is not None
                inner = FIELD_POLICY[pick.shape.target]
                if not all(
                    inner[f.name](self.viewer.principal, relation) for f in pick.child.picks
                ):
                    self.problem(f"{about}: a value's own rules deny what its owner's field allows")
                got = [
                    {key: item for key, item in entry.items() if key != "__typename"}
                    for entry in value or []
                ]
                want = [
                    {
                        field.name: serialize(field.output, getattr(entry, snake(field.name)))
                        for field in pick.child.picks
                    }
                    for entry in expected
                ]
                if got != want:
                    self.problem(f"{about}: expected {want!r}, got {value!r}")
                self.allowed.update(
                    item
                    for entry in expected
                    for item in dataclasses.astuple(entry)
                    if isinstance(item, str) and item in self.world.canaries
                )
            elif pick.shape.kind == "link":
                target = self.world.link(obj, pick.name, pick.shape.target)
                if target is None:
                    if value is not None:
                        self.problem(f"{about}: expected null, got {value!r}")
                elif pick.child is not None:
                    self.check(target, pick.child, value, here, depth + 1)
            else:
                self.check_many(obj, pick, value, here, depth, about)

    def check_many(
        self, parent: Obj, pick: Pick, value: Any, here: Path, depth: int, about: str
    ) -> None:
        assert pick.child is not None
        every = self.world.children(parent, pick.shape.target)
        connection = pick.shape.kind == "connection"
        self.check_collection(every, pick.child, connection, value, here, depth + 1, about)

    def check_collection(
        self,
        every: list[Obj],
        chosen: Selection,
        connection: bool,
        value: Any,
        here: Path,
        depth: int,
        about: str,
    ) -> None:
        """A list or connection holds exactly the reachable objects, each checked in full."""
        visible = [obj for obj in every if self.world.reaches(self.viewer, obj)]
        for obj in every:
            if obj not in visible:
                self.hide(obj, depth)
        items: list[tuple[Any, Path]]
        if connection and isinstance(value, dict) and isinstance(value.get("edges"), list):
            items = [
                (edge.get("node"), (*here, "edges", i, "node"))
                for i, edge in enumerate(value["edges"])
            ]
        elif not connection and isinstance(value, list):
            items = [(item, (*here, i)) for i, item in enumerate(value)]
        else:
            self.problem(
                f"{about}: expected {'a connection' if connection else 'a list'}, got {value!r}"
            )
            return
        got = sorted(str(item.get("id")) for item, _ in items if isinstance(item, dict))
        want = sorted(obj.gid for obj in visible)
        if got != want:
            self.problem(
                f"{about}: expected {[self.world.describe(g) for g in want]}, "
                f"got {[self.world.describe(g) for g in got]}"
            )
            return
        for item, item_path in items:
            found = self.world.by_gid(chosen.type_name, str(item.get("id")))
            assert found is not None
            self.check(found, chosen, item, item_path, depth)

    def finish(self, body: dict[str, Any], text: str) -> None:
        """Errors exactly where expected; no canary or id the viewer may not see, anywhere."""
        actual: dict[Path, str] = {}
        for error in body.get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            actual[tuple(error.get("path") or ())] = str(code)
        for path in sorted(set(actual) | set(self.errors), key=str):
            if actual.get(path) != self.errors.get(path):
                shown = ".".join(str(part) for part in path) or "(no path)"
                self.problem(
                    f"error at {shown}: expected {self.errors.get(path)}, got {actual.get(path)}"
                )
        for canary, places in self.world.canaries.items():
            if canary not in self.allowed and canary in text:
                self.problem(f"withheld value of {' = '.join(places)} appears in the response")
        for canary in self.world.unexposed:
            if canary in text:
                self.problem("a value no field exposes appears in the response")
        for gid in self.world.secret_ids - self.present:
            if gid in text:
                self.problem(f"the id of unreachable {self.world.describe(gid)} appears")


async def send(run: Run, query: str, variables: dict[str, Any]) -> tuple[dict[str, Any], str]:
    run.tally.requests += 1
    response = await run.viewer.api.post(query, variables)
    if response.status_code != 200:
        run.problem(f"HTTP {response.status_code}: {response.text[:300]}")
        return {}, response.text
    body: dict[str, Any] = response.json()
    return body, response.text


def personal_roots() -> dict[str, Shape]:
    """Root query fields that answer with a type of the policy table (node aside)."""
    roots = {}
    for name, gql_field in object_type("Query").fields.items():
        named = get_named_type(gql_field.type)
        if not isinstance(named, GraphQLObjectType):
            continue
        shape = shape_of(gql_field)
        if shape.target in FIELD_POLICY:
            roots[name] = shape
    return roots


async def check_root(world: World, viewer: Viewer, name: str, subject: str, tally: Tally) -> None:
    spec = ROOTS[name]
    shape = personal_roots()[name]
    if shape.target == "AuditEntry":
        await world.refresh_audit()
    chosen = selection(shape.target)
    inner = chosen.render()
    if shape.kind == "connection":
        inner = f"edges {{ node {{ {inner} }} }}"
    query = f"query{spec.variables} {{ {name}{spec.args} {{ {inner} }} }}"
    if spec.bind is not None:
        variables = spec.bind(world, subject)
    else:
        variables = {"subject": world.objects["User"][subject].gid} if subject else {}
    run = Run(world, viewer, "direct", tally, f"{name}({subject})" if subject else name)
    candidates = [
        obj
        for obj in world.objects[shape.target].values()
        if spec.rows(world, viewer, obj, subject)
    ]
    refused = None
    if spec.signed_in and viewer.principal.user_id is None:
        refused = "UNAUTHENTICATED"
    elif spec.scope is not None and not viewer.principal.has(spec.scope):
        refused = "FORBIDDEN"
    elif spec.refuse is not None:
        refused = spec.refuse(world, viewer, subject)
    body, text = await send(run, query, variables)
    value = (body.get("data") or {}).get(name)
    if refused is not None:
        run.expect_error((name,), refused)
        for obj in candidates:
            run.hide(obj, 0)
        if value is not None:
            run.problem(f"refused root answered {value!r}")
    elif shape.kind == "link":
        visible = [obj for obj in candidates if world.reaches(viewer, obj)]
        assert len(visible) <= 1, visible
        if visible:
            run.check(visible[0], chosen, value, (name,), 0)
        elif value is not None:
            run.problem(f"expected null, got {value!r}")
    else:
        connection = shape.kind == "connection"
        run.check_collection(candidates, chosen, connection, value, (name,), 0, name)
    # Rows the root leaves out by construction (others' ledgers, requests, trails) are
    # withheld too; finish() proves none of their values is in the response.
    for obj in world.objects[shape.target].values():
        if obj not in candidates:
            run.hide(obj, 0)
    run.finish(body, text)


def expect_node(run: Run, obj: Obj, chosen: Selection, body: dict[str, Any], alias: str) -> None:
    value = (body.get("data") or {}).get(alias)
    if run.world.reaches(run.viewer, obj):
        run.check(obj, chosen, value, (alias,), 0)
        return
    run.expect_error((alias,), "NOT_FOUND")
    run.hide(obj, 0)
    if value is not None:
        run.problem(f"{alias}: {obj.type_name} {obj.key} is outside the rows, got {value!r}")


async def check_nodes(world: World, viewer: Viewer, type_name: str, tally: Tally) -> None:
    """Each object by node(id:), then in pairs through two aliases of node in one query."""
    chosen = selection(type_name)
    single = f"query($id: ID!) {{ node(id: $id) {{ ... on {type_name} {{ {chosen.render()} }} }} }}"
    # The pairs go one hop less deep: their point is two objects side by side in one request.
    paired = selection(type_name, HOPS - 1)
    fragment = f"__typename ... on {type_name} {{ {paired.render()} }}"
    pair = (
        "query($a: ID!, $b: ID!) { "
        + " ".join(f"{alias}: node(id: ${alias}) {{ {fragment} }}" for alias in ("a", "b"))
        + " }"
    )
    objects = sorted(world.objects[type_name].values(), key=lambda obj: obj.key)
    for index, obj in enumerate(objects):
        run = Run(world, viewer, "node", tally, f"node({obj.key})")
        body, text = await send(run, single, {"id": obj.gid})
        expect_node(run, obj, chosen, body, "node")
        run.finish(body, text)
        partner = objects[(index + 1) % len(objects)]
        run = Run(world, viewer, "alias", tally, f"a: node({obj.key}) b: node({partner.key})")
        body, text = await send(run, pair, {"a": obj.gid, "b": partner.gid})
        expect_node(run, obj, paired, body, "a")
        expect_node(run, partner, paired, body, "b")
        run.finish(body, text)


async def snapshot() -> dict[str, list[str]]:
    """Every row of every table but the audit trail (reads append to it by design)."""
    connection = Tortoise.get_connection("default")
    state = {}
    for model in Tortoise.apps["ocis"].values():
        table = model._meta.db_table
        if model is AuditEvent:
            continue
        rows = await connection.execute_query_dict(f'SELECT * FROM "{table}"')
        state[table] = sorted(repr(sorted(row.items())) for row in rows)
    return state


def policy_schema_mismatches() -> list[str]:
    found = []
    for type_name, rules in FIELD_POLICY.items():
        if type_name not in GQL.type_map:
            found.append(f"{type_name} is in the policy table but not in the schema")
            continue
        fields = set(object_type(type_name).fields)
        found += [f"{type_name}.{name} has no rule" for name in sorted(fields - set(rules))]
        found += [
            f"{type_name}.{name} is not in the schema" for name in sorted(set(rules) - fields)
        ]
    return found


@pytest.mark.promise("P19")
def test_the_policy_table_and_the_live_schema_name_the_same_fields() -> None:
    assert policy_schema_mismatches() == []


# Payloads whose only other fields are counts (sessions ended, notices marked read).
COUNTS_ONLY = frozenset(
    {
        "SignOutEverywhereSuccess",
        "DisableAccountSuccess",
        "MarkNoticesReadSuccess",
        "CredentialChanged",
        "TeamTicketCounts",
    }
)
# Answers that say only that something was done: flags, and one fixed sentence, the same for
# everyone (tests/test_local_accounts.py holds CheckYourMail to it).
FLAGS_ONLY = frozenset({"VerifyEmailSuccess", "EmailChanged", "RecordUsageSuccess"})
# Usage analytics (P09): a feature's name, a day and a count; no person, no time of day.
AGGREGATES = {"UsageCount": {"feature": "String", "day": "Date", "events": "Int"}}
FIXED_MESSAGES = frozenset({"CheckYourMail"})


# What OCIS publishes to everyone, written by staff about OCIS itself: no one's personal data.
PUBLISHED = frozenset({"PrivacyPolicy", "PolicyVersion", "Announcement", "Processor", "Campaign"})


def _holds_no_personal_data(gql_type: GraphQLObjectType) -> bool:
    fields = gql_type.fields
    if gql_type.name in {"Query", "Mutation", "Subscription", "PageInfo"} | PUBLISHED:
        return True
    if gql_type.name in COUNTS_ONLY:
        return all(get_named_type(f.type).name in {"ID", "Int"} for f in fields.values())
    if gql_type.name in FLAGS_ONLY:
        return all(get_named_type(f.type).name == "Boolean" for f in fields.values())
    if gql_type.name in FIXED_MESSAGES:
        return set(fields) == {"message"}
    if gql_type.name in AGGREGATES:
        named = {name: get_named_type(f.type).name for name, f in fields.items()}
        return named == AGGREGATES[gql_type.name]
    if any(interface.name == "UserError" for interface in gql_type.interfaces):
        return True
    if set(fields) == {"edges", "pageInfo"}:
        return True
    if set(fields) == {"node", "cursor"}:
        return get_named_type(fields["node"].type).name in FIELD_POLICY
    if gql_type.name.endswith("Success"):
        return all(
            get_named_type(f.type).name in {*FIELD_POLICY, *PUBLISHED, "ID"}
            for f in fields.values()
        )
    return False


@pytest.mark.promise("P19")
def test_every_object_type_is_in_the_policy_table_or_holds_no_personal_data() -> None:
    """A new type holding someone's data must get rules before it can ship."""
    unguarded = sorted(
        name
        for name, gql_type in GQL.type_map.items()
        if isinstance(gql_type, GraphQLObjectType)
        and not name.startswith("__")
        and name not in FIELD_POLICY
        and not _holds_no_personal_data(gql_type)
    )
    assert unguarded == []


@pytest.mark.promise("P19")
async def test_every_role_reads_exactly_what_the_policy_allows(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert policy_schema_mismatches() == []
    roots = personal_roots()
    for type_name, answered_by in CALLER_ONLY.items():
        for root in answered_by:
            assert roots.pop(root).target == type_name
    assert set(roots) == set(ROOTS), "a root query answers with personal data: add it to ROOTS"
    assert set(REACH) == set(world.viewers)
    tally = Tally()
    before = await snapshot()
    first_new_audit = max(obj.row.seq for obj in world.objects["AuditEntry"].values()) + 1

    # Audit roots first, while the trail holds few entries; then the other roots, then node.
    for name in sorted(ROOTS, key=lambda root: (roots[root].target != "AuditEntry", root)):
        for subject in ROOTS[name].subjects:
            for viewer in world.viewers.values():
                await check_root(world, viewer, name, subject, tally)
    for type_name in node_types():
        for viewer in world.viewers.values():
            await check_nodes(world, viewer, type_name, tally)

    assert await snapshot() == before, "a read changed the database"
    appended = await AuditEvent.filter(seq__gte=first_new_audit)
    assert {event.action for event in appended} <= {audit.READ_ACTION}
    assert (await audit_verify.verify_chain()).intact

    viewers = list(world.viewers.values())
    for type_name, rules in FIELD_POLICY.items():
        if type_name in CALLER_ONLY or not is_model_type(type_name):
            # A value type is compared whole inside its owner's allowed field (check, "value").
            continue
        objects = list(world.objects[type_name].values())
        if not objects:
            tally.problems.append(f"the world holds no {type_name}: extend build_world and REACH")
        for name, rule in rules.items():
            seen = tally.outcomes[(type_name, name)]
            can_deny = any(
                not rule(viewer.principal, world.relation_on(viewer, obj))
                for viewer in viewers
                for obj in objects
            )
            if not seen["allow"]:
                tally.problems.append(f"{type_name}.{name} was never read where allowed")
            if can_deny and not seen["forbidden"] + seen["hidden"]:
                tally.problems.append(f"{type_name}.{name} was never withheld where denied")
    for kind in ("direct", "nested", "node", "alias"):
        for outcome in ("allow", "forbidden", "hidden"):
            if not tally.by_path[(kind, outcome)]:
                tally.problems.append(f"no {outcome} case reached {kind}")

    outcomes = Counter[str]()
    for seen in tally.outcomes.values():
        outcomes.update(seen)

    def split(counts: Counter[tuple[str, str]], keys: tuple[str, ...]) -> str:
        return ", ".join(
            f"{key} {'/'.join(str(counts[(key, o)]) for o in ('allow', 'forbidden', 'hidden'))}"
            for key in keys
        )

    with capsys.disabled():
        print(  # noqa: T201 - the matrix size belongs in the test output
            f"\nneed-to-know matrix: {tally.cases} field-level cases in {tally.requests} requests"
            f" ({len(viewers)} viewers, {len(tally.outcomes)} fields of {len(FIELD_POLICY)} types):"
            f" allowed {outcomes['allow']}, forbidden {outcomes['forbidden']},"
            f" outside the rows {outcomes['hidden']}; problems {len(tally.problems)}"
            f"\n  allow/forbidden/hidden by path: "
            + split(tally.by_path, ("direct", "nested", "node", "alias"))
            + "; by relation: "
            + split(tally.by_relation, ("self", "related", "unrelated"))
        )
    if tally.problems:
        shown = "\n".join(sorted(set(tally.problems))[:80])
        pytest.fail(f"{len(tally.problems)} problems:\n{shown}", pytrace=False)
    assert tally.cases > MIN_CASES


async def test_messages_named_by_ticket_are_scoped_as_all_messages_are(world: World) -> None:
    """`readable_messages(on=...)` (the page loaders' query, its scope checked for the named
    tickets alone) reaches, for every viewer, exactly what the unnarrowed scope reaches among
    them, and REACH's messages when every ticket of the world is named."""
    tickets = [obj.row.id for obj in world.objects["Ticket"].values()]
    assert tickets
    by_id = {obj.row.id: key for key, obj in world.objects["TicketMessage"].items()}
    for key, viewer in world.viewers.items():
        every = {
            by_id[m.id]
            for m in await scoping.readable_messages(viewer.principal)
            if m.id in by_id and m.ticket_id in tickets
        }
        named = {
            by_id[m.id]
            for m in await scoping.readable_messages(viewer.principal, on=tickets)
            if m.id in by_id
        }
        reached = {
            name
            for name, obj in world.objects["TicketMessage"].items()
            if world.reaches(viewer, obj)
        }
        assert named == every == reached, key
        half = tickets[::2]
        narrowed = await scoping.readable_messages(viewer.principal, on=half)
        assert {by_id[m.id] for m in narrowed if m.id in by_id} == {
            name for name in every if world.objects["TicketMessage"][name].row.ticket_id in half
        }, key
