"""Live updates over WebSocket at /graphql (graphql-transport-ws), with a real client of the
protocol's wire format (the `websockets` package) against a real uvicorn server: in this
process for the app under test, and as two `server.py serve` processes sharing Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import settings as config
from auth.policy import FIELD_POLICY
from models import AuditEvent, Team, Ticket, TicketMessage, TicketStatus, User, crypto
from observability import without_websocket_handshakes
from resolvers import live
from resolvers.demo import seed_help_desk
from schema.relay import to_global_id
from schema.sockets import MAX_SUBSCRIPTIONS
from schema.view import TOO_MANY_SOCKETS
from tests.helpers import ORIGIN, ROOT, Api, app_code_exchange, sign_in
from tests.smtp_server import free_port
from tests.test_two_processes import Browser, browser, servers, shared_redis

__all__ = ["browser", "servers", "shared_redis"]  # the two-process fixtures, used below

PROTOCOL = "graphql-transport-ws"
WAIT = 5.0  # the most any one awaited frame may take
QUIET = 1.0  # how long a subscriber is watched to receive nothing

EVENT = """
fragment Event on TicketEvent {
  kind
  ticket { id status subject assignee { id } }
  message { id body internal author { name } }
}
"""
TICKET_EVENTS = EVENT + "subscription($id: ID!) { ticketEvents(ticketId: $id) { ...Event } }"
MY_TICKET_EVENTS = EVENT + "subscription { myTicketEvents { ...Event } }"

REPLY = """mutation($id: ID!, $body: String!, $internal: Boolean!) {
  addMessage(input: {ticketId: $id, body: $body, internal: $internal}) { __typename } }"""
STATUS = """mutation($id: ID!, $status: TicketStatus!) {
  changeTicketStatus(input: {ticketId: $id, status: $status}) { __typename } }"""
ASSIGN = """mutation($id: ID!, $to: ID) {
  assignTicket(input: {ticketId: $id, assigneeId: $to}) { __typename } }"""


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """The app (its lifespan already running) behind a real uvicorn on a loopback port."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="off", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert not task.done(), "uvicorn stopped"
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{server.config.port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Socket:
    """One graphql-transport-ws connection, read with bounded waits."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[str] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, within: float = WAIT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv(), within)
        assert isinstance(raw, str), "graphql-transport-ws messages are text frames"
        text = raw
        self.frames.append(text)
        message: dict[str, Any] = json.loads(text)
        return message

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def subscribe(
        self, operation_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": operation_id, "type": "subscribe", "payload": payload})

    async def next_event(self, operation_id: str, within: float = WAIT) -> dict[str, Any]:
        message = await self.receive(within)
        assert message["type"] == "next", message
        assert message["id"] == operation_id, message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def nothing_for(self, seconds: float = QUIET) -> None:
        with pytest.raises(TimeoutError):
            await self.receive(seconds)

    async def closed(self, within: float = WAIT) -> tuple[int | None, str | None]:
        """Wait (bounded: a TimeoutError) until the server closes; its close code and reason."""
        deadline = time.monotonic() + within
        while True:
            try:
                await self.receive(max(deadline - time.monotonic(), 0.01))
            except ConnectionClosed as ended:
                frame = ended.rcvd
                return (frame.code, frame.reason) if frame else (None, None)


@asynccontextmanager
async def socket(
    url: str, *, cookie: str | None = None, origin: str | None = ORIGIN, **headers: str
) -> AsyncIterator[Socket]:
    extra = {**headers, **({"cookie": f"ocis_session={cookie}"} if cookie else {})}
    async with connect(
        url,
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        origin=origin,  # type: ignore[arg-type]
        additional_headers=extra,
        open_timeout=WAIT,
        close_timeout=1,
    ) as connection:
        yield Socket(connection)


@asynccontextmanager
async def subscribed(
    url: str, cookie: str, query: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[Socket]:
    """A signed-in socket with one subscription ("s") under way."""
    async with socket(url, cookie=cookie) as live_socket:
        assert (await live_socket.init())["type"] == "connection_ack"
        await live_socket.subscribe("s", query, variables)
        await _settled()
        yield live_socket


async def _settled() -> None:
    """Subscribing runs on the server after the client's frame: a short, bounded pause."""
    await asyncio.sleep(0.3)


@pytest.fixture
async def url(app: Any, demo: None) -> AsyncIterator[str]:
    async with serving(app) as address:
        yield address


async def _user(email: str) -> User:
    return await User.get(email_index=crypto.blind_index(email))


async def _ticket(subject: str) -> Ticket:
    """A demo ticket by its subject (encrypted: compared once decrypted)."""
    (ticket,) = [ticket for ticket in await Ticket.all() if ticket.subject == subject]
    return ticket


def _gid(kind: str, ident: uuid.UUID) -> str:
    return str(to_global_id(kind, ident))


def _done(answer: dict[str, Any]) -> None:
    """A mutation that ran: no error, and its result not an error member."""
    assert "errors" not in answer, answer
    (result,) = answer["data"].values()
    assert not result["__typename"].endswith("Error"), answer


async def _outsider() -> str:
    """The lead of another team: no ticket of the Support team is theirs to see."""
    await seed_help_desk(ORIGIN)
    return "returns-lead@example.com"


# --- the protocol -------------------------------------------------------------------------


async def test_handshake_acknowledges_a_signed_in_browser_and_answers_pings(
    url: str, client: httpx.AsyncClient
) -> None:
    cookie = await sign_in(client, "customer@example.com")
    async with socket(url, cookie=cookie) as live_socket:
        assert live_socket.connection.subprotocol == PROTOCOL
        assert await live_socket.init() == {"type": "connection_ack"}
        await live_socket.send({"type": "ping"})
        assert await live_socket.receive() == {"type": "pong"}


async def test_a_cross_site_handshake_is_refused_before_it_is_accepted(
    url: str, client: httpx.AsyncClient
) -> None:
    cookie = await sign_in(client, "customer@example.com")
    for origin in ("http://evil.example", "null", "http://127.0.0.1:8001"):
        with pytest.raises(InvalidStatus) as refused:
            async with socket(url, cookie=cookie, origin=origin):
                pass
        assert refused.value.response.status_code == 403, origin


async def test_an_origin_of_cors_origins_may_connect(
    app: Any, demo: None, client: httpx.AsyncClient
) -> None:
    app.state.settings = config.Settings(
        **{**vars_of(app.state.settings), "cors_origins": ("https://app.example.com",)}
    )
    cookie = await sign_in(client, "customer@example.com")
    async with (
        serving(app) as address,
        socket(address, cookie=cookie, origin="https://app.example.com") as live_socket,
    ):
        assert await live_socket.init() == {"type": "connection_ack"}


def vars_of(settings: config.Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


@pytest.mark.parametrize(
    ("headers", "payload", "code"),
    [
        pytest.param({}, {}, 4401, id="no credentials"),
        pytest.param({"cookie": "ocis_session=forged"}, {}, 4401, id="unknown cookie"),
        pytest.param({}, {"authorization": "Bearer forged"}, 4401, id="forged token"),
        pytest.param({}, {"authorization": 7}, 4401, id="token not a string"),
    ],
)
async def test_connection_init_without_valid_credentials_closes_4401(
    url: str, headers: dict[str, str], payload: dict[str, Any], code: int
) -> None:
    async with socket(url, **headers) as live_socket:
        await live_socket.send({"type": "connection_init", "payload": payload})
        assert (await live_socket.closed())[0] == code


async def test_a_session_cookie_without_an_origin_is_refused_4403(
    url: str, client: httpx.AsyncClient
) -> None:
    cookie = await sign_in(client, "customer@example.com")
    async with socket(url, cookie=cookie, origin=None) as live_socket:
        await live_socket.send({"type": "connection_init", "payload": {}})
        assert (await live_socket.closed())[0] == 4403


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param(
            [{"id": "1", "type": "subscribe", "payload": {"query": "{ me { id } }"}}],
            4401,
            id="subscribe before init",
        ),
        pytest.param(
            [{"type": "connection_init", "payload": "x"}], 4400, id="payload not an object"
        ),
        pytest.param(["not json"], 4400, id="not JSON"),
        pytest.param([{"type": "hello"}], 4400, id="unknown type"),
    ],
)
async def test_bad_connection_init_frames_close_the_socket(
    url: str, frames: list[Any], code: int
) -> None:
    async with socket(url) as live_socket:
        for frame in frames:
            await live_socket.connection.send(
                frame if isinstance(frame, str) else json.dumps(frame)
            )
        assert (await live_socket.closed())[0] == code


async def test_a_second_connection_init_closes_4429(url: str, client: httpx.AsyncClient) -> None:
    cookie = await sign_in(client, "customer@example.com")
    async with socket(url, cookie=cookie) as live_socket:
        assert (await live_socket.init())["type"] == "connection_ack"
        await live_socket.send({"type": "connection_init", "payload": {}})
        assert (await live_socket.closed())[0] == 4429


async def test_no_connection_init_in_time_closes_4408(url: str) -> None:
    async with socket(url) as live_socket:
        assert (await live_socket.closed(within=8))[0] == 4408


async def test_only_subscriptions_run_over_the_socket(url: str, client: httpx.AsyncClient) -> None:
    cookie = await sign_in(client, "customer@example.com")
    async with socket(url, cookie=cookie) as live_socket:
        await live_socket.init()
        for operation in ("{ me { email } }", "mutation { signOutEverywhere { __typename } }"):
            await live_socket.subscribe("q", operation)
            answer = await live_socket.receive()
            assert answer["type"] == "error", answer
            assert answer["payload"][0]["extensions"]["code"] == "BAD_REQUEST"
        assert "@example.com" not in "".join(live_socket.frames)
    me = await Api(client, cookie).gql("{ me { email } }")
    assert me["data"]["me"] == {"email": "customer@example.com"}, "the mutation did not run"


async def test_a_subscription_by_post_is_refused(client: httpx.AsyncClient, demo: None) -> None:
    cookie = await sign_in(client, "customer@example.com")
    response = await client.post(
        "/graphql",
        json={"query": MY_TICKET_EVENTS},
        headers={"cookie": f"ocis_session={cookie}", "accept": "application/graphql-response+json"},
    )
    assert response.status_code == 400, response.text
    assert "data" not in response.json()
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_an_address_holds_at_most_its_limit_of_sockets_and_gets_one_back_on_closing(
    app: Any, url: str, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state, "settings", replace(app.state.settings, live_sockets_per_ip=2))
    cookie = await sign_in(client, CUSTOMER)
    async with socket(url, cookie=cookie) as first, socket(url, cookie=cookie) as second:
        for held in (first, second):
            assert (await held.init())["type"] == "connection_ack"
        async with socket(url, cookie=cookie) as third:
            code, reason = await third.closed()
            assert code == 1013
            assert reason == TOO_MANY_SOCKETS
        assert app.state.live.sockets == {"127.0.0.1": 2}
    # Both closed: the address holds none, and may connect again.
    deadline = time.monotonic() + WAIT
    while app.state.live.sockets and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert app.state.live.sockets == {}
    async with socket(url, cookie=cookie) as again:
        assert (await again.init())["type"] == "connection_ack"


async def test_at_most_max_subscriptions_per_connection(
    url: str, client: httpx.AsyncClient
) -> None:
    cookie = await sign_in(client, "customer@example.com")
    async with socket(url, cookie=cookie) as live_socket:
        await live_socket.init()
        for number in range(MAX_SUBSCRIPTIONS):
            await live_socket.subscribe(str(number), MY_TICKET_EVENTS)
        await _settled()
        await live_socket.subscribe("one too many", MY_TICKET_EVENTS)
        refused = await live_socket.receive()
        assert refused["type"] == "error"
        assert refused["id"] == "one too many"


async def test_subscriptions_have_the_depth_limit_of_queries(
    url: str, client: httpx.AsyncClient
) -> None:
    cookie = await sign_in(client, "customer@example.com")
    nested = "subscription { myTicketEvents { " + "ticket { messages { edges { node { " * 3
    nested += "id" + " } } } }" * 3 + " } }"
    async with socket(url, cookie=cookie) as live_socket:
        await live_socket.init()
        await live_socket.subscribe("deep", nested)
        answer = await live_socket.receive()
        assert answer["type"] == "error", answer
        assert "depth" in answer["payload"][0]["message"]


@pytest.mark.parametrize(
    ("changed", "code"),
    [
        pytest.param({"max_query_cost": 3}, "QUERY_TOO_COSTLY", id="cost"),
        pytest.param({"trusted_documents_only": True}, "DOCUMENT_NOT_TRUSTED", id="trusted only"),
    ],
)
async def test_subscriptions_have_the_cost_and_document_rules_of_queries(
    app: Any, demo: None, client: httpx.AsyncClient, changed: dict[str, Any], code: str
) -> None:
    cookie = await sign_in(client, CUSTOMER)
    app.state.settings = config.Settings(**{**vars_of(app.state.settings), **changed})
    async with serving(app) as address, socket(address, cookie=cookie) as live_socket:
        assert (await live_socket.init())["type"] == "connection_ack"
        await live_socket.subscribe("s", MY_TICKET_EVENTS)
        answer = await live_socket.receive()
        assert answer["type"] in {"error", "next"}, answer
        assert answer["payload"]["errors" if answer["type"] == "next" else 0]
        errors = answer["payload"]["errors"] if answer["type"] == "next" else answer["payload"]
        assert errors[0]["extensions"]["code"] == code
        assert not (answer["payload"].get("data") if answer["type"] == "next" else None)


def test_uvicorns_websocket_lines_which_print_the_client_ip_are_dropped() -> None:
    accepted = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("203.0.113.7:50000", "/graphql"),
        None,
    )
    started = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (1,), None
    )
    assert not without_websocket_handshakes(accepted)
    assert without_websocket_handshakes(started)


async def test_a_subscription_to_a_ticket_out_of_reach_is_not_found(
    url: str, client: httpx.AsyncClient
) -> None:
    other = await _ticket("App crashes on start")  # customer2's
    cookie = await sign_in(client, "customer@example.com")
    async with socket(url, cookie=cookie) as live_socket:
        await live_socket.init()
        await live_socket.subscribe("s", TICKET_EVENTS, {"id": _gid("Ticket", other.id)})
        answer = await live_socket.receive()
        assert answer["type"] == "error", answer
        assert answer["payload"][0]["extensions"]["code"] == "NOT_FOUND"
        assert "App crashes" not in "".join(live_socket.frames)


# --- what each caller receives ---------------------------------------------------------------


CUSTOMER = "customer@example.com"
AGENT = "agent@example.com"
LEAD = "lead@example.com"
NOTE_BODY = "Internal: do not tell the customer 4471."


def _expected(viewer: str, kind: str) -> bool:
    """Whether a viewer receives an event of this kind on the customer's ticket assigned to
    the agent: what a query of the ticket's messages would show them (auth/scoping.py), and
    the message fields' rules (auth/policy.py) let anyone who reaches the row read them."""
    assert all(
        FIELD_POLICY["TicketMessage"][field].__name__ == "reachable"
        for field in ("body", "internal", "author")
    )
    if viewer == "outsider":
        return False
    return not (viewer == CUSTOMER and kind == "INTERNAL_NOTE")


@pytest.mark.promise("P19")
async def test_each_event_kind_reaches_exactly_those_who_may_see_it(
    url: str, client: httpx.AsyncClient
) -> None:
    ticket = await _ticket("Cannot reset my password")  # the customer's, assigned to the agent
    ticket_id = _gid("Ticket", ticket.id)
    outsider = await _outsider()
    lead = Api(client, await sign_in(client, LEAD))
    agent = await _user(AGENT)
    cookies = {
        CUSTOMER: await sign_in(client, CUSTOMER),
        AGENT: await sign_in(client, AGENT),
        "outsider": await sign_in(client, outsider),
    }
    kinds: list[tuple[str, Callable[[], Any]]] = [
        (
            "REPLY",
            lambda: lead.gql(REPLY, {"id": ticket_id, "body": "We fixed it.", "internal": False}),
        ),
        (
            "INTERNAL_NOTE",
            lambda: lead.gql(REPLY, {"id": ticket_id, "body": NOTE_BODY, "internal": True}),
        ),
        ("STATUS_CHANGED", lambda: lead.gql(STATUS, {"id": ticket_id, "status": "PENDING"})),
        (
            "ASSIGNMENT_CHANGED",
            lambda: lead.gql(ASSIGN, {"id": ticket_id, "to": _gid("User", agent.id)}),
        ),
    ]
    async with (
        subscribed(url, cookies[CUSTOMER], TICKET_EVENTS, {"id": ticket_id}) as customer,
        subscribed(url, cookies[CUSTOMER], MY_TICKET_EVENTS) as customer_mine,
        subscribed(url, cookies[AGENT], TICKET_EVENTS, {"id": ticket_id}) as agent_socket,
        socket(url, cookie=cookies["outsider"]) as outsider_socket,
    ):
        await outsider_socket.init()
        await outsider_socket.subscribe("s", TICKET_EVENTS, {"id": ticket_id})
        refused = await outsider_socket.receive()
        assert refused["payload"][0]["extensions"]["code"] == "NOT_FOUND"
        await outsider_socket.subscribe("mine", MY_TICKET_EVENTS)
        await _settled()
        viewers = {CUSTOMER: [customer, customer_mine], AGENT: [agent_socket], "outsider": []}
        for kind, act in kinds:
            _done(await act())
            for viewer, sockets in viewers.items():
                for live_socket in sockets:
                    if _expected(viewer, kind):
                        event = await live_socket.next_event("s")
                        (data,) = event.values()
                        assert data["kind"] == kind
                        assert data["ticket"]["id"] == ticket_id
                        assert data["ticket"]["subject"] == "Cannot reset my password"
                        if kind in ("REPLY", "INTERNAL_NOTE"):
                            assert data["message"]["internal"] is (kind == "INTERNAL_NOTE")
                            assert data["message"]["author"] == {"name": "Lena Lead"}
                        else:
                            assert data["message"] is None
            # Nobody else got anything for this kind (the next kind's frame would show it).
            await outsider_socket.nothing_for(0.2)
        for live_socket in (customer, customer_mine, outsider_socket):
            await live_socket.nothing_for(0.5)
            assert NOTE_BODY not in "".join(live_socket.frames)
        assert NOTE_BODY in "".join(agent_socket.frames)


@pytest.mark.promise("P20")
async def test_an_event_read_of_someone_elses_data_is_audited(
    url: str, client: httpx.AsyncClient
) -> None:
    ticket = await _ticket("Cannot reset my password")
    ticket_id = _gid("Ticket", ticket.id)
    customer = Api(client, await sign_in(client, CUSTOMER))
    async with subscribed(
        url, await sign_in(client, AGENT), TICKET_EVENTS, {"id": ticket_id}
    ) as agent:
        before = await AuditEvent.filter(action="personal_data.read").count()
        _done(
            await customer.gql(REPLY, {"id": ticket_id, "body": "Still broken.", "internal": False})
        )
        event = await agent.next_event("s")
        assert event["ticketEvents"]["message"]["body"] == "Still broken."
    reads = await AuditEvent.filter(action="personal_data.read").order_by("seq")
    assert len(reads) == before + 1
    agent_user, customer_user = await _user(AGENT), await _user(CUSTOMER)
    record = reads[-1]
    assert record.actor_id == agent_user.id
    assert record.subject_id == customer_user.id
    assert "TicketMessage.body" in record.field_names


# --- ending what a connection may see ------------------------------------------------------


async def _sign_out(client: httpx.AsyncClient, cookie: str, admin: Api, user: User) -> None:
    response = await client.post(
        "/auth/logout", json={}, headers={"cookie": f"ocis_session={cookie}"}
    )
    assert response.status_code == 204


async def _sign_out_everywhere(
    client: httpx.AsyncClient, cookie: str, admin: Api, user: User
) -> None:
    answer = await Api(client, cookie).gql("mutation { signOutEverywhere { __typename } }")
    assert answer["data"]["signOutEverywhere"]["__typename"] == "SignOutEverywhereSuccess"


async def _disable(client: httpx.AsyncClient, cookie: str, admin: Api, user: User) -> None:
    answer = await admin.gql(
        "mutation($id: ID!) { disableAccount(userId: $id) { __typename } }",
        {"id": _gid("User", user.id)},
    )
    assert answer["data"]["disableAccount"]["__typename"] == "DisableAccountSuccess"


async def _change_password(client: httpx.AsyncClient, cookie: str, admin: Api, user: User) -> None:
    other = await sign_in(client, CUSTOMER)  # the change keeps the session that made it
    answer = await Api(client, other).gql(
        "mutation($new: String!) {"
        ' changePassword(currentPassword: "ocis-demo", newPassword: $new) { __typename } }',
        {"new": "a much longer passphrase 81"},
    )
    assert "errors" not in answer, answer


@pytest.mark.parametrize(
    "revoke",
    [_sign_out, _sign_out_everywhere, _disable, _change_password],
    ids=["sign out", "sign out everywhere", "disable", "password change"],
)
async def test_a_revoked_session_closes_its_socket_promptly(
    url: str, client: httpx.AsyncClient, revoke: Callable[..., Any]
) -> None:
    cookie = await sign_in(client, CUSTOMER)
    admin = Api(client, await sign_in(client, "admin@example.com"))
    async with subscribed(url, cookie, MY_TICKET_EVENTS) as live_socket:
        await revoke(client, cookie, admin, await _user(CUSTOMER))
        started = time.monotonic()
        code, _ = await live_socket.closed(within=2)
        assert code == 4401
        assert time.monotonic() - started < 2


async def test_an_unassigned_agent_stops_receiving_the_ticket(
    url: str, client: httpx.AsyncClient
) -> None:
    # Solved: out of the team's queue, so only its assignee (and admins) may see it.
    ticket = await _ticket("Invoice shows the wrong address")
    await Ticket.filter(id=ticket.id).update(status=TicketStatus.SOLVED)
    ticket_id = _gid("Ticket", ticket.id)
    lead = Api(client, await sign_in(client, LEAD))
    async with subscribed(
        url, await sign_in(client, AGENT), TICKET_EVENTS, {"id": ticket_id}
    ) as agent:
        _done(await lead.gql(REPLY, {"id": ticket_id, "body": "Before.", "internal": False}))
        assert (await agent.next_event("s"))["ticketEvents"]["kind"] == "REPLY"
        _done(await lead.gql(ASSIGN, {"id": ticket_id, "to": None}))
        _done(await lead.gql(REPLY, {"id": ticket_id, "body": "After 5521.", "internal": False}))
        await agent.nothing_for()
        assert "After 5521." not in "".join(agent.frames)


MOVE = """mutation($id: ID!, $team: ID!) { moveTicket(input: {ticketId: $id, teamId: $team}) {
  __typename } }"""


async def test_a_ticket_moved_to_another_team_is_an_assignment_event_for_who_still_sees_it(
    url: str, client: httpx.AsyncClient
) -> None:
    ticket = await _ticket("Cannot reset my password")  # the customer's, assigned to the agent
    ticket_id = _gid("Ticket", ticket.id)
    await _outsider()  # seeds the second team
    returns = await Team.get(name="Returns")
    admin = Api(client, await sign_in(client, "admin@example.com"))
    async with (
        subscribed(url, await sign_in(client, CUSTOMER), MY_TICKET_EVENTS) as customer,
        subscribed(url, await sign_in(client, AGENT), TICKET_EVENTS, {"id": ticket_id}) as agent,
    ):
        _done(await admin.gql(MOVE, {"id": ticket_id, "team": _gid("Team", returns.id)}))
        event = (await customer.next_event("s"))["myTicketEvents"]
        assert (event["kind"], event["ticket"]["id"]) == ("ASSIGNMENT_CHANGED", ticket_id)
        # The agent is not in the new team: the ticket left their reach, and the event with it.
        await agent.nothing_for()
        assert "ASSIGNMENT_CHANGED" not in "".join(agent.frames)
    moved = await Ticket.get(id=ticket.id)
    assert (moved.team_id, moved.assignee_id) == (returns.id, None)


async def test_an_agent_whose_role_is_revoked_stops_receiving(
    url: str, client: httpx.AsyncClient
) -> None:
    ticket = await _ticket("Cannot reset my password")
    ticket_id = _gid("Ticket", ticket.id)
    admin = Api(client, await sign_in(client, "admin@example.com"))
    agent = await _user(AGENT)
    async with subscribed(
        url, await sign_in(client, AGENT), TICKET_EVENTS, {"id": ticket_id}
    ) as agent_socket:
        revoked = await admin.gql(
            "mutation($id: ID!) { revokeRole(userId: $id, role: AGENT) { __typename } }",
            {"id": _gid("User", agent.id)},
        )
        _done(revoked)
        lead = Api(client, await sign_in(client, LEAD))
        _done(await lead.gql(REPLY, {"id": ticket_id, "body": "Note 6612.", "internal": True}))
        await agent_socket.nothing_for()
        assert "Note 6612." not in "".join(agent_socket.frames)


async def test_the_mobile_app_subscribes_with_its_access_token(
    app: Any, url: str, client: httpx.AsyncClient
) -> None:
    customer = await _user(CUSTOMER)
    grant = await client.post(
        "/auth/token", data=await app_code_exchange(app.state.store, customer.id)
    )
    assert grant.status_code == 200, grant.text
    tokens = grant.json()
    ticket = await _ticket("Cannot reset my password")
    ticket_id = _gid("Ticket", ticket.id)
    admin = Api(client, await sign_in(client, "admin@example.com"))
    async with socket(url, origin=None) as live_socket:
        ack = await live_socket.init({"authorization": f"Bearer {tokens['access_token']}"})
        assert ack["type"] == "connection_ack"
        await live_socket.subscribe("s", MY_TICKET_EVENTS)
        await _settled()
        _done(await admin.gql(REPLY, {"id": ticket_id, "body": "Hi app.", "internal": False}))
        event = await live_socket.next_event("s")
        assert event["myTicketEvents"]["message"]["body"] == "Hi app."
        signed_out = await client.post(
            "/auth/logout", headers={"authorization": f"Bearer {tokens['access_token']}"}
        )
        assert signed_out.status_code == 204
        assert (await live_socket.closed(within=2))[0] == 4401


# --- the hub ----------------------------------------------------------------------------------


async def test_a_subscriber_that_falls_behind_is_dropped_not_buffered(app: Any) -> None:
    hub = live.Hub(app.state.store)
    dropped: list[bool] = []
    ticket_id = uuid.uuid4()
    event = json.dumps({"t": "ticket", "kind": "status", "ticket": str(ticket_id)})
    with hub.feed(lambda each: each.ticket_id == ticket_id, lambda: dropped.append(True)) as feed:
        for _ in range(live.QUEUE_SIZE):
            hub.dispatch(event)
        assert not dropped
        assert feed.queue.qsize() == live.QUEUE_SIZE
        hub.dispatch(event)
        hub.dispatch(event)
        assert dropped == [True], "dropped once"
        assert feed.queue.qsize() == live.QUEUE_SIZE, "nothing buffered past the bound"
        hub.dispatch(json.dumps({"t": "ticket", "kind": "nonsense", "ticket": "x"}))
        hub.dispatch("{not json")
    assert hub.feeds == set()


async def test_a_stopped_hub_ends_even_where_its_cancellation_is_swallowed(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping process sets stop() first: the loop ends within a poll by itself, even when
    the store's client turns a cancellation into an error and clears it, as seen on Redis."""
    hub = live.Hub(app.state.store)
    reads = 0
    resubscribed = asyncio.Event()

    async def failing_read(*_: object, **__: object) -> None:
        nonlocal reads
        reads += 1
        if reads >= 2:
            resubscribed.set()
        await asyncio.sleep(0.05)
        raise ConnectionError("connection lost")  # what a swallowed cancellation looks like

    monkeypatch.setattr(live, "RECONNECT_SECONDS", 0.05)
    task = asyncio.create_task(hub.run())
    await asyncio.wait_for(hub.subscribed.wait(), 5)
    pubsub_type = type(app.state.store.pubsub())
    monkeypatch.setattr(pubsub_type, "get_message", failing_read)
    # The loop resubscribes after an error it takes for an outage.
    await asyncio.wait_for(resubscribed.wait(), 5)
    assert not task.done()
    hub.stop()
    await asyncio.wait_for(task, 3)
    assert task.exception() is None


async def test_the_channel_carries_ids_only(
    app: Any, client: httpx.AsyncClient, demo: None
) -> None:
    store = app.state.store
    heard: list[str] = []
    async with store.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(live.CHANNEL)
        ticket = await _ticket("Cannot reset my password")
        admin = Api(client, await sign_in(client, "admin@example.com"))
        _done(
            await admin.gql(
                REPLY, {"id": _gid("Ticket", ticket.id), "body": "Body 7731.", "internal": False}
            )
        )
        deadline = time.monotonic() + WAIT
        while not heard and time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.2)
            if message is not None:
                heard.append(str(message["data"]))
    (raw,) = heard
    message = json.loads(raw)
    assert set(message) == {"t", "kind", "ticket", "requester", "message"}
    assert "7731" not in raw
    assert "Cannot reset" not in raw
    assert await TicketMessage.exists(id=message["message"])


# --- two processes ------------------------------------------------------------------------------


async def _across(servers: tuple[str, str], browser: Browser) -> tuple[str, str, str, str]:
    """The customer's ticket, the customer signed in on the first process and the agent on the
    second, and the first's socket URL."""
    first, second = servers
    ticket = await _ticket("Cannot reset my password")
    customer = await browser.session(first, CUSTOMER)
    agent = await browser.session(second, AGENT)
    return (
        _gid("Ticket", ticket.id),
        customer,
        agent,
        first.replace("http://", "ws://") + "/graphql",
    )


@pytest.mark.promise("P19")
async def test_a_reply_posted_through_one_process_reaches_a_subscriber_on_another(
    servers: tuple[str, str], browser: Browser
) -> None:
    ticket_id, customer, agent, first_url = await _across(servers, browser)
    second = servers[1]
    async with subscribed(first_url, customer, TICKET_EVENTS, {"id": ticket_id}) as live_socket:
        await asyncio.sleep(0.5)  # the subscription reaches the other process's channel too
        _done(
            await browser.gql(
                second, agent, REPLY, {"id": ticket_id, "body": NOTE_BODY, "internal": True}
            )
        )
        started = time.monotonic()
        _done(
            await browser.gql(
                second, agent, REPLY, {"id": ticket_id, "body": "From afar.", "internal": False}
            )
        )
        event = await live_socket.next_event("s", within=1.0)
        assert time.monotonic() - started < 1.0
        assert event["ticketEvents"]["kind"] == "REPLY", "the internal note never came first"
        assert event["ticketEvents"]["message"]["body"] == "From afar."
        assert NOTE_BODY not in "".join(live_socket.frames)
        assert await browser.sign_out(second, customer) == 204
        assert (await live_socket.closed(within=2))[0] == 4401


# --- a real client of the protocol --------------------------------------------------------

WS_CLIENT = ROOT / "tests" / "graphql_ws_client"


class NodeSubscriber:
    """graphql-ws's own client (npm), in a Node process of its own, read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    async def next_line(self, within: float = WAIT) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), within)
        assert raw, "the graphql-ws client ended"
        line: dict[str, Any] = json.loads(raw)
        self.lines.append(line)
        return line


@asynccontextmanager
async def node_subscriber(
    url: str, cookie: str, query: str, variables: dict[str, Any]
) -> AsyncIterator[NodeSubscriber]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(WS_CLIENT / "subscribe.mjs"),
        url,
        ORIGIN,
        f"ocis_session={cookie}",
        query,
        json.dumps(variables),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield NodeSubscriber(process)
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), WAIT)


async def test_graphql_ws_s_own_client_gets_a_reply_from_the_other_process_but_no_note(
    servers: tuple[str, str], browser: Browser
) -> None:
    ticket_id, customer, agent, first_url = await _across(servers, browser)
    second = servers[1]
    async with node_subscriber(first_url, customer, TICKET_EVENTS, {"id": ticket_id}) as client:
        assert await client.next_line() == {"connected": True}
        await asyncio.sleep(0.5)  # the subscription reaches the other process's channel too
        note = {"id": ticket_id, "body": NOTE_BODY, "internal": True}
        _done(await browser.gql(second, agent, REPLY, note))
        started = time.monotonic()
        reply = {"id": ticket_id, "body": "From afar, by graphql-ws.", "internal": False}
        _done(await browser.gql(second, agent, REPLY, reply))
        line = await client.next_line(within=1.0)
        assert time.monotonic() - started < 1.0
        event = line["next"]["data"]["ticketEvents"]
        assert event["kind"] == "REPLY", "the internal note never came first"
        assert event["message"]["body"] == "From afar, by graphql-ws."
        assert await browser.sign_out(second, customer) == 204
        closed = await client.next_line(within=2 * WAIT)
        assert closed["closed"] == 4401, client.lines
        assert NOTE_BODY not in json.dumps(client.lines)
