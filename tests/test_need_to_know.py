"""Need-to-know: field-level rules and row scoping, through GraphQL and as pure rules (P19)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import pytest

from auth.policy import FIELD_POLICY, Relation, may_read, reachable
from auth.principal import ANONYMOUS, Principal
from auth.scopes import DESCRIPTIONS, ROLE_SCOPES, STAFF_ROLES, Scope, scopes_for
from models import (
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestStatus,
    Role,
    Team,
    Ticket,
    TicketStatus,
    User,
    crypto,
)
from schema.relay import to_global_id
from tests.helpers import Api, user_by_email

AsUser = Callable[[str | None], Awaitable[Api]]

ADMIN = "admin@example.com"
PRIVACY = "privacy@example.com"
LEAD = "lead@example.com"
AGENT = "agent@example.com"
AGENT2 = "agent2@example.com"
CUSTOMER = "customer@example.com"
CUSTOMER2 = "customer2@example.com"
DEMO_EMAILS = [ADMIN, PRIVACY, LEAD, AGENT, AGENT2, CUSTOMER, CUSTOMER2]

DANA_EMAIL = "dana.doe@example.com"
DANA_NAME = "Dana Doe"
ERIN_EMAIL = "erin.emailer@example.com"
FRANK_EMAIL = "frank.fax@example.com"
FRANK_NAME = "Frank Fax"

TICKETS_WITH_PEOPLE = """
{
  tickets(first: 100) {
    edges { node { id subject status requesterName requesterEmail requester { name email } } }
  }
}
"""

NODE_USER = """
query ($id: ID!) {
  node(id: $id) {
    ... on User { id name email dateOfBirth paymentMethods { brand last4 } signIns { ipAddress } }
  }
}
"""

USERS = "{ users(first: 50) { edges { node { id name email } } } }"


async def user_gid(email: str) -> str:
    return str(to_global_id("User", (await user_by_email(email)).id))


async def ticket_gid(subject: str) -> str:
    matches = [ticket for ticket in await Ticket.all() if ticket.subject == subject]
    assert len(matches) == 1, subject
    return str(to_global_id("Ticket", matches[0].id))


def denials(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    return sorted(
        (tuple(error["path"]), error["extensions"]["code"]) for error in body.get("errors", [])
    )


def by_subject(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {edge["node"]["subject"]: edge["node"] for edge in body["data"]["tickets"]["edges"]}


async def add_outsiders() -> None:
    """Team tickets out of the queue (solved) and requesters known only by email."""
    team = await Team.get(name="Support")
    dana = User(name=DANA_NAME, roles=[Role.CUSTOMER.value], date_of_birth="1985-03-04")
    dana.set_email(DANA_EMAIL)
    await dana.save()
    await Ticket.create(
        subject="Dana's solved ticket", requester=dana, team=team, status=TicketStatus.SOLVED
    )
    await Ticket.create(
        subject="Erin wrote in",
        requester_name="Erin Emailer",
        requester_email=ERIN_EMAIL,
        requester_email_index=crypto.blind_index(ERIN_EMAIL),
        team=team,
        status=TicketStatus.OPEN,
    )
    await Ticket.create(
        subject="Frank wrote in",
        requester_name=FRANK_NAME,
        requester_email=FRANK_EMAIL,
        requester_email_index=crypto.blind_index(FRANK_EMAIL),
        team=team,
        status=TicketStatus.SOLVED,
    )


# Staff working tickets


@pytest.mark.promise("P19")
async def test_assigned_agent_sees_the_requesters_contact_details(as_user: AsUser) -> None:
    agent = await as_user(AGENT)
    body = await agent.gql(
        "query ($id: ID!) { node(id: $id) { ... on Ticket { subject requester { name email } } } }",
        {"id": await ticket_gid("Cannot reset my password")},
    )
    assert body == {
        "data": {
            "node": {
                "subject": "Cannot reset my password",
                "requester": {"name": "Carla Customer", "email": CUSTOMER},
            }
        }
    }


@pytest.mark.promise("P19")
async def test_team_agent_sees_contacts_only_for_queued_tickets(as_user: AsUser) -> None:
    await add_outsiders()
    agent2 = await as_user(AGENT2)
    response = await agent2.post(TICKETS_WITH_PEOPLE)
    body = response.json()
    assert "errors" not in body, body
    tickets = by_subject(body)
    assert sorted(tickets) == [
        "App crashes on start",
        "Cannot reset my password",
        "Erin wrote in",
        "How do I export my data?",
        "Invoice shows the wrong address",
    ]
    assert {subject: node["status"] for subject, node in tickets.items()} == {
        "App crashes on start": "OPEN",
        "Cannot reset my password": "OPEN",
        "Erin wrote in": "OPEN",
        "How do I export my data?": "OPEN",
        "Invoice shows the wrong address": "PENDING",
    }
    for subject in ("Cannot reset my password", "How do I export my data?"):
        assert tickets[subject]["requester"] == {"name": "Carla Customer", "email": CUSTOMER}
    assert tickets["App crashes on start"]["requester"] == {
        "name": "Chris Customer",
        "email": CUSTOMER2,
    }
    assert tickets["Invoice shows the wrong address"]["requester"]["email"] == CUSTOMER
    assert tickets["Erin wrote in"]["requester"] is None
    assert tickets["Erin wrote in"]["requesterEmail"] == ERIN_EMAIL
    assert tickets["Erin wrote in"]["requesterName"] == "Erin Emailer"
    for secret in (DANA_EMAIL, DANA_NAME, FRANK_EMAIL, FRANK_NAME, "Feature request: dark mode"):
        assert secret not in response.text

    for out_of_queue in ("Feature request: dark mode", "Dana's solved ticket", "Frank wrote in"):
        reached = await agent2.post(
            "query ($id: ID!) { node(id: $id) { ... on Ticket { subject requesterEmail } } }",
            {"id": await ticket_gid(out_of_queue)},
        )
        assert reached.json()["data"] == {"node": None}
        assert denials(reached.json()) == [(("node",), "NOT_FOUND")]
        assert out_of_queue not in reached.text
        assert FRANK_EMAIL not in reached.text

    dana = await agent2.post(NODE_USER, {"id": await user_gid(DANA_EMAIL)})
    assert dana.json()["data"] == {"node": None}
    assert denials(dana.json()) == [(("node",), "NOT_FOUND")]
    assert DANA_EMAIL not in dana.text
    assert DANA_NAME not in dana.text


@pytest.mark.promise("P19")
async def test_team_lead_reads_solved_team_tickets_without_contact_details(
    as_user: AsUser,
) -> None:
    await add_outsiders()
    lead = await as_user(LEAD)
    response = await lead.post(TICKETS_WITH_PEOPLE)
    body = response.json()
    tickets = by_subject(body)
    assert "Dana's solved ticket" in tickets
    assert "Frank wrote in" in tickets
    paths = {
        subject: ["tickets", "edges", index, "node"]
        for index, subject in enumerate(
            edge["node"]["subject"] for edge in body["data"]["tickets"]["edges"]
        )
    }
    assert tickets["Dana's solved ticket"]["requester"] == {"name": None, "email": None}
    assert tickets["Frank wrote in"]["requesterEmail"] is None
    assert tickets["Frank wrote in"]["requesterName"] is None
    assert tickets["Erin wrote in"]["requesterEmail"] == ERIN_EMAIL
    solved = ["Dana's solved ticket", "Frank wrote in", "Feature request: dark mode"]
    assert sorted(s for s, node in tickets.items() if node["status"] == "SOLVED") == sorted(solved)
    # Contact rights follow the person (the lead works another ticket of Chris's).
    expected = [
        ((*paths[subject], field), "FORBIDDEN")
        for subject in ("Dana's solved ticket", "Frank wrote in")
        for field in ("requesterName", "requesterEmail")
    ]
    expected += [
        ((*paths["Dana's solved ticket"], "requester", field), "FORBIDDEN")
        for field in ("name", "email")
    ]
    assert denials(body) == sorted(expected)
    # Contact rights follow the person: the lead also works Chris's open "App crashes" ticket.
    assert tickets["Feature request: dark mode"]["requester"] == {
        "name": "Chris Customer",
        "email": CUSTOMER2,
    }
    for secret in (DANA_EMAIL, DANA_NAME, FRANK_EMAIL, FRANK_NAME):
        assert secret not in response.text

    admin = await as_user(ADMIN)
    everything = await admin.gql(TICKETS_WITH_PEOPLE)
    assert "errors" not in everything
    assert by_subject(everything)["Frank wrote in"]["requesterEmail"] == FRANK_EMAIL
    assert by_subject(everything)["Dana's solved ticket"]["requester"] == {
        "name": DANA_NAME,
        "email": DANA_EMAIL,
    }


@pytest.mark.promise("P19")
async def test_customer_sees_the_assignees_name_but_not_their_email(as_user: AsUser) -> None:
    customer = await as_user(CUSTOMER)
    response = await customer.post(
        """
        query ($id: ID!) {
          node(id: $id) { ... on Ticket { subject status assignee { name email } } }
        }
        """,
        {"id": await ticket_gid("Cannot reset my password")},
    )
    body = response.json()
    assert body["data"] == {
        "node": {
            "subject": "Cannot reset my password",
            "status": "OPEN",
            "assignee": {"name": "Alex Agent", "email": None},
        }
    }
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"][-2:] == ["assignee", "email"]
    assert error["path"] == ["node", "assignee", "email"]
    assert AGENT not in response.text

    listed = await customer.post(
        "{ tickets { edges { node { subject assignee { name email } } } } }"
    )
    assert AGENT not in listed.text
    assert denials(listed.json()) == [
        (("tickets", "edges", index, "node", "assignee", "email"), "FORBIDDEN")
        for index, edge in enumerate(listed.json()["data"]["tickets"]["edges"])
        if edge["node"]["assignee"] is not None
    ]
    assert len(denials(listed.json())) == 2


# The account directory


async def _directory_rows(api: Api) -> tuple[dict[str, Any], str]:
    response = await api.post(USERS)
    assert response.status_code == 200
    return response.json(), response.text


async def _expected_rows(
    body: dict[str, Any], visible: dict[str, tuple[str | None, str | None]]
) -> tuple[list[tuple[str | None, str | None]], list[tuple[tuple[str | int, ...], str]]]:
    """What each directory row should show, in the order returned, and the denials."""
    by_gid = {await user_gid(email): email for email in DEMO_EMAILS}
    rows: list[tuple[str | None, str | None]] = []
    errors: list[tuple[tuple[str | int, ...], str]] = []
    for index, edge in enumerate(body["data"]["users"]["edges"]):
        name, email = visible[by_gid[edge["node"]["id"]]]
        rows.append((name, email))
        for field, value in (("name", name), ("email", email)):
            if value is None:
                errors.append((("users", "edges", index, "node", field), "FORBIDDEN"))
    return rows, sorted(errors)


NAMES = {
    ADMIN: "Ada Admin",
    PRIVACY: "Priya Privacy",
    LEAD: "Lena Lead",
    AGENT: "Alex Agent",
    AGENT2: "Sam Agent",
    CUSTOMER: "Carla Customer",
    CUSTOMER2: "Chris Customer",
}


@pytest.mark.promise("P19")
async def test_admin_directory_shows_every_account(as_user: AsUser) -> None:
    admin = await as_user(ADMIN)
    body, _ = await _directory_rows(admin)
    assert "errors" not in body
    rows, errors = await _expected_rows(
        body, {email: (NAMES[email], email) for email in DEMO_EMAILS}
    )
    assert [
        (edge["node"]["name"], edge["node"]["email"]) for edge in body["data"]["users"]["edges"]
    ] == rows
    assert errors == []
    assert len(rows) == 7


@pytest.mark.promise("P19")
async def test_privacy_officer_sees_contacts_only_of_open_request_subjects(
    as_user: AsUser,
) -> None:
    officer = await as_user(PRIVACY)

    def visible(customer_visible: bool) -> dict[str, tuple[str | None, str | None]]:
        return {
            ADMIN: (NAMES[ADMIN], None),
            PRIVACY: (NAMES[PRIVACY], PRIVACY),
            LEAD: (NAMES[LEAD], None),
            AGENT: (NAMES[AGENT], None),
            AGENT2: (NAMES[AGENT2], None),
            CUSTOMER: (NAMES[CUSTOMER], CUSTOMER) if customer_visible else (None, None),
            CUSTOMER2: (None, None),
        }

    async def check(customer_visible: bool) -> None:
        body, text = await _directory_rows(officer)
        rows, errors = await _expected_rows(body, visible(customer_visible))
        returned = [(e["node"]["name"], e["node"]["email"]) for e in body["data"]["users"]["edges"]]
        assert returned == rows
        assert denials(body) == errors
        for secret in (ADMIN, LEAD, AGENT, AGENT2, CUSTOMER2, NAMES[CUSTOMER2]):
            assert secret not in text
        assert (CUSTOMER in text) is customer_visible

    await check(customer_visible=False)

    customer = await as_user(CUSTOMER)
    submitted = await customer.gql(
        'mutation { submitPrivacyRequest(input: {kind: ACCESS, details: "All of it"}) {'
        " __typename } }"
    )
    assert submitted == {"data": {"submitPrivacyRequest": {"__typename": "PrivacyRequestSuccess"}}}
    await check(customer_visible=True)

    await PrivacyRequest.all().update(status=PrivacyRequestStatus.COMPLETED)
    await check(customer_visible=False)


@pytest.mark.promise("P19")
@pytest.mark.parametrize("email", [CUSTOMER, CUSTOMER2, AGENT, AGENT2, None])
async def test_directory_is_refused_without_the_directory_scope(
    as_user: AsUser, email: str | None
) -> None:
    api = await as_user(email)
    response = await api.post(USERS)
    body = response.json()
    assert body["data"] == {"users": None}
    assert denials(body) == [(("users",), "FORBIDDEN")]
    for other in DEMO_EMAILS:
        assert other not in response.text
    for name in NAMES.values():
        assert name not in response.text


# The owner's own data


async def _give_customer_private_data() -> User:
    customer = await user_by_email(CUSTOMER)
    customer.date_of_birth = "1987-06-05"
    await customer.save(update_fields=["date_of_birth"])
    await PaymentMethod.create(
        user=customer,
        gateway_token="tok_gateway_abcdefgh",
        brand="amex",
        last4="7351",
        exp_month=9,
        exp_year=2044,
    )
    return customer


@pytest.mark.promise("P19")
async def test_owner_reads_their_own_private_data(as_user: AsUser) -> None:
    await _give_customer_private_data()
    customer = await as_user(CUSTOMER)
    body = await customer.gql(
        """
        { me {
            name email dateOfBirth
            paymentMethods { brand last4 expMonth expYear }
            signIns { method ipAddress current }
        } }
        """
    )
    assert body == {
        "data": {
            "me": {
                "name": "Carla Customer",
                "email": CUSTOMER,
                "dateOfBirth": "1987-06-05",
                "paymentMethods": [
                    {"brand": "amex", "last4": "7351", "expMonth": 9, "expYear": 2044}
                ],
                "signIns": [{"method": "password", "ipAddress": "203.0.113.7", "current": True}],
            }
        }
    }


@pytest.mark.promise("P19")
async def test_admin_cannot_read_owner_only_fields_of_another_account(as_user: AsUser) -> None:
    await _give_customer_private_data()
    await as_user(CUSTOMER)
    admin = await as_user(ADMIN)
    response = await admin.post(NODE_USER, {"id": await user_gid(CUSTOMER)})
    body = response.json()
    assert body["data"] == {
        "node": {
            "id": await user_gid(CUSTOMER),
            "name": "Carla Customer",
            "email": CUSTOMER,
            "dateOfBirth": None,
            "paymentMethods": None,
            "signIns": [{"ipAddress": "203.0.113.7"}],
        }
    }
    assert denials(body) == [
        (("node", "dateOfBirth"), "FORBIDDEN"),
        (("node", "paymentMethods"), "FORBIDDEN"),
    ]
    for secret in ("1987-06-05", "7351", "amex", "tok_gateway_abcdefgh"):
        assert secret not in response.text

    # last4 is sealed (no lookup by it): the customer's one payment method.
    method = await PaymentMethod.get(gateway_token__isnull=False)
    direct = await admin.post(
        "query ($id: ID!) { node(id: $id) { ... on PaymentMethod { brand last4 } } }",
        {"id": str(to_global_id("PaymentMethod", method.id))},
    )
    assert direct.json()["data"] == {"node": None}
    assert denials(direct.json()) == [(("node",), "NOT_FOUND")]
    assert "7351" not in direct.text


@pytest.mark.promise("P19")
async def test_working_agent_reads_contact_but_not_private_data(as_user: AsUser) -> None:
    await _give_customer_private_data()
    await as_user(CUSTOMER)
    agent = await as_user(AGENT)
    response = await agent.post(NODE_USER, {"id": await user_gid(CUSTOMER)})
    body = response.json()
    assert body["data"]["node"]["email"] == CUSTOMER
    assert body["data"]["node"]["dateOfBirth"] is None
    assert body["data"]["node"]["paymentMethods"] is None
    assert body["data"]["node"]["signIns"] is None
    assert denials(body) == [
        (("node", "dateOfBirth"), "FORBIDDEN"),
        (("node", "paymentMethods"), "FORBIDDEN"),
        (("node", "signIns"), "FORBIDDEN"),
    ]
    for secret in ("1987-06-05", "7351", "203.0.113.7"):
        assert secret not in response.text


# Aliases and fragments


@pytest.mark.promise("P19")
async def test_aliases_and_fragments_do_not_bypass_field_rules(as_user: AsUser) -> None:
    customer = await as_user(CUSTOMER)
    agent_id = await user_gid(AGENT)
    response = await customer.post(
        """
        query ($x: ID!) {
          a: node(id: $x) { ... on User { name email } }
          b: node(id: $x) { ... on User { mail: email phone } }
          c: node(id: $x) { ...Contact }
        }
        fragment Contact on User { e1: email e2: email }
        """,
        {"x": agent_id},
    )
    body = response.json()
    assert body["data"] == {
        "a": {"name": "Alex Agent", "email": None},
        "b": {"mail": None, "phone": None},
        "c": {"e1": None, "e2": None},
    }
    assert denials(body) == sorted(
        [
            (("a", "email"), "FORBIDDEN"),
            (("b", "mail"), "FORBIDDEN"),
            (("b", "phone"), "FORBIDDEN"),
            (("c", "e1"), "FORBIDDEN"),
            (("c", "e2"), "FORBIDDEN"),
        ]
    )
    assert AGENT not in response.text


@pytest.mark.promise("P19")
async def test_aliases_do_not_reach_objects_out_of_scope(as_user: AsUser) -> None:
    customer = await as_user(CUSTOMER)
    stranger = await user_gid(CUSTOMER2)
    ticket = await ticket_gid("App crashes on start")
    response = await customer.post(
        """
        query ($u: ID!, $t: ID!) {
          a: node(id: $u) { ... on User { name email } }
          b: node(id: $u) { id }
          c: node(id: $t) { ... on Ticket { subject requester { email } } }
          me { name }
        }
        """,
        {"u": stranger, "t": ticket},
    )
    body = response.json()
    assert body["data"] == {"a": None, "b": None, "c": None, "me": {"name": "Carla Customer"}}
    assert denials(body) == [(("a",), "NOT_FOUND"), (("b",), "NOT_FOUND"), (("c",), "NOT_FOUND")]
    for secret in (CUSTOMER2, NAMES[CUSTOMER2], "App crashes on start"):
        assert secret not in response.text


# The rules themselves, without GraphQL

STRANGER = Relation()
SELF = Relation(is_self=True)
WORKS = Relation(works_their_ticket=True)
HANDLES = Relation(handles_their_privacy_request=True)
STAFF_SUBJECT = Relation(subject_is_staff=True)
RELATION_NAMES = {
    STRANGER: "stranger",
    SELF: "self",
    WORKS: "works",
    HANDLES: "handles",
    STAFF_SUBJECT: "staff-subject",
}

C, A, L, P, D = (
    Role.CUSTOMER,
    Role.AGENT,
    Role.TEAM_LEAD,
    Role.PRIVACY_OFFICER,
    Role.ADMINISTRATOR,
)
EVERYONE = frozenset(Role)

MATRIX: list[tuple[str, str, Relation, frozenset[Role]]] = [
    ("User", "email", STRANGER, frozenset({D})),
    ("User", "email", SELF, EVERYONE),
    ("User", "email", WORKS, frozenset({A, L, D})),
    ("User", "email", HANDLES, frozenset({P, D})),
    ("User", "email", STAFF_SUBJECT, frozenset({D})),
    ("User", "phone", WORKS, frozenset({A, L, D})),
    ("User", "name", STRANGER, frozenset({D})),
    ("User", "name", SELF, EVERYONE),
    ("User", "name", WORKS, frozenset({A, L, D})),
    ("User", "name", HANDLES, frozenset({P, D})),
    ("User", "name", STAFF_SUBJECT, EVERYONE),
    ("User", "dateOfBirth", STRANGER, frozenset()),
    ("User", "dateOfBirth", SELF, EVERYONE),
    ("User", "dateOfBirth", WORKS, frozenset()),
    ("User", "dateOfBirth", HANDLES, frozenset()),
    ("User", "paymentMethods", STRANGER, frozenset()),
    ("User", "paymentMethods", SELF, EVERYONE),
    ("User", "paymentMethods", WORKS, frozenset()),
    ("User", "signIns", STRANGER, frozenset({D})),
    ("User", "signIns", SELF, EVERYONE),
    ("User", "signIns", WORKS, frozenset({D})),
    ("User", "username", STRANGER, frozenset({D})),
    ("User", "roles", WORKS, frozenset({D})),
    ("Ticket", "requesterEmail", STRANGER, frozenset({D})),
    ("Ticket", "requesterEmail", WORKS, frozenset({A, L, D})),
    ("Ticket", "subject", STRANGER, EVERYONE),
    ("PaymentMethod", "last4", STRANGER, frozenset()),
    ("PaymentMethod", "last4", SELF, EVERYONE),
    ("SignIn", "ipAddress", STRANGER, frozenset({D})),
    ("PrivacyRequest", "details", STRANGER, frozenset({P})),
    ("PrivacyRequest", "details", SELF, EVERYONE),
    ("ConsentEntry", "purpose", STRANGER, frozenset({P})),  # P05: the officer reads the ledger
    ("ConsentEntry", "purpose", SELF, EVERYONE),
]


@pytest.mark.promise("P19")
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(
    ("type_name", "field", "relation", "allowed"),
    MATRIX,
    ids=[f"{t}.{f}-{RELATION_NAMES[r]}" for t, f, r, _ in MATRIX],
)
def test_policy_matrix(
    role: Role, type_name: str, field: str, relation: Relation, allowed: frozenset[Role]
) -> None:
    principal = Principal.for_user(uuid4(), frozenset({role}), uuid4())
    assert may_read(type_name, field, principal, relation) is (role in allowed)


@pytest.mark.parametrize("relation", [STRANGER, WORKS, HANDLES, STAFF_SUBJECT])
def test_anonymous_reads_no_personal_data(relation: Relation) -> None:
    for type_name, rules in FIELD_POLICY.items():
        for field, rule in rules.items():
            if rule is reachable:
                continue
            assert may_read(type_name, field, ANONYMOUS, relation) is False, (type_name, field)


def test_fields_without_a_rule_are_never_readable() -> None:
    admin = Principal.for_user(uuid4(), frozenset(Role), None)
    assert may_read("User", "passwordHash", admin, SELF) is False
    assert may_read("User", "emailIndex", admin, SELF) is False
    assert may_read("Invoice", "id", admin, SELF) is False


def test_only_ids_of_people_are_open_to_anyone_who_reaches_them() -> None:
    for type_name in ("User", "SignIn", "PaymentMethod", "PrivacyRequest", "ConsentEntry"):
        open_fields = {name for name, rule in FIELD_POLICY[type_name].items() if rule is reachable}
        assert open_fields == {"id"}, type_name


def test_customers_hold_only_their_own_tickets_scope() -> None:
    assert ROLE_SCOPES[Role.CUSTOMER] == frozenset({Scope.TICKETS_OWN})


@pytest.mark.parametrize(
    ("scope", "holders"),
    [
        (Scope.USERS_PERSONAL_DATA, {D}),
        (Scope.SECURITY_METADATA, {D}),
        (Scope.TICKETS_ALL, {D}),
        (Scope.PRIVACY_REQUESTS, {P}),
        (Scope.TICKETS_ASSIGN, {L, D}),
        (Scope.TICKETS_TEAM, {L}),
        (Scope.NOTES_INTERNAL, {A, L}),
        (Scope.CONTACT_NEED_TO_KNOW, {A, L}),
        (Scope.TICKETS_WORK, {A, L}),
        (Scope.USERS_DIRECTORY, {L, P, D}),
        (Scope.TICKETS_OWN, {C}),
        (Scope.STAFF_ADMIN, {D}),
        (Scope.POLICY_PUBLISH, {D}),
        (Scope.NOTICES_ANNOUNCE, {D}),
        (Scope.PROCESSORS_MANAGE, {P}),
        (Scope.MARKETING_SEND, {D}),
    ],
)
def test_each_scope_goes_to_exactly_these_roles(scope: Scope, holders: set[Role]) -> None:
    assert {role for role, scopes in ROLE_SCOPES.items() if scope in scopes} == holders


def test_every_role_has_scopes_and_every_scope_is_described() -> None:
    assert set(ROLE_SCOPES) == set(Role)
    assert set(DESCRIPTIONS) == set(Scope)
    for scope in Scope:
        resource, _, action = scope.value.partition(":")
        assert resource, scope
        assert action, scope
        assert DESCRIPTIONS[scope].strip()


def test_scopes_of_several_roles_are_their_union() -> None:
    assert scopes_for(frozenset({C, P})) == ROLE_SCOPES[C] | ROLE_SCOPES[P]
    assert scopes_for(frozenset()) == frozenset()
    assert STAFF_ROLES == frozenset({A, L, P, D})
    assert Principal.for_user(uuid4(), frozenset({C}), None).is_staff is False
    assert Principal.for_user(uuid4(), frozenset({P}), None).is_staff is True
    assert ANONYMOUS.scopes == frozenset()


async def test_directory_filters_by_role_and_status(as_user: Any) -> None:
    admin = await as_user("admin@example.com")
    query = (
        "query($role: Role) { users(first: 100, filter: {role: $role})"
        " { edges { node { email } } } }"
    )
    agents = await admin.gql(query, {"role": "AGENT"})
    assert agents.get("errors") is None, agents
    emails = sorted(edge["node"]["email"] for edge in agents["data"]["users"]["edges"])
    assert emails == ["agent2@example.com", "agent@example.com"]
    everyone = await admin.gql(query, {"role": None})
    assert len(everyone["data"]["users"]["edges"]) == 7
    restricted = await admin.gql(
        "{ users(first: 100, filter: {status: RESTRICTED}) { edges { node { email } } } }"
    )
    assert restricted["data"]["users"]["edges"] == []
