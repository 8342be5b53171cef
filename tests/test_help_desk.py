"""A real help desk from day one (issue #10, "Done when"), end to end over a real SMTP server.

An administrator makes a team and invites an agent and its lead; they accept through the mailed
links and sign in; the lead puts the agent in the team; a customer registers, verifies their
address through the mailed link and opens a ticket that the routing puts in that team's queue;
the agent answers it; the customer gets the reply by mail, then resets their password through the
mailed link, which ends every earlier sign-in of theirs.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import httpx
import pytest

import settings as config
from models import Team, Ticket, TicketMessage
from privacy import mail
from schema.relay import from_global_id, to_global_id
from tests.helpers import ORIGIN, Api, app_code_exchange, sign_in, user_by_email
from tests.smtp_server import Mailbox, Received
from tests.test_queues import with_routing

ADMIN = "admin@example.com"
AGENT = "nia.agent@example.com"
LEAD = "leo.lead@example.com"
CUSTOMER = "cora.customer@example.com"
AGENT_PASSWORD = "the agent's own passphrase"
LEAD_PASSWORD = "the lead's own passphrase"
CUSTOMER_PASSWORD = "cora's first passphrase"
NEW_PASSWORD = "cora's brand new passphrase"
TEAM = "Escalations"
SUBJECT = "My parcel went to the wrong town"
REPLY = "We have asked the carrier to bring it back; it reaches you on Friday."
NOTE = "Internal: the carrier admits the mistake, refund the shipping."

CREATE_TEAM = """mutation($name: String!) { createTeam(name: $name) {
  __typename ... on TeamSuccess { team { id } } } }"""
INVITE = """mutation($email: String!, $roles: [Role!]!, $team: ID) {
  inviteStaff(email: $email, roles: $roles, teamId: $team) { __typename } }"""
ACCEPT = """mutation($token: String!, $name: String, $password: String) {
  acceptInvitation(token: $token, name: $name, password: $password) {
    __typename ... on AcceptInvitationSuccess { user { email roles } } } }"""
DIRECTORY = "{ users(first: 50) { edges { node { id name } } } }"
SET_MEMBERS = """mutation($team: ID!, $users: [ID!]!) {
  setTeamMembers(teamId: $team, userIds: $users) {
    __typename ... on TeamSuccess { team { name members { name } } }
    ... on UserError { message } } }"""
REGISTER = """mutation($input: RegisterInput!) { register(input: $input) { __typename } }"""
VERIFY = "mutation($t: String!) { verifyEmail(token: $t) { __typename } }"
OPEN = """mutation($subject: String!) {
  createTicket(input: {subject: $subject, body: "It was due on Monday.", channel: WEB}) {
    __typename ... on TicketSuccess { ticket { id } } } }"""
QUEUE = """query($team: ID!) { teamQueue(teamId: $team, first: 20) {
  edges { node { id subject } } } }"""
ADD = """mutation($id: ID!, $body: String!, $internal: Boolean!) {
  addMessage(input: {ticketId: $id, body: $body, internal: $internal}) { __typename } }"""
REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(email: $e) { __typename } }"
RESET = """mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) {
  __typename ... on CredentialChanged { sessionsEnded appSignInsEnded } } }"""
ME = "{ me { email } }"
MY_TICKETS = "{ tickets(first: 10) { edges { node { subject } } } }"


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


async def _data(api: Api, query: str, **variables: Any) -> dict[str, Any]:
    body = await api.gql(query, variables)
    assert body.get("errors") is None, body
    data: dict[str, Any] = body["data"]
    return data


async def _deliver(smtp: Mailbox, settings: config.Settings, sent: int) -> list[Received]:
    """Run the delivery loop once; the mails it sent, in order."""
    already = len(smtp.received)
    assert await mail.deliver_due(settings) == mail.Delivery(sent=sent)
    return smtp.received[already:]


def _to(mails: list[Received], address: str) -> Received:
    (got,) = [each for each in mails if each.recipients == [address]]
    assert got.message["To"] == address
    return got


def _link_token(got: Received, path: str) -> str:
    body = got.message.get_content()
    found = re.search(re.escape(f"{ORIGIN}{path}") + r"([A-Za-z0-9_-]+)", body)
    assert found, body
    return found.group(1)


async def _me(http: httpx.AsyncClient, cookie: str) -> Any:
    return (await _data(Api(http, cookie), ME))["me"]


async def _password_status(http: httpx.AsyncClient, email: str, password: str) -> int:
    http.cookies.clear()
    response = await http.post("/auth/password", json={"email": email, "password": password})
    http.cookies.clear()
    return response.status_code


async def _bearer_me(http: httpx.AsyncClient, access_token: str) -> httpx.Response:
    http.cookies.clear()
    return await http.post(
        "/graphql",
        json={"query": ME},
        headers={"authorization": f"Bearer {access_token}", "origin": ""},
    )


async def test_a_help_desk_runs_from_invitations_to_a_mailed_reply_and_a_password_reset(
    app: Any,
    client: httpx.AsyncClient,
    as_user: Any,
    smtp: Mailbox,
    mail_settings: config.Settings,
) -> None:
    # The administrator makes the team and invites its lead (into it) and an agent (into none).
    admin = await as_user(ADMIN)
    created = await _data(admin, CREATE_TEAM, name=TEAM)
    team_id = created["createTeam"]["team"]["id"]
    invited = await _data(admin, INVITE, email=LEAD, roles=["TEAM_LEAD"], team=team_id)
    assert invited["inviteStaff"]["__typename"] == "InviteStaffSuccess"
    invited = await _data(admin, INVITE, email=AGENT, roles=["AGENT"], team=None)
    assert invited["inviteStaff"]["__typename"] == "InviteStaffSuccess"

    # Both accept through the links mailed to them, then sign in with their own passwords.
    invitations = await _deliver(smtp, mail_settings, sent=2)
    for email, name, password, roles in (
        (LEAD, "Leo Lead", LEAD_PASSWORD, ["TEAM_LEAD"]),
        (AGENT, "Nia Agent", AGENT_PASSWORD, ["AGENT"]),
    ):
        token = _link_token(_to(invitations, email), "/invitation#")
        accepted = await _data(Api(client), ACCEPT, token=token, name=name, password=password)
        assert accepted["acceptInvitation"] == {
            "__typename": "AcceptInvitationSuccess",
            "user": {"email": email, "roles": roles},
        }
    lead_cookie = await sign_in(client, LEAD, LEAD_PASSWORD)
    agent_cookie = await sign_in(client, AGENT, AGENT_PASSWORD)
    lead, agent = Api(client, lead_cookie), Api(client, agent_cookie)
    assert await _me(client, lead_cookie) == {"email": LEAD}

    # Not yet in the team, the agent may not see its queue.
    outside = await agent.gql(QUEUE, {"team": team_id})
    assert outside["data"] == {"teamQueue": None}
    assert [error["extensions"]["code"] for error in outside["errors"]] == ["FORBIDDEN"]

    # The lead finds the agent in the staff directory and puts them in the team.
    # (Customers' names stay hidden from the lead: those come back null, coded FORBIDDEN.)
    people = (await lead.gql(DIRECTORY))["data"]["users"]["edges"]
    ids = {edge["node"]["name"]: edge["node"]["id"] for edge in people if edge["node"]["name"]}
    staffed = await _data(
        lead, SET_MEMBERS, team=team_id, users=[ids["Leo Lead"], ids["Nia Agent"]]
    )
    assert staffed["setTeamMembers"]["__typename"] == "TeamSuccess", staffed
    members = staffed["setTeamMembers"]["team"]["members"]
    assert sorted(member["name"] for member in members) == ["Leo Lead", "Nia Agent"]
    escalations = await Team.get(name=TEAM)
    assert (await user_by_email(AGENT)).team_id == escalations.id

    # New tickets join the team (the operator's OCIS_DEFAULT_TEAM).
    with_routing(app, config.Routing(default_team=TEAM))

    # A customer registers, verifies the address through the mailed link, signs in.
    form = {
        "name": "Cora Customer",
        "email": CUSTOMER,
        "password": CUSTOMER_PASSWORD,
        "dateOfBirth": "1988-03-09",
    }
    registered = await _data(Api(client), REGISTER, input=form)
    assert registered["register"]["__typename"] == "CheckYourMail"
    assert await _password_status(client, CUSTOMER, CUSTOMER_PASSWORD) == 401  # not verified
    verification = _to(await _deliver(smtp, mail_settings, sent=1), CUSTOMER)
    token = _link_token(verification, "/account/verify-email#token=")
    verified = await _data(Api(client), VERIFY, t=token)
    assert verified["verifyEmail"]["__typename"] == "VerifyEmailSuccess"
    first_device = await sign_in(client, CUSTOMER, CUSTOMER_PASSWORD)
    other_device = await sign_in(client, CUSTOMER, CUSTOMER_PASSWORD)
    customer = Api(client, first_device)
    app_grant = await client.post(
        "/auth/token",
        data=await app_code_exchange(app.state.store, (await user_by_email(CUSTOMER)).id),
    )
    assert app_grant.status_code == 200, app_grant.text
    access_token = app_grant.json()["access_token"]

    # The ticket they open lands in the team's queue, where the agent sees it.
    opened = await _data(customer, OPEN, subject=SUBJECT)
    assert opened["createTicket"]["__typename"] == "TicketSuccess"
    ticket_id = opened["createTicket"]["ticket"]["id"]
    ticket = await Ticket.get(id=from_global_id(ticket_id)[1])
    assert ticket.team_id == escalations.id
    queue = await _data(agent, QUEUE, team=team_id)
    assert queue["teamQueue"]["edges"] == [{"node": {"id": ticket_id, "subject": SUBJECT}}]

    # The agent writes an internal note and answers; the customer gets the reply, not the note.
    for body, internal in ((NOTE, True), (REPLY, False)):
        added = await _data(agent, ADD, id=ticket_id, body=body, internal=internal)
        assert added["addMessage"]["__typename"] == "AddMessageSuccess"
    assert await TicketMessage.filter(ticket_id=ticket.id).count() == 3
    replied = _to(await _deliver(smtp, mail_settings, sent=1), CUSTOMER)
    assert replied.message["Subject"] == "There is a new reply on your OCIS ticket"
    text = replied.message.get_content()
    assert REPLY in text
    assert f"{ORIGIN}/tickets/{to_global_id('Ticket', ticket.id)}" in text
    assert NOTE not in "\n".join(got.message.as_string() for got in smtp.received)

    # The customer resets the password through the mailed link: every earlier sign-in ends.
    requested = await _data(Api(client), REQUEST_RESET, e=CUSTOMER)
    assert requested["requestPasswordReset"]["__typename"] == "CheckYourMail"
    reset_mail = _to(await _deliver(smtp, mail_settings, sent=1), CUSTOMER)
    assert reset_mail.message["Subject"] == "Reset your OCIS password"
    token = _link_token(reset_mail, "/account/reset-password#token=")
    reset = await _data(Api(client), RESET, t=token, p=NEW_PASSWORD)
    assert reset["resetPassword"] == {
        "__typename": "CredentialChanged",
        "sessionsEnded": 2,
        "appSignInsEnded": 1,
    }
    # Both ended sessions are told to sign in again (401 SESSION_EXPIRED), nothing runs.
    for cookie in (first_device, other_device):
        for query, variables in (
            (ME, {}),
            (ADD, {"id": ticket_id, "body": "Hi", "internal": False}),
            (MY_TICKETS, {}),
        ):
            refused = await Api(client, cookie).post(query, variables)
            assert refused.status_code == 401, refused.text
            assert "data" not in refused.json()
            assert refused.json()["errors"][0]["extensions"]["code"] == "SESSION_EXPIRED"
    assert (await _bearer_me(client, access_token)).status_code == 401
    assert await TicketMessage.filter(ticket_id=ticket.id).count() == 3
    assert await _password_status(client, CUSTOMER, CUSTOMER_PASSWORD) == 401
    fresh = Api(client, await sign_in(client, CUSTOMER, NEW_PASSWORD))
    assert await _data(fresh, MY_TICKETS) == {
        "tickets": {"edges": [{"node": {"subject": SUBJECT}}]}
    }
    changed = _to(await _deliver(smtp, mail_settings, sent=1), CUSTOMER)
    assert changed.message["Subject"] == "Your OCIS password was changed"
    # Nobody else's sign-in ended.
    assert await _me(client, agent_cookie) == {"email": AGENT}
