"""A request's cost follows what it asks for; lists and cursors open no side channel (#9: 6, 7)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from graphql import GraphQLInputObjectType, get_named_type
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from auth import rate_limit
from auth.policy import FILTER_FIELDS, may_filter
from auth.principal import Principal
from models import Role, Ticket, TicketMessage, crypto
from resolvers.demo import DEMO_ACCOUNTS
from schema import schema
from tests.helpers import user_by_email

CUSTOMER = "customer@example.com"
AGENT = "agent@example.com"
THREAD = """
query ($id: ID!) { node(id: $id) { ... on Ticket {
  messages(first: 2) { edges { node { body } } pageInfo { hasNextPage } }
} } }
"""


class Fetched:
    """Rows the database hands back and values decrypted, over one request."""

    def __init__(self) -> None:
        self.rows = 0
        self.opened = 0


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Fetched:
    seen = Fetched()
    client_class = type(Tortoise.get_connection("default"))
    execute_query = client_class.execute_query
    open_value = crypto.DataCipher.open

    async def counting_query(self: Any, query: str, values: Any = None) -> Any:
        count, rows = await execute_query(self, query, values)
        seen.rows += len(rows)
        return count, rows

    def counting_open(self: crypto.DataCipher, ciphertext: str, associated_data: str) -> str:
        seen.opened += 1
        return open_value(self, ciphertext, associated_data)

    monkeypatch.setattr(client_class, "execute_query", counting_query)
    monkeypatch.setattr(crypto.DataCipher, "open", counting_open)
    return seen


async def thread_of(length: int) -> Ticket:
    customer = await user_by_email(CUSTOMER)
    async with in_transaction():
        ticket = await Ticket.create(subject=f"Thread of {length}", requester=customer)
        await TicketMessage.bulk_create(
            [
                TicketMessage(ticket=ticket, author=customer, body=f"reply {n} " + "x" * 2000)
                for n in range(length)
            ]
        )
    return ticket


async def test_a_page_costs_the_same_on_a_thread_of_3_and_of_300(
    as_user: Any, fetched: Fetched
) -> None:
    from schema.relay import to_global_id

    api = await as_user(CUSTOMER)
    costs = []
    for length in (3, 300):
        ticket = await thread_of(length)
        fetched.rows = fetched.opened = 0
        body = await api.gql(THREAD, {"id": to_global_id("Ticket", ticket.id)})
        assert "errors" not in body, body
        page = body["data"]["node"]["messages"]
        assert [edge["node"]["body"][:8] for edge in page["edges"]] == ["reply 0 ", "reply 1 "]
        assert page["pageInfo"]["hasNextPage"] is True
        bodies = sum(1 for _ in page["edges"])
        costs.append((fetched.rows, fetched.opened))
        assert bodies == 2
    print(  # noqa: T201 - the figures belong in the test output
        f"rows fetched, values decrypted: thread of 3 {costs[0]}, thread of 300 {costs[1]}"
    )
    assert costs[0] == costs[1]
    assert costs[1][1] < 20


REPLY = """
mutation ($id: ID!) { addMessage(input: {ticketId: $id, body: "One more thing"}) {
  __typename ... on RateLimitedError { code retryAfterSeconds }
} }
"""
CREATE = """
mutation { createTicket(input: {subject: "Again", body: "Hello"}) {
  __typename ... on RateLimitedError { code retryAfterSeconds }
} }
"""


async def test_replies_and_new_tickets_are_limited_per_account(
    as_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schema.relay import to_global_id

    monkeypatch.setattr(rate_limit, "REPLY_PER_ACCOUNT", rate_limit.Limit("reply:account", 3, 60))
    monkeypatch.setattr(rate_limit, "TICKET_PER_ACCOUNT", rate_limit.Limit("ticket:account", 2, 60))
    api = await as_user(CUSTOMER)
    ticket = await Ticket.filter(requester_id=(await user_by_email(CUSTOMER)).id).first()
    assert ticket is not None
    ticket_id = to_global_id("Ticket", ticket.id)
    replies = [
        (await api.post(REPLY, {"id": ticket_id})).json()["data"]["addMessage"] for _ in range(4)
    ]
    assert [reply["__typename"] for reply in replies] == ["AddMessageSuccess"] * 3 + [
        "RateLimitedError"
    ]
    assert replies[3]["code"] == "RATE_LIMITED"
    assert 0 < replies[3]["retryAfterSeconds"] <= 60
    other = await as_user("customer2@example.com")
    theirs = await other.gql(CREATE)
    assert theirs["data"]["createTicket"]["__typename"] == "TicketSuccess"
    created = [
        (await api.post(CREATE)).json()["data"]["createTicket"]["__typename"] for _ in range(3)
    ]
    assert created == ["TicketSuccess", "TicketSuccess", "RateLimitedError"]


# --- Item 7: filters need the rule of the field they read, generated from the live schema. ---


def connection_filters() -> list[tuple[str, str, str]]:
    """(query field, filter input type, argument) for every filter of every root connection."""
    query_type = schema._schema.query_type
    assert query_type is not None
    found: list[tuple[str, str, str]] = []
    for name, field in query_type.fields.items():
        if "filter" not in field.args:
            continue
        input_type = get_named_type(field.args["filter"].type)
        assert isinstance(input_type, GraphQLInputObjectType)
        found.extend((name, input_type.name, input_name) for input_name in input_type.fields)
    return found


FILTER_VALUES: dict[str, str] = {
    "role": "ADMINISTRATOR",
    "status": "ACTIVE",
    "assigneeId": '"VXNlcjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA"',
    "requesterId": '"VXNlcjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA"',
    "unassigned": "true",
}


def test_every_filter_of_the_live_schema_names_the_field_it_reads() -> None:
    filters = connection_filters()
    assert {(input_type, arg) for _, input_type, arg in filters} == set(FILTER_FIELDS)
    assert len(filters) == 6


async def test_a_filter_is_allowed_exactly_when_the_field_rule_allows(as_user: Any) -> None:
    cases = 0
    for account in DEMO_ACCOUNTS:
        api = await as_user(account.email)
        user = await user_by_email(account.email)
        principal = Principal.for_user(user.id, frozenset({account.role}), user.team_id)
        for query_name, input_type, arg in connection_filters():
            value = FILTER_VALUES[arg]
            status_value = "OPEN" if input_type == "TicketFilterInput" else value
            given = status_value if arg == "status" else value
            body = await api.gql(
                f"{{ {query_name}(first: 5, filter: {{{arg}: {given}}}) {{ edges {{ cursor }} }} }}"
            )
            type_name, field_name = FILTER_FIELDS[(input_type, arg)]
            # Listing needs its own scope first; the filter's rule decides only past that.
            listing_allowed = await _listing_allowed(api, query_name)
            expected = listing_allowed and may_filter(type_name, field_name, principal)
            codes = [error["extensions"]["code"] for error in body.get("errors", [])]
            assert (codes == []) is expected, (account.email, query_name, arg, body)
            if not expected and listing_allowed:
                assert codes == ["FORBIDDEN"]
                assert body["data"] is None or body["data"][query_name] is None
            cases += 1
    print(f"filter matrix: {cases} cases")  # noqa: T201 - the matrix size belongs in the output
    lead = Principal.for_user(
        (await user_by_email("lead@example.com")).id, frozenset({Role.TEAM_LEAD}), None
    )
    assert not may_filter("User", "status", lead)


async def _listing_allowed(api: Any, query_name: str) -> bool:
    return "errors" not in await api.gql(f"{{ {query_name}(first: 1) {{ edges {{ cursor }} }} }}")


async def test_a_lead_cannot_list_by_status_or_role(as_user: Any) -> None:
    lead = await as_user("lead@example.com")
    for given in ("status: DISABLED", "role: ADMINISTRATOR"):
        body = await lead.gql(
            f"{{ users(first: 50, filter: {{{given}}}) {{ edges {{ cursor }} }} }}"
        )
        assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]


# --- Cursors: opaque and authenticated on every connection. ---

LISTS = {
    "users": "{ users(first: 2) { edges { cursor } pageInfo { endCursor } } }",
    "tickets": "{ tickets(first: 2) { edges { cursor } pageInfo { endCursor } } }",
}
AFTER = "query($after: String) {{ {name}(first: 2, after: $after) {{ edges {{ cursor }} }} }}"
READABLE = re.compile(rb"\d{4}-\d{2}-\d{2}|[0-9a-f]{8}-[0-9a-f]{4}|createdAt")


def _raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


async def test_cursors_hold_nothing_readable_and_tampering_is_refused(as_user: Any) -> None:
    for email in ("admin@example.com", "lead@example.com"):
        api = await as_user(email)
        for name, query in LISTS.items():
            body = await api.gql(query)
            cursors = [edge["cursor"] for edge in body["data"][name]["edges"]]
            assert cursors, body
            for cursor in cursors:
                assert READABLE.search(_raw(cursor)) is None
                assert READABLE.search(cursor.encode()) is None
            cursor = cursors[0]
            flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
            foreign = (await api.gql(LISTS["users" if name == "tickets" else "tickets"]))["data"]
            other = next(iter(foreign.values()))["edges"][0]["cursor"]
            plain = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00","x"]').decode()
            for bad in (flipped, other, plain, "not-a-cursor", cursor[:-4]):
                refused = await api.gql(
                    AFTER.format(name=name),
                    {"after": bad},
                )
                codes = [error["extensions"]["code"] for error in refused["errors"]]
                assert codes == ["INVALID_INPUT"], (name, bad, refused)
            following = await api.gql(
                AFTER.format(name=name),
                {"after": cursors[-1]},
            )
            assert "errors" not in following, following
