"""Queues and routing (issue #10 item 2): which team a ticket joins, queues, counts, moves."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

import settings as config
from auth.passwords import hash_password
from models import (
    AuditEvent,
    Channel,
    Role,
    Team,
    Ticket,
    TicketMessage,
    TicketPriority,
    TicketStatus,
    User,
)
from resolvers import queues
from schema.relay import to_global_id
from tests.helpers import DEMO_PASSWORD, Api, StatementCounter, user_by_email

AsUser = Callable[[str | None], Awaitable[Api]]

CUSTOMER = "customer@example.com"
AGENT = "agent@example.com"
AGENT2 = "agent2@example.com"
LEAD = "lead@example.com"
ADMIN = "admin@example.com"
PRIVACY = "privacy@example.com"
BILLING_AGENT = "billing-agent@example.com"
BILLING_LEAD = "billing-lead@example.com"

QUEUE = """
query ($team: ID!, $first: Int, $after: String) {
  teamQueue(teamId: $team, first: $first, after: $after) {
    edges { cursor node { id subject priority status assignee { name } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

MINE = """
query ($first: Int, $after: String) {
  myOpenTickets(first: $first, after: $after) {
    edges { node { subject status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

COUNTS = """
query ($team: ID) {
  ticketCounts(teamId: $team) { teamId open pending solved closed }
}
"""

RESULT = """
    __typename
    ... on TicketSuccess { ticket { id subject assignee { name } } }
    ... on UserError { code message }
    ... on InvalidInputError { field }
    ... on NotFoundError { field }
"""

MOVE = (
    "mutation ($ticket: ID!, $team: ID!) { moveTicket(input: {ticketId: $ticket, teamId: $team})"
    " {" + RESULT + "} }"
)

ASSIGN = (
    "mutation ($ticket: ID!, $to: ID) { assignTicket(input: {ticketId: $ticket, assigneeId: $to})"
    " {" + RESULT + "} }"
)

CREATE = """
mutation ($subject: String!, $channel: Channel!) {
  createTicket(input: {subject: $subject, body: "Hello", channel: $channel}) { __typename }
}
"""

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class World:
    teams: dict[str, Team] = field(default_factory=dict)
    tickets: dict[str, Ticket] = field(default_factory=dict)

    def team_id(self, name: str) -> str:
        return str(to_global_id("Team", self.teams[name].id))

    def ticket_id(self, subject: str) -> str:
        return str(to_global_id("Ticket", self.tickets[subject].id))


async def add_staff(email: str, name: str, role: Role, team: Team) -> User:
    user = User(
        name=name,
        password_hash=await hash_password(DEMO_PASSWORD),
        roles=[role.value],
        team=team,
        email_verified_at=datetime.now(UTC),
    )
    user.set_email(email)
    await user.save()
    return user


async def add_ticket(
    world: World,
    subject: str,
    *,
    team: str = "Support",
    priority: TicketPriority = TicketPriority.NORMAL,
    assignee: str | None = None,
    hours_old: float = 1,
    status: TicketStatus = TicketStatus.OPEN,
) -> Ticket:
    customer = await user_by_email(CUSTOMER)
    ticket = await Ticket.create(
        subject=subject,
        requester=customer,
        team=world.teams[team],
        priority=priority,
        status=status,
        assignee=await user_by_email(assignee) if assignee else None,
    )
    created = NOW - timedelta(hours=hours_old)
    await Ticket.filter(id=ticket.id).update(created_at=created)
    ticket.created_at = created
    await TicketMessage.create(ticket=ticket, author=customer, body=f"About {subject}")
    world.tickets[subject] = ticket
    return ticket


@pytest.fixture
async def world(as_user: AsUser) -> World:
    """Support (the demo team, its demo tickets removed), Billing with its own staff, Empty."""
    built = World()
    built.teams["Support"] = await Team.get(name="Support")
    await Ticket.filter(team_id=built.teams["Support"].id).delete()
    built.teams["Billing"] = await Team.create(name="Billing")
    built.teams["Empty"] = await Team.create(name="Empty")
    await add_staff(BILLING_AGENT, "Bill Agent", Role.AGENT, built.teams["Billing"])
    await add_staff(BILLING_LEAD, "Bea Lead", Role.TEAM_LEAD, built.teams["Billing"])
    return built


# (subject, priority, assignee, hours old, status); the expected queue order is QUEUE_ORDER.
QUEUE_TICKETS: list[tuple[str, TicketPriority, str | None, float, TicketStatus]] = [
    ("unassigned urgent new", TicketPriority.URGENT, None, 1, TicketStatus.OPEN),
    ("unassigned urgent old", TicketPriority.URGENT, None, 5, TicketStatus.OPEN),
    ("unassigned low oldest", TicketPriority.LOW, None, 30, TicketStatus.OPEN),
    ("unassigned normal", TicketPriority.NORMAL, None, 3, TicketStatus.OPEN),
    ("unassigned normal pending", TicketPriority.NORMAL, None, 6, TicketStatus.PENDING),
    ("unassigned high", TicketPriority.HIGH, None, 2, TicketStatus.OPEN),
    ("assigned urgent", TicketPriority.URGENT, AGENT, 1, TicketStatus.OPEN),
    ("assigned low old", TicketPriority.LOW, AGENT, 20, TicketStatus.OPEN),
    ("assigned normal", TicketPriority.NORMAL, AGENT2, 4, TicketStatus.OPEN),
    ("assigned high older", TicketPriority.HIGH, AGENT2, 9, TicketStatus.PENDING),
    ("assigned high newer", TicketPriority.HIGH, AGENT, 8, TicketStatus.OPEN),
    ("solved, out of the queue", TicketPriority.URGENT, None, 40, TicketStatus.SOLVED),
    ("closed, out of the queue", TicketPriority.URGENT, AGENT, 50, TicketStatus.CLOSED),
]
QUEUE_ORDER = [
    "unassigned urgent old",
    "unassigned urgent new",
    "unassigned high",
    "unassigned normal pending",
    "unassigned normal",
    "unassigned low oldest",
    "assigned urgent",
    "assigned high older",
    "assigned high newer",
    "assigned normal",
    "assigned low old",
]


async def build_queue(world: World) -> None:
    for subject, priority, assignee, hours, status in QUEUE_TICKETS:
        await add_ticket(
            world, subject, priority=priority, assignee=assignee, hours_old=hours, status=status
        )
    await add_ticket(
        world, "billing urgent", team="Billing", priority=TicketPriority.URGENT, hours_old=0.5
    )


def page_subjects(body: dict[str, Any], name: str = "teamQueue") -> list[str]:
    assert "errors" not in body, body
    return [edge["node"]["subject"] for edge in body["data"][name]["edges"]]


def refused(body: dict[str, Any], name: str) -> str:
    """The one coded error of a refused query field, which answers null."""
    assert body["data"] == {name: None}, body
    (error,) = body["errors"]
    assert error["path"] == [name]
    code: str = error["extensions"]["code"]
    return code


async def ticket_state(ticket: Ticket) -> tuple[UUID | None, UUID | None]:
    row = await Ticket.get(id=ticket.id)
    return row.team_id, row.assignee_id


# Routing


def with_routing(app: Any, routing: config.Routing) -> None:
    app.state.settings = replace(app.state.settings, routing=routing)


async def create_as(api: Api, subject: str, channel: str) -> Ticket:
    body = await api.gql(CREATE, {"subject": subject, "channel": channel})
    assert body["data"]["createTicket"]["__typename"] == "TicketSuccess", body
    (ticket,) = [row for row in await Ticket.all() if row.subject == subject]
    return ticket


async def test_a_new_ticket_joins_the_team_its_channel_routes_to(
    app: Any, world: World, as_user: AsUser
) -> None:
    with_routing(app, config.Routing(by_channel={"email": "Billing", "web": "Support"}))
    customer = await as_user(CUSTOMER)
    # Customers cannot choose the email channel: staff log what came in by mail.
    by_mail = await create_as(await as_user(AGENT), "By mail", "EMAIL")
    customer = await as_user(CUSTOMER)
    on_web = await create_as(customer, "On the web", "WEB")
    from_app = await create_as(customer, "From the app", "MOBILE")
    assert by_mail.team_id == world.teams["Billing"].id
    assert on_web.team_id == world.teams["Support"].id
    # Mobile is not routed and no default is set: as before, the oldest team.
    assert from_app.team_id == world.teams["Support"].id

    billing = await as_user(BILLING_AGENT)
    body = await billing.gql(QUEUE, {"team": world.team_id("Billing")})
    assert page_subjects(body) == ["By mail"]


async def test_an_unrouted_channel_joins_the_default_team_even_for_staff(
    app: Any, world: World, as_user: AsUser
) -> None:
    with_routing(app, config.Routing(by_channel={"email": "Support"}, default_team="Billing"))
    customer = await as_user(CUSTOMER)
    assert (await create_as(customer, "Web", "WEB")).team_id == world.teams["Billing"].id
    mail = await create_as(await as_user(AGENT), "Mail", "EMAIL")
    assert mail.team_id == world.teams["Support"].id
    # The routing wins over the opener's own team.
    agent = await as_user(AGENT)
    assert (await create_as(agent, "Agent's", "MOBILE")).team_id == world.teams["Billing"].id


async def test_a_routed_team_that_does_not_exist_falls_back_then_joins_none(
    app: Any, world: World, as_user: AsUser, caplog: pytest.LogCaptureFixture
) -> None:
    customer = await as_user(CUSTOMER)
    with_routing(app, config.Routing(by_channel={"web": "Nowhere"}, default_team="Billing"))
    with caplog.at_level(logging.WARNING, logger="ocis.queues"):
        fallback = await create_as(customer, "Falls back", "WEB")
    assert fallback.team_id == world.teams["Billing"].id

    with_routing(app, config.Routing(by_channel={"web": "Nowhere"}, default_team="Gone"))
    with caplog.at_level(logging.WARNING, logger="ocis.queues"):
        lost = await create_as(customer, "Joins none", "WEB")
    assert lost.team_id is None
    warnings = [record.getMessage() for record in caplog.records if record.name == "ocis.queues"]
    assert warnings == [
        "routing: no team named 'Nowhere'; the ticket joins 'Billing'",
        "routing: no team named Nowhere or Gone; the ticket joins no team",
    ]
    assert not any(CUSTOMER in text or "Joins none" in text for text in caplog.messages)
    # It is in no team's queue; administrators still reach it.
    admin = await as_user(ADMIN)
    for team in world.teams:
        assert "Joins none" not in page_subjects(
            await admin.gql(QUEUE, {"team": world.team_id(team)})
        )
    node = await admin.gql(
        "query ($id: ID!) { node(id: $id) { ... on Ticket { subject } } }",
        {"id": str(to_global_id("Ticket", lost.id))},
    )
    assert node == {"data": {"node": {"subject": "Joins none"}}}


async def test_an_archived_team_takes_no_new_tickets_by_routing_or_by_move(
    app: Any, world: World, as_user: AsUser
) -> None:
    await build_queue(world)
    billing = world.teams["Billing"]
    await Team.filter(id=billing.id).update(archived_at=datetime.now(UTC))
    # Routed to it, or its people's own team: the ticket goes elsewhere, as for a missing team.
    with_routing(app, config.Routing(by_channel={"email": "Billing"}, default_team="Support"))
    agent = await as_user(AGENT)
    assert (await create_as(agent, "Routed away", "EMAIL")).team_id == world.teams["Support"].id
    with_routing(app, config.Routing())
    billing_agent = await as_user(BILLING_AGENT)
    assert (await create_as(billing_agent, "Own team archived", "WEB")).team_id != billing.id
    assert await queues.missing_routed_teams(config.Routing(by_channel={"email": "Billing"})) == [
        "Billing"
    ]
    before = await ticket_state(world.tickets["unassigned high"])
    lead = await as_user(LEAD)
    body = await lead.gql(
        MOVE, {"ticket": world.ticket_id("unassigned high"), "team": world.team_id("Billing")}
    )
    assert body["data"]["moveTicket"]["code"] == "INVALID_INPUT", body
    assert await ticket_state(world.tickets["unassigned high"]) == before


async def test_routing_to_teams_that_do_not_exist_is_logged_at_start(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    routing = config.Routing(by_channel={"web": "Nowhere", "email": "Billing"}, default_team="Gone")
    with caplog.at_level(logging.WARNING, logger="ocis.queues"):
        assert await queues.missing_routed_teams(routing) == ["Gone", "Nowhere"]
        assert await queues.missing_routed_teams(config.Routing(default_team="Support")) == []
    assert [r.getMessage() for r in caplog.records if r.name == "ocis.queues"] == [
        "routing names teams that do not exist yet: Gone, Nowhere; tickets routed to them join"
        " the next configured team, else none"
    ]


def test_routing_is_read_from_the_environment() -> None:
    settings = config.from_environ(
        {"OCIS_ROUTING": " Email = Billing , web=Front Desk,", "OCIS_DEFAULT_TEAM": " Support "}
    )
    assert settings.routing == config.Routing(
        by_channel={"email": "Billing", "web": "Front Desk"}, default_team="Support"
    )
    assert settings.routing.teams_for("email") == ("Billing", "Support")
    assert settings.routing.teams_for("mobile") == ("Support",)
    assert config.from_environ({}).routing.teams_for("web") == ()
    assert set(config.CHANNELS) == {channel.value for channel in Channel}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OCIS_ROUTING": "fax=Billing"}, "'fax=Billing' is not CHANNEL=TEAM"),
        ({"OCIS_ROUTING": "email"}, "'email' is not CHANNEL=TEAM"),
        ({"OCIS_ROUTING": "email=Billing,email=Support"}, "email is routed twice"),
        ({"OCIS_ROUTING": "email= "}, "OCIS_ROUTING: a team name is 1 to 100 characters"),
        ({"OCIS_DEFAULT_TEAM": "x" * 101}, "OCIS_DEFAULT_TEAM: a team name is 1 to 100"),
    ],
)
def test_bad_routing_is_refused_at_start(environ: dict[str, str], message: str) -> None:
    with pytest.raises(config.ConfigurationError, match=message):
        config.from_environ(environ)


# The queue


async def test_a_team_queue_lists_unassigned_first_then_by_priority_then_age(
    world: World, as_user: AsUser
) -> None:
    await build_queue(world)
    for email in (LEAD, AGENT, AGENT2, ADMIN):
        caller = await as_user(email)
        body = await caller.gql(QUEUE, {"team": world.team_id("Support"), "first": 100})
        assert page_subjects(body) == QUEUE_ORDER, email
        assert body["data"]["teamQueue"]["pageInfo"]["hasNextPage"] is False


async def test_equal_rank_and_age_are_ordered_by_id(world: World, as_user: AsUser) -> None:
    for n in range(4):
        await add_ticket(world, f"twin {n}", priority=TicketPriority.HIGH, hours_old=7)
    by_id = [s for s, t in sorted(world.tickets.items(), key=lambda item: str(item[1].id))]
    lead = await as_user(LEAD)
    body = await lead.gql(QUEUE, {"team": world.team_id("Support")})
    assert page_subjects(body) == by_id


async def test_the_queue_pages_stably_with_sealed_cursors(world: World, as_user: AsUser) -> None:
    await build_queue(world)
    agent = await as_user(AGENT)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await agent.gql(
            QUEUE, {"team": world.team_id("Support"), "first": 3, "after": after}
        )
        connection = body["data"]["teamQueue"]
        seen += page_subjects(body)
        pages += 1
        assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == QUEUE_ORDER
    assert pages == 4

    # The position a cursor seals holds, whoever asks and whatever changed since.
    first_page = await agent.gql(QUEUE, {"team": world.team_id("Support"), "first": 5})
    cursor = first_page["data"]["teamQueue"]["pageInfo"]["endCursor"]
    await Ticket.filter(id=world.tickets["unassigned urgent old"].id).update(
        assignee_id=(await user_by_email(AGENT)).id
    )
    lead = await as_user(LEAD)
    rest = await lead.gql(QUEUE, {"team": world.team_id("Support"), "after": cursor})
    assert page_subjects(rest) == [
        "unassigned low oldest",
        "unassigned urgent old",
        "assigned urgent",
        *QUEUE_ORDER[7:],
    ]


async def test_cursors_of_other_lists_and_forged_ones_are_refused(
    world: World, as_user: AsUser
) -> None:
    await build_queue(world)
    lead = await as_user(LEAD)
    tickets = await lead.gql("{ tickets(first: 1) { pageInfo { endCursor } } }")
    foreign = tickets["data"]["tickets"]["pageInfo"]["endCursor"]
    mine = await lead.gql(MINE, {"first": 1})
    assert mine["data"]["myOpenTickets"]["edges"] == []
    queue = await lead.gql(QUEUE, {"team": world.team_id("Support"), "first": 1})
    own = queue["data"]["teamQueue"]["pageInfo"]["endCursor"]
    for cursor in (foreign, own[:-2] + "AA", "not-a-cursor"):
        body = await lead.gql(QUEUE, {"team": world.team_id("Support"), "after": cursor})
        assert refused(body, "teamQueue") == "INVALID_INPUT", cursor
    agent = await as_user(AGENT)
    body = await agent.gql(MINE, {"after": own})
    assert refused(body, "myOpenTickets") == "INVALID_INPUT"


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_a_page_size_out_of_bounds_is_refused(
    world: World, as_user: AsUser, first: int
) -> None:
    await build_queue(world)
    lead = await as_user(LEAD)
    body = await lead.gql(QUEUE, {"team": world.team_id("Support"), "first": first})
    assert refused(body, "teamQueue") == "INVALID_INPUT"
    assert body["errors"][0]["message"] == "first must be between 1 and 100."
    assert refused(await lead.gql(MINE, {"first": first}), "myOpenTickets") == "INVALID_INPUT"


@pytest.mark.promise("P19")
@pytest.mark.parametrize(
    ("email", "team", "code"),
    [
        (BILLING_AGENT, "Support", "FORBIDDEN"),
        (BILLING_LEAD, "Support", "FORBIDDEN"),
        (AGENT, "Billing", "FORBIDDEN"),
        (LEAD, "Billing", "FORBIDDEN"),
        (LEAD, "Empty", "FORBIDDEN"),
        (CUSTOMER, "Support", "FORBIDDEN"),
        (PRIVACY, "Support", "FORBIDDEN"),
        (None, "Support", "UNAUTHENTICATED"),
    ],
)
async def test_only_a_teams_people_and_administrators_see_its_queue_and_counts(
    world: World, as_user: AsUser, email: str | None, team: str, code: str
) -> None:
    await build_queue(world)
    caller = await as_user(email)
    for query, name in ((QUEUE, "teamQueue"), (COUNTS, "ticketCounts")):
        body = await caller.gql(query, {"team": world.team_id(team)})
        assert refused(body, name) == code
        text = json.dumps(body)
        assert not any(subject in text for subject in world.tickets)


@pytest.mark.parametrize(
    ("team_id", "code"),
    [
        ("garbage", "INVALID_INPUT"),
        (str(to_global_id("User", UUID(int=7))), "INVALID_INPUT"),
        (str(to_global_id("Team", UUID(int=7))), "NOT_FOUND"),
    ],
)
async def test_an_unknown_or_malformed_team_is_refused(
    world: World, as_user: AsUser, team_id: str, code: str
) -> None:
    admin = await as_user(ADMIN)
    for query, name in ((QUEUE, "teamQueue"), (COUNTS, "ticketCounts")):
        body = await admin.gql(query, {"team": team_id})
        assert refused(body, name) == code
        assert body["errors"][0]["message"] in {
            "This id is not one this API issued.",
            "This id does not name a Team.",
            "No such team.",
        }
    # An agent asking for a team that does not exist learns only that it is not theirs.
    agent = await as_user(AGENT)
    if code == "NOT_FOUND":
        assert refused(await agent.gql(QUEUE, {"team": team_id}), "teamQueue") == "FORBIDDEN"


async def test_a_team_queue_page_of_fifty_costs_what_a_page_of_ten_does(
    world: World, as_user: AsUser, count_statements: StatementCounter
) -> None:
    priorities = list(TicketPriority)
    for n in range(50):
        await add_ticket(
            world,
            f"counted {n:02d}",
            priority=priorities[n % 4],
            assignee=(AGENT, AGENT2)[n % 2],
            hours_old=n,
        )
    lead = await as_user(LEAD)
    nested = """
    query ($team: ID!, $first: Int!) {
      teamQueue(teamId: $team, first: $first) { edges { node {
        id subject requester { name email } assignee { name }
        messages(first: 5) { edges { node { body author { name } } } }
      } } }
    }
    """
    counts = []
    for first in (10, 50):
        count_statements.statements.clear()
        body = await lead.gql(nested, {"team": world.team_id("Support"), "first": first})
        assert len(page_subjects(body)) == first
        edges = body["data"]["teamQueue"]["edges"]
        assert all(edge["node"]["messages"]["edges"] for edge in edges)
        assert any('FROM "tickets"' in sql for sql in count_statements.statements)
        counts.append(len(count_statements.statements))
    assert counts[0] == counts[1], count_statements.statements
    assert counts[1] <= 9, count_statements.statements


# My open tickets


async def test_my_open_tickets_are_mine_and_not_closed(world: World, as_user: AsUser) -> None:
    await build_queue(world)
    await add_ticket(world, "mine in billing", team="Billing", assignee=AGENT, hours_old=60)
    await add_ticket(
        world, "mine and solved", assignee=AGENT, hours_old=2, status=TicketStatus.SOLVED
    )
    agent = await as_user(AGENT)
    body = await agent.gql(MINE)
    assert page_subjects(body, "myOpenTickets") == [
        "assigned urgent",
        "assigned high newer",
        "mine in billing",
        "mine and solved",
        "assigned low old",
    ]
    first = await agent.gql(MINE, {"first": 2})
    assert page_subjects(first, "myOpenTickets") == ["assigned urgent", "assigned high newer"]
    after = first["data"]["myOpenTickets"]["pageInfo"]["endCursor"]
    rest = await agent.gql(MINE, {"after": after})
    assert page_subjects(rest, "myOpenTickets") == [
        "mine in billing",
        "mine and solved",
        "assigned low old",
    ]
    for email, code in ((CUSTOMER, "FORBIDDEN"), (PRIVACY, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        caller = await as_user(email)
        assert refused(await caller.gql(MINE), "myOpenTickets") == code


# Counts


def counts_row(world: World, team: str, **by_status: int) -> dict[str, Any]:
    statuses = ("open", "pending", "solved", "closed")
    return {"teamId": world.team_id(team)} | {name: by_status.get(name, 0) for name in statuses}


async def test_counts_by_status_in_one_grouped_statement(
    world: World, as_user: AsUser, count_statements: StatementCounter
) -> None:
    await build_queue(world)
    support = counts_row(world, "Support", open=9, pending=2, solved=1, closed=1)
    for email in (LEAD, AGENT):
        caller = await as_user(email)
        for variables in ({}, {"team": world.team_id("Support")}):
            count_statements.statements.clear()
            body = await caller.gql(COUNTS, variables)
            assert body == {"data": {"ticketCounts": [support]}}, email
            counted = [sql for sql in count_statements.statements if '"tickets"' in sql]
            assert len(counted) == 1, count_statements.statements
            assert "GROUP BY" in counted[0]
    admin = await as_user(ADMIN)
    count_statements.statements.clear()
    body = await admin.gql(COUNTS)
    assert body == {
        "data": {
            "ticketCounts": [
                counts_row(world, "Billing", open=1),
                counts_row(world, "Empty"),
                support,
            ]
        }
    }
    counted = [sql for sql in count_statements.statements if '"tickets"' in sql]
    assert len(counted) == 1, count_statements.statements
    billing = await admin.gql(COUNTS, {"team": world.team_id("Billing")})
    assert billing == {"data": {"ticketCounts": [counts_row(world, "Billing", open=1)]}}
    for email in (CUSTOMER, PRIVACY):
        caller = await as_user(email)
        assert refused(await caller.gql(COUNTS), "ticketCounts") == "FORBIDDEN"


# Moving tickets


async def move_audits() -> list[AuditEvent]:
    return await AuditEvent.filter(action="ticket.move").order_by("seq")


async def test_a_lead_moves_their_teams_ticket_and_it_is_audited(
    world: World, as_user: AsUser
) -> None:
    await build_queue(world)
    lead = await as_user(LEAD)
    moved = world.tickets["assigned urgent"]
    body = await lead.gql(
        MOVE, {"ticket": world.ticket_id("assigned urgent"), "team": world.team_id("Billing")}
    )
    assert body["data"]["moveTicket"] == {
        "__typename": "TicketSuccess",
        "ticket": {
            "id": world.ticket_id("assigned urgent"),
            "subject": "assigned urgent",
            "assignee": None,
        },
    }
    # The agent is not in Billing: the ticket goes back to Billing's queue.
    assert await ticket_state(moved) == (world.teams["Billing"].id, None)
    (event,) = await move_audits()
    lead_user = await user_by_email(LEAD)
    customer = await user_by_email(CUSTOMER)
    assert (event.actor_id, event.subject_id, event.entity, event.entity_id) == (
        lead_user.id,
        customer.id,
        "Ticket",
        str(moved.id),
    )
    assert event.field_names == ["Ticket.assignee", "Ticket.team"]

    billing = await as_user(BILLING_AGENT)
    assert page_subjects(await billing.gql(QUEUE, {"team": world.team_id("Billing")})) == [
        "assigned urgent",
        "billing urgent",
    ]
    assert "assigned urgent" not in page_subjects(
        await lead.gql(QUEUE, {"team": world.team_id("Support")})
    )


async def test_an_administrator_moves_any_ticket_keeping_an_assignee_of_that_team(
    world: World, as_user: AsUser
) -> None:
    await build_queue(world)
    await add_ticket(world, "billing, support agent's", team="Billing", assignee=AGENT)
    await add_ticket(world, "billing, billing agent's", team="Billing", assignee=BILLING_AGENT)
    agent = await user_by_email(AGENT)
    admin = await as_user(ADMIN)
    for subject, team in (
        ("billing urgent", "Support"),
        ("billing, support agent's", "Support"),
        ("billing, billing agent's", "Empty"),
    ):
        body = await admin.gql(
            MOVE, {"ticket": world.ticket_id(subject), "team": world.team_id(team)}
        )
        assert body["data"]["moveTicket"]["__typename"] == "TicketSuccess", subject
    assert await ticket_state(world.tickets["billing urgent"]) == (world.teams["Support"].id, None)
    assert await ticket_state(world.tickets["billing, support agent's"]) == (
        world.teams["Support"].id,
        agent.id,
    )
    assert await ticket_state(world.tickets["billing, billing agent's"]) == (
        world.teams["Empty"].id,
        None,
    )
    assert [event.field_names for event in await move_audits()] == [
        ["Ticket.team"],
        ["Ticket.team"],
        ["Ticket.assignee", "Ticket.team"],
    ]


@pytest.mark.parametrize(
    ("email", "subject", "team", "code"),
    [
        (AGENT, "unassigned high", "Billing", "FORBIDDEN"),
        (CUSTOMER, "unassigned high", "Billing", "FORBIDDEN"),
        (PRIVACY, "unassigned high", "Billing", "FORBIDDEN"),
        (None, "unassigned high", "Billing", "UNAUTHENTICATED"),
        (BILLING_LEAD, "unassigned high", "Billing", "NOT_FOUND"),
        (LEAD, "billing urgent", "Support", "NOT_FOUND"),
        (LEAD, "unassigned high", "Support", "INVALID_INPUT"),
        (LEAD, "closed, out of the queue", "Billing", "INVALID_INPUT"),
        (LEAD, "unassigned high", "no such team", "NOT_FOUND"),
        (LEAD, "unassigned high", "a user", "INVALID_INPUT"),
        (LEAD, "a team", "Billing", "INVALID_INPUT"),
    ],
)
async def test_a_refused_move_changes_nothing(
    world: World, as_user: AsUser, email: str | None, subject: str, team: str, code: str
) -> None:
    await build_queue(world)
    ids = {
        "no such team": str(to_global_id("Team", UUID(int=9))),
        "a user": str(to_global_id("User", (await user_by_email(AGENT)).id)),
    }
    ticket_id = world.team_id("Support") if subject == "a team" else world.ticket_id(subject)
    before = {name: await ticket_state(ticket) for name, ticket in world.tickets.items()}
    audits = await AuditEvent.all().count()
    caller = await as_user(email)
    body = await caller.gql(
        MOVE, {"ticket": ticket_id, "team": ids.get(team) or world.team_id(team)}
    )
    answer = body["data"]["moveTicket"]
    assert answer["code"] == code, answer
    assert "ticket" not in answer
    assert {name: await ticket_state(ticket) for name, ticket in world.tickets.items()} == before
    assert await AuditEvent.all().count() == audits


# Assigning within the team


async def test_a_lead_assigns_only_within_the_tickets_team(world: World, as_user: AsUser) -> None:
    await build_queue(world)
    lead = await as_user(LEAD)
    ticket = world.tickets["unassigned high"]
    billing_agent = str(to_global_id("User", (await user_by_email(BILLING_AGENT)).id))
    audits = await AuditEvent.filter(action="ticket.assign").count()

    body = await lead.gql(
        ASSIGN, {"ticket": world.ticket_id("unassigned high"), "to": billing_agent}
    )
    assert body["data"]["assignTicket"] == {
        "__typename": "ForbiddenError",
        "code": "FORBIDDEN",
        "message": "A lead assigns only to members of the ticket's team.",
    }
    assert await ticket_state(ticket) == (world.teams["Support"].id, None)
    assert await AuditEvent.filter(action="ticket.assign").count() == audits

    agent2 = str(to_global_id("User", (await user_by_email(AGENT2)).id))
    body = await lead.gql(ASSIGN, {"ticket": world.ticket_id("unassigned high"), "to": agent2})
    assert body["data"]["assignTicket"]["ticket"]["assignee"] == {"name": "Sam Agent"}
    assert await ticket_state(ticket) == (
        world.teams["Support"].id,
        (await user_by_email(AGENT2)).id,
    )

    # A lead assigned a ticket of another team reaches it, but does not hand it out.
    await add_ticket(world, "billing, the lead's", team="Billing", assignee=LEAD)
    own = await lead.gql(ASSIGN, {"ticket": world.ticket_id("billing, the lead's"), "to": None})
    assert own["data"]["assignTicket"]["code"] == "FORBIDDEN"
    assert own["data"]["assignTicket"]["message"] == "A lead assigns only their own team's tickets."

    # Administrators assign anyone; the ticket follows its assignee's team, as before.
    admin = await as_user(ADMIN)
    body = await admin.gql(
        ASSIGN, {"ticket": world.ticket_id("unassigned normal"), "to": billing_agent}
    )
    assert body["data"]["assignTicket"]["__typename"] == "TicketSuccess"
    assert await ticket_state(world.tickets["unassigned normal"]) == (
        world.teams["Billing"].id,
        (await user_by_email(BILLING_AGENT)).id,
    )
