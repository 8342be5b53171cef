"""Staff administration: invitations by mail, staff roles, teams; administrators only.

Invitations go through the real outbox to a real SMTP server on loopback. Role revocation
is proven across two server processes sharing the database and Redis.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

import settings as config
from models import AuditEvent, Invitation, Notice, Role, Team, User, UserStatus
from privacy import mail
from privacy.audit_actions import AuditAction
from resolvers.staff import INVALID_LINK, INVITATION_TTL
from schema.relay import from_global_id, to_global_id
from tests import test_two_processes as two
from tests.helpers import Api, app_code_exchange, database_rows, sign_in, user_by_email
from tests.smtp_server import Mailbox
from tests.test_two_processes import Browser

# Two real server processes on one database and one Redis (tests/test_two_processes.py).
servers, shared_redis, browser = two.servers, two.shared_redis, two.browser

ADMIN = "admin@example.com"
AGENT = "agent@example.com"
AGENT2 = "agent2@example.com"
LEAD = "lead@example.com"
OFFICER = "privacy@example.com"
CUSTOMER = "customer@example.com"
CUSTOMER2 = "customer2@example.com"
NEWCOMER = "new.agent@example.com"
PASSWORD = "a long staff passphrase"
LINK = re.compile(r"http://127\.0\.0\.1:8000/invitation#([A-Za-z0-9_-]+)")
ERROR = "__typename ... on UserError { message code } ... on InvalidInputError { field }"
ERRORS = f"{ERROR} ... on NotFoundError {{ field }}"

INVITE = f"""mutation($email: String!, $roles: [Role!]!, $team: ID) {{
  result: inviteStaff(email: $email, roles: $roles, teamId: $team) {{
    {ERRORS} ... on InviteStaffSuccess {{ invitation {{ id email roles expiresAt
      team {{ name }} invitedBy {{ email }} }} }} }} }}"""
ACCEPT = f"""mutation($token: String!, $name: String, $password: String) {{
  result: acceptInvitation(token: $token, name: $name, password: $password) {{
    {ERRORS} ... on AcceptInvitationSuccess {{ user {{ email roles }} }} }} }}"""
REVOKE_INVITATION = f"""mutation($id: ID!) {{ result: revokeInvitation(id: $id) {{
  {ERRORS} ... on RevokeInvitationSuccess {{ invitation {{ revokedAt }} }} }} }}"""
GRANT = f"""mutation($user: ID!, $role: Role!) {{ result: grantRole(userId: $user, role: $role) {{
  {ERRORS} ... on StaffRoleSuccess {{ user {{ roles }} }} }} }}"""
REVOKE = f"""mutation($user: ID!, $role: Role!) {{ result: revokeRole(userId: $user, role: $role) {{
  {ERRORS} ... on StaffRoleSuccess {{ user {{ roles }} }} }} }}"""
TEAM = "... on TeamSuccess { team { id name archivedAt members { email roles } } }"
CREATE_TEAM = f"""mutation($name: String!) {{ result: createTeam(name: $name) {{
  {ERRORS} {TEAM} }} }}"""
RENAME_TEAM = f"""mutation($id: ID!, $name: String!) {{ result: renameTeam(id: $id, name: $name) {{
  {ERRORS} {TEAM} }} }}"""
ARCHIVE_TEAM = f"""mutation($id: ID!) {{ result: archiveTeam(id: $id) {{ {ERRORS} {TEAM} }} }}"""
SET_MEMBERS = f"""mutation($team: ID!, $users: [ID!]!) {{
  result: setTeamMembers(teamId: $team, userIds: $users) {{ {ERRORS} {TEAM} }} }}"""
SET_LEAD = f"""mutation($team: ID!, $user: ID!) {{
  result: setTeamLead(teamId: $team, userId: $user) {{ {ERRORS} {TEAM} }} }}"""
TICKETS = "{ tickets(first: 50) { edges { node { id } } } }"


@pytest.fixture
def mail_settings(app: Any, smtp: Mailbox) -> config.Settings:
    settings: config.Settings = app.state.settings
    return replace(settings, smtp_url=smtp.url, mail_from="OCIS <no-reply@ocis.test>")


async def _gid(email: str) -> str:
    return str(to_global_id("User", (await user_by_email(email)).id))


async def _team_gid(name: str) -> str:
    return str(to_global_id("Team", (await Team.get(name=name)).id))


async def _result(api: Api, query: str, **variables: Any) -> dict[str, Any]:
    body = await api.gql(query, variables)
    assert body.get("errors") is None, body
    result: dict[str, Any] = body["data"]["result"]
    return result


async def _invite(admin: Api, email: str, roles: list[str], team: str | None = None) -> str:
    result = await _result(admin, INVITE, email=email, roles=roles, team=team)
    assert result["__typename"] == "InviteStaffSuccess", result
    return str(result["invitation"]["id"])


async def _mailed_token(smtp: Mailbox, settings: config.Settings, to: str) -> str:
    assert await mail.deliver_due(settings) == mail.Delivery(sent=1)
    got = smtp.received[-1]
    assert got.recipients == [to]
    body = got.message.get_content()
    found = LINK.search(body)
    assert found is not None, body
    return found.group(1)


async def _roles(email: str) -> list[str]:
    return sorted((await user_by_email(email)).roles)


def _actions(events: list[AuditEvent]) -> list[str]:
    return [event.action for event in events]


# --- Invitations. ---


async def test_an_invited_agent_accepts_by_the_mailed_link_then_signs_in_with_the_role(
    as_user: Any, client: httpx.AsyncClient, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    admin = await as_user(ADMIN)
    team = await _result(admin, CREATE_TEAM, name="Escalations")
    team_id = team["team"]["id"]
    moment = datetime.now(UTC)
    result = await _result(admin, INVITE, email=f"  {NEWCOMER} ", roles=["AGENT"], team=team_id)
    invitation = result["invitation"]
    assert invitation["email"] == NEWCOMER
    assert invitation["roles"] == ["AGENT"]
    assert invitation["team"] == {"name": "Escalations"}
    assert invitation["invitedBy"] == {"email": ADMIN}
    expires = datetime.fromisoformat(invitation["expiresAt"])
    assert (
        moment + INVITATION_TTL - timedelta(minutes=1)
        < expires
        <= datetime.now(UTC) + (INVITATION_TTL)
    )

    token = await _mailed_token(smtp, mail_settings, NEWCOMER)
    assert len(token) >= 43  # 32 random bytes
    row = await Invitation.get()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = await database_rows()
    assert token not in stored  # only its hash is kept
    assert NEWCOMER not in stored  # the address is sealed
    notice = await Notice.get(kind="staff.invited")
    assert notice.link is None  # cleared once sent

    accepted = await _result(
        Api(client), ACCEPT, token=token, name="Nia Newcomer", password=PASSWORD
    )
    assert accepted == {
        "__typename": "AcceptInvitationSuccess",
        "user": {"email": NEWCOMER, "roles": ["AGENT"]},
    }
    newcomer = Api(client, await sign_in(client, NEWCOMER, PASSWORD))
    me = await newcomer.gql("{ me { name email roles } }")
    assert me["data"]["me"] == {"name": "Nia Newcomer", "email": NEWCOMER, "roles": ["AGENT"]}
    user = await user_by_email(NEWCOMER)
    assert str(user.team_id) == str((await Team.get(name="Escalations")).id)
    row = await Invitation.get()
    assert row.accepted_at is not None
    assert row.accepted_by_id == user.id
    assert (row.email, row.email_index) == (None, None)  # the account holds the address now

    # The link works once.
    before = await database_rows()
    again = await _result(Api(client), ACCEPT, token=token, name="Mallory", password=PASSWORD)
    assert again["__typename"] == "InvalidInputError"
    assert (again["message"], again["field"]) == (INVALID_LINK, "token")
    assert await database_rows() == before

    events = await AuditEvent.filter(action__startswith="staff.").order_by("seq")
    assert _actions(events) == [AuditAction.STAFF_INVITE, AuditAction.STAFF_INVITATION_ACCEPT]
    invite, accept = events
    assert invite.actor_id == (await user_by_email(ADMIN)).id
    assert invite.entity_id == str(row.id)
    assert accept.subject_id == user.id
    assert accept.field_names == ["User.roles", "User.team"]
    trail = "\n".join(repr(event.__dict__) for event in await AuditEvent.all())
    assert NEWCOMER not in trail
    assert token not in trail


async def test_expired_revoked_and_unknown_links_get_one_answer_and_change_nothing(
    as_user: Any, client: httpx.AsyncClient, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    admin = await as_user(ADMIN)
    late_id = await _invite(admin, "late@example.com", ["AGENT"])
    late = await _mailed_token(smtp, mail_settings, "late@example.com")
    revoked_id = await _invite(admin, "revoked@example.com", ["TEAM_LEAD"])
    revoked = await _mailed_token(smtp, mail_settings, "revoked@example.com")
    await Invitation.filter(id=from_global_id(late_id)[1]).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    result = await _result(admin, REVOKE_INVITATION, id=revoked_id)
    assert result["invitation"]["revokedAt"] is not None
    again = await _result(admin, REVOKE_INVITATION, id=revoked_id)
    assert (again["__typename"], again["field"]) == ("InvalidInputError", "id")

    before = await database_rows()
    for token in (late, revoked, "x" * 43, "", "y" * 500):
        refused = await _result(Api(client), ACCEPT, token=token, name="Eve", password=PASSWORD)
        assert refused == {
            "__typename": "InvalidInputError",
            "message": INVALID_LINK,
            "code": "INVALID_INPUT",
            "field": "token",
        }
    assert await database_rows() == before

    listed = await admin.gql(
        "{ invitations { email revokedAt } open: invitations(openOnly: true) { id } }"
    )
    assert sorted(item["email"] for item in listed["data"]["invitations"]) == [
        "late@example.com",
        "revoked@example.com",
    ]
    assert listed["data"]["open"] == []


async def test_a_weak_password_or_missing_name_keeps_the_link_usable(
    as_user: Any, client: httpx.AsyncClient, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    admin = await as_user(ADMIN)
    await _invite(admin, NEWCOMER, ["AGENT"])
    token = await _mailed_token(smtp, mail_settings, NEWCOMER)
    before = await database_rows()
    for name, password, field in (("Nia", "short", "password"), ("  ", PASSWORD, "name")):
        refused = await _result(Api(client), ACCEPT, token=token, name=name, password=password)
        assert (refused["__typename"], refused["field"]) == ("InvalidInputError", field)
    assert await database_rows() == before
    accepted = await _result(Api(client), ACCEPT, token=token, name="Nia", password=PASSWORD)
    assert accepted["__typename"] == "AcceptInvitationSuccess"
    assert (await user_by_email(NEWCOMER)).name == "Nia"


async def test_an_existing_account_gains_the_roles_only_signed_in_to_that_address(
    as_user: Any, client: httpx.AsyncClient, smtp: Mailbox, mail_settings: config.Settings
) -> None:
    admin = await as_user(ADMIN)
    await _invite(admin, CUSTOMER, ["PRIVACY_OFFICER"])
    token = await _mailed_token(smtp, mail_settings, CUSTOMER)
    someone_else = Api(client, await sign_in(client, CUSTOMER2))
    owner = Api(client, await sign_in(client, CUSTOMER))
    before = await database_rows()
    # Someone else signed in, or nobody: the address has an account, so neither takes it.
    other = await _result(someone_else, ACCEPT, token=token)
    assert (other["__typename"], other["field"]) == ("InvalidInputError", "token")
    assert "another address" in other["message"]
    anonymous = await _result(Api(client), ACCEPT, token=token, name="C", password=PASSWORD)
    assert (anonymous["__typename"], anonymous["field"]) == ("InvalidInputError", "token")
    assert "sign in to it" in anonymous["message"]
    assert await database_rows() == before

    accepted = await _result(owner, ACCEPT, token=token)
    assert accepted == {
        "__typename": "AcceptInvitationSuccess",
        "user": {"email": CUSTOMER, "roles": ["CUSTOMER", "PRIVACY_OFFICER"]},
    }
    assert await _roles(CUSTOMER) == ["customer", "privacy_officer"]
    # The role works on the next request of the same session.
    requests = await owner.gql("{ users(first: 1) { edges { node { id } } } }")
    assert requests.get("errors") is None


# --- Who may do it. ---


NOT_ADMINS = [AGENT, LEAD, OFFICER, CUSTOMER, None]


@pytest.mark.parametrize("who", NOT_ADMINS, ids=lambda who: who or "anonymous")
async def test_only_administrators_manage_staff_and_teams(
    as_user: Any, smtp: Mailbox, mail_settings: config.Settings, who: str | None
) -> None:
    admin = await as_user(ADMIN)
    invitation = await _invite(admin, NEWCOMER, ["AGENT"])
    team = await _team_gid("Support")
    agent, customer = await _gid(AGENT), await _gid(CUSTOMER)
    api = await as_user(who)
    expected = "ForbiddenError" if who else "AuthenticationRequiredError"
    before = await database_rows()
    calls: list[tuple[str, dict[str, Any]]] = [
        (INVITE, {"email": "x@example.com", "roles": ["ADMINISTRATOR"], "team": None}),
        (REVOKE_INVITATION, {"id": invitation}),
        (GRANT, {"user": customer, "role": "ADMINISTRATOR"}),
        (REVOKE, {"user": agent, "role": "AGENT"}),
        (CREATE_TEAM, {"name": "Shadow"}),
        (RENAME_TEAM, {"id": team, "name": "Shadow"}),
        (ARCHIVE_TEAM, {"id": team}),
        (SET_MEMBERS, {"team": team, "users": [agent]}),
        (SET_LEAD, {"team": team, "user": agent}),
    ]
    if who == LEAD:  # a lead sets the agents of their own team: the lead tests below
        calls.remove((SET_MEMBERS, {"team": team, "users": [agent]}))
    for query, variables in calls:
        result = await _result(api, query, **variables)
        assert result["__typename"] == expected, (query, result)
    for root in ("invitations { email }", "teams { name }"):
        body = await api.gql(f"{{ {root} }}")
        assert body["data"] == {root.split(" ")[0]: None}
        assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]
        assert NEWCOMER not in str(body)
    assert await database_rows() == before


# --- A team lead sets the agents of their own team. ---


LEAD_SET_MEMBERS = f"""mutation($team: ID!, $users: [ID!]!) {{
  result: setTeamMembers(teamId: $team, userIds: $users) {{
    {ERRORS} ... on TeamSuccess {{ team {{ name members {{ name }} }} }} }} }}"""


async def _staff(email: str, name: str, roles: list[Role], team: str | None) -> str:
    user = User(
        name=name,
        password_hash="unused",
        roles=[role.value for role in roles],
        team=await Team.get(name=team) if team else None,
        email_verified_at=datetime.now(UTC),
    )
    user.set_email(email)
    await user.save()
    return str(to_global_id("User", user.id))


async def test_a_lead_adds_and_removes_agents_of_their_own_team_audited(as_user: Any) -> None:
    admin = await as_user(ADMIN)
    # A customer made an agent by an administrator: staff in no team yet.
    await _result(admin, GRANT, user=await _gid(CUSTOMER2), role="AGENT")
    lead = await as_user(LEAD)
    lead_id, agent, newcomer = await _gid(LEAD), await _gid(AGENT), await _gid(CUSTOMER2)
    support = await _team_gid("Support")

    result = await _result(lead, LEAD_SET_MEMBERS, team=support, users=[lead_id, agent, newcomer])
    assert result["__typename"] == "TeamSuccess", result
    assert sorted(member["name"] for member in result["team"]["members"]) == [
        "Alex Agent",
        "Chris Customer",
        "Lena Lead",
    ]
    support_id = (await Team.get(name="Support")).id
    assert (await user_by_email(CUSTOMER2)).team_id == support_id
    assert (await user_by_email(AGENT2)).team_id is None  # left: not in the list

    events = await AuditEvent.filter(action=AuditAction.TEAM_MEMBERSHIP).order_by("seq")
    assert [(event.subject_id, event.field_names) for event in events] == [
        ((await user_by_email(AGENT2)).id, ["User.team"]),
        ((await user_by_email(CUSTOMER2)).id, ["User.team"]),
    ]
    assert {event.actor_id for event in events} == {(await user_by_email(LEAD)).id}
    assert {event.entity_id for event in events} == {str(support_id)}

    # The agent who left is in no team, so the lead may take them back.
    back = await _result(
        lead, LEAD_SET_MEMBERS, team=support, users=[lead_id, agent, newcomer, await _gid(AGENT2)]
    )
    assert len(back["team"]["members"]) == 4
    assert (await user_by_email(AGENT2)).team_id == support_id


OWN_TEAM_ONLY = "A team lead sets the members of their own team only."
ONLY_AGENTS = "A team lead adds or removes only agents: keep every other member in the list."
NOT_FROM_ANOTHER_TEAM = (
    "An agent of another team joins yours once its lead or an administrator lets them go."
)
SUPPORT_NOW = ["$LEAD", "$AGENT", "$AGENT2", "$SUPPORT_OFFICER"]
LEAD_REFUSED: list[tuple[str, str, list[str], str, str]] = [
    ("another team", "$BILLING", ["$FREE_AGENT"], "ForbiddenError", OWN_TEAM_ONLY),
    ("another team emptied", "$BILLING", [], "ForbiddenError", OWN_TEAM_ONLY),
    ("an unknown team", "$NO_TEAM", [], "ForbiddenError", OWN_TEAM_ONLY),
    (
        "adding an administrator",
        "$SUPPORT",
        [*SUPPORT_NOW, "$ADMIN"],
        "ForbiddenError",
        ONLY_AGENTS,
    ),
    (
        "adding a privacy officer",
        "$SUPPORT",
        [*SUPPORT_NOW, "$OFFICER"],
        "ForbiddenError",
        ONLY_AGENTS,
    ),
    (
        "adding another lead",
        "$SUPPORT",
        [*SUPPORT_NOW, "$FREE_LEAD"],
        "ForbiddenError",
        ONLY_AGENTS,
    ),
    (
        "adding an agent who is also a privacy officer",
        "$SUPPORT",
        [*SUPPORT_NOW, "$AGENT_OFFICER"],
        "ForbiddenError",
        ONLY_AGENTS,
    ),
    ("removing themselves", "$SUPPORT", SUPPORT_NOW[1:], "ForbiddenError", ONLY_AGENTS),
    ("removing a privacy officer", "$SUPPORT", SUPPORT_NOW[:3], "ForbiddenError", ONLY_AGENTS),
    (
        "taking an agent from another team",
        "$SUPPORT",
        [*SUPPORT_NOW, "$BILLING_AGENT"],
        "ForbiddenError",
        NOT_FROM_ANOTHER_TEAM,
    ),
    (
        "adding a customer",
        "$SUPPORT",
        [*SUPPORT_NOW, "$CUSTOMER"],
        "InvalidInputError",
        "Only staff members can be in a team.",
    ),
    (
        "adding nobody known",
        "$SUPPORT",
        [*SUPPORT_NOW, "$NO_USER"],
        "NotFoundError",
        "No such account.",
    ),
]


@pytest.mark.parametrize(
    ("team", "users", "error", "message"),
    [case[1:] for case in LEAD_REFUSED],
    ids=[case[0] for case in LEAD_REFUSED],
)
async def test_a_lead_is_refused_beyond_the_agents_of_their_team_and_nothing_changes(
    as_user: Any, team: str, users: list[str], error: str, message: str
) -> None:
    admin = await as_user(ADMIN)
    await _result(admin, CREATE_TEAM, name="Billing")
    nobody = UUID("00000000-0000-4000-8000-000000000000")
    names = {
        "$SUPPORT": await _team_gid("Support"),
        "$BILLING": await _team_gid("Billing"),
        "$NO_TEAM": str(to_global_id("Team", nobody)),
        "$NO_USER": str(to_global_id("User", nobody)),
        "$LEAD": await _gid(LEAD),
        "$AGENT": await _gid(AGENT),
        "$AGENT2": await _gid(AGENT2),
        "$ADMIN": await _gid(ADMIN),
        "$OFFICER": await _gid(OFFICER),
        "$CUSTOMER": await _gid(CUSTOMER),
        "$SUPPORT_OFFICER": await _staff(
            "support.officer@example.com", "Sue Officer", [Role.PRIVACY_OFFICER], "Support"
        ),
        "$FREE_AGENT": await _staff("free.agent@example.com", "Fay Agent", [Role.AGENT], None),
        "$FREE_LEAD": await _staff("free.lead@example.com", "Flo Lead", [Role.TEAM_LEAD], None),
        "$AGENT_OFFICER": await _staff(
            "agent.officer@example.com", "Al Both", [Role.AGENT, Role.PRIVACY_OFFICER], None
        ),
        "$BILLING_AGENT": await _staff(
            "billing.agent@example.com", "Bill Agent", [Role.AGENT], "Billing"
        ),
    }
    lead = await as_user(LEAD)
    variables = {"team": names[team], "users": [names[each] for each in users]}
    before = await database_rows()
    result = await _result(lead, LEAD_SET_MEMBERS, **variables)
    assert result["__typename"] == error, result
    assert result["message"] == message
    assert await database_rows() == before


async def test_an_administrator_still_puts_any_staff_member_in_a_team_even_from_another(
    as_user: Any,
) -> None:
    """What a lead may not do, an administrator still may."""
    admin = await as_user(ADMIN)
    await _result(admin, CREATE_TEAM, name="Billing")
    billing_agent = await _staff("billing.agent@example.com", "Bill Agent", [Role.AGENT], "Billing")
    support = await _team_gid("Support")
    everyone = [await _gid(email) for email in (LEAD, AGENT, AGENT2, OFFICER, ADMIN)]
    result = await _result(admin, SET_MEMBERS, team=support, users=[*everyone, billing_agent])
    assert result["__typename"] == "TeamSuccess", result
    assert len(result["team"]["members"]) == 6
    assert await User.filter(team_id=(await Team.get(name="Billing")).id).count() == 0


# --- Bad input. ---


BAD_INPUT: list[tuple[str, str, dict[str, Any], str, str | None]] = [
    ("invalid email", INVITE, {"email": "not-an-email", "roles": ["AGENT"]}, "Invalid", "email"),
    (
        "huge email",
        INVITE,
        {"email": "a" * 250 + "@example.com", "roles": ["AGENT"]},
        "Invalid",
        "email",
    ),
    ("no roles", INVITE, {"email": NEWCOMER, "roles": []}, "Invalid", "roles"),
    ("customer role", INVITE, {"email": NEWCOMER, "roles": ["CUSTOMER"]}, "Invalid", "roles"),
    (
        "unknown team",
        INVITE,
        {"email": NEWCOMER, "roles": ["AGENT"], "team": "$NO_TEAM"},
        "NotFound",
        "teamId",
    ),
    (
        "archived team",
        INVITE,
        {"email": NEWCOMER, "roles": ["AGENT"], "team": "$ARCHIVED"},
        "Invalid",
        "teamId",
    ),
    (
        "user id as team",
        INVITE,
        {"email": NEWCOMER, "roles": ["AGENT"], "team": "$AGENT"},
        "Invalid",
        "teamId",
    ),
    (
        "open already",
        INVITE,
        {"email": "invited@example.com", "roles": ["AGENT"]},
        "Invalid",
        "email",
    ),
    ("unknown invitation", REVOKE_INVITATION, {"id": "$NO_INVITATION"}, "NotFound", "id"),
    ("malformed id", REVOKE_INVITATION, {"id": "bm9wZQ"}, "Invalid", "id"),
    ("unknown user", GRANT, {"user": "$NO_USER", "role": "AGENT"}, "NotFound", "userId"),
    ("grant customer", GRANT, {"user": "$CUSTOMER", "role": "CUSTOMER"}, "Invalid", "role"),
    ("grant held", GRANT, {"user": "$AGENT", "role": "AGENT"}, "Invalid", "role"),
    ("revoke not held", REVOKE, {"user": "$CUSTOMER", "role": "AGENT"}, "Invalid", "role"),
    ("revoke unknown", REVOKE, {"user": "$NO_USER", "role": "AGENT"}, "NotFound", "userId"),
    ("empty name", CREATE_TEAM, {"name": ""}, "Invalid", "name"),
    ("blank name", CREATE_TEAM, {"name": "   "}, "Invalid", "name"),
    ("huge name", CREATE_TEAM, {"name": "T" * 101}, "Invalid", "name"),
    ("control characters", CREATE_TEAM, {"name": "Sup\x00port"}, "Invalid", "name"),
    ("duplicate name", CREATE_TEAM, {"name": " support "}, "Invalid", "name"),
    ("archived name", CREATE_TEAM, {"name": "Old"}, "Invalid", "name"),
    ("rename unknown", RENAME_TEAM, {"id": "$NO_TEAM", "name": "New"}, "NotFound", "id"),
    ("rename taken", RENAME_TEAM, {"id": "$SUPPORT", "name": "OLD"}, "Invalid", "name"),
    ("rename same", RENAME_TEAM, {"id": "$SUPPORT", "name": "Support"}, "Invalid", "name"),
    ("rename archived", RENAME_TEAM, {"id": "$ARCHIVED", "name": "New"}, "Invalid", "id"),
    ("archive twice", ARCHIVE_TEAM, {"id": "$ARCHIVED"}, "Invalid", "id"),
    ("archive unknown", ARCHIVE_TEAM, {"id": "$NO_TEAM"}, "NotFound", "id"),
    (
        "customer member",
        SET_MEMBERS,
        {"team": "$SUPPORT", "users": ["$AGENT", "$CUSTOMER"]},
        "Invalid",
        "userIds",
    ),
    (
        "unknown member",
        SET_MEMBERS,
        {"team": "$SUPPORT", "users": ["$NO_USER"]},
        "NotFound",
        "userIds",
    ),
    (
        "malformed member",
        SET_MEMBERS,
        {"team": "$SUPPORT", "users": ["bm9wZQ"]},
        "Invalid",
        "userIds",
    ),
    (
        "archived members",
        SET_MEMBERS,
        {"team": "$ARCHIVED", "users": ["$AGENT"]},
        "Invalid",
        "teamId",
    ),
    ("members of nothing", SET_MEMBERS, {"team": "$NO_TEAM", "users": []}, "NotFound", "teamId"),
    ("customer lead", SET_LEAD, {"team": "$SUPPORT", "user": "$CUSTOMER"}, "Invalid", "userId"),
    ("lead already", SET_LEAD, {"team": "$SUPPORT", "user": "$LEAD"}, "Invalid", "userId"),
    ("archived lead", SET_LEAD, {"team": "$ARCHIVED", "user": "$AGENT"}, "Invalid", "teamId"),
    ("unknown lead", SET_LEAD, {"team": "$SUPPORT", "user": "$NO_USER"}, "NotFound", "userId"),
]


@pytest.mark.parametrize(
    ("query", "variables", "error", "field"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
async def test_bad_input_gets_a_typed_error_and_changes_nothing(
    as_user: Any,
    query: str,
    variables: dict[str, Any],
    error: str,
    field: str | None,
) -> None:
    admin = await as_user(ADMIN)
    await _invite(admin, "invited@example.com", ["AGENT"])
    archived = await _result(admin, CREATE_TEAM, name="Old")
    await _result(admin, ARCHIVE_TEAM, id=archived["team"]["id"])
    nobody = UUID("00000000-0000-4000-8000-000000000000")
    names = {
        "$NO_TEAM": str(to_global_id("Team", nobody)),
        "$NO_USER": str(to_global_id("User", nobody)),
        "$NO_INVITATION": str(to_global_id("Invitation", nobody)),
        "$ARCHIVED": archived["team"]["id"],
        "$SUPPORT": await _team_gid("Support"),
        "$AGENT": await _gid(AGENT),
        "$LEAD": await _gid(LEAD),
        "$CUSTOMER": await _gid(CUSTOMER),
    }

    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(item) for item in value]
        return names.get(value, value) if isinstance(value, str) else value

    variables = {key: fill(value) for key, value in variables.items()}
    before = await database_rows()
    result = await _result(admin, query, **variables)
    assert result["__typename"] == f"{error}{'Input' if error == 'Invalid' else ''}Error", result
    assert result["message"]
    assert result["field"] == field
    assert await database_rows() == before


async def test_an_unknown_role_name_is_refused_before_anything_runs(as_user: Any) -> None:
    admin = await as_user(ADMIN)
    before = await database_rows()
    response = await admin.post(INVITE, {"email": NEWCOMER, "roles": ["OVERLORD"]})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert len(body["errors"]) == 1
    assert await database_rows() == before


# --- Roles and the last administrator. ---


async def test_roles_are_granted_and_revoked_and_audited_without_values(as_user: Any) -> None:
    admin = await as_user(ADMIN)
    customer = await _gid(CUSTOMER)
    granted = await _result(admin, GRANT, user=customer, role="AGENT")
    assert granted["user"]["roles"] == ["AGENT", "CUSTOMER"]
    revoked = await _result(admin, REVOKE, user=await _gid(AGENT), role="AGENT")
    assert revoked["user"]["roles"] == []
    agent = await user_by_email(AGENT)
    assert agent.team_id is None  # no staff role left: no team either
    events = await AuditEvent.filter(action__startswith="role.").order_by("seq")
    assert _actions(events) == [AuditAction.ROLE_GRANT, AuditAction.ROLE_REVOKE]
    assert [event.subject_id for event in events] == [
        (await user_by_email(CUSTOMER)).id,
        agent.id,
    ]
    assert [event.field_names for event in events] == [
        ["User.roles"],
        ["User.roles", "User.team"],
    ]
    assert {event.actor_id for event in events} == {(await user_by_email(ADMIN)).id}


async def test_the_last_active_administrator_cannot_be_demoted_or_disabled(
    as_user: Any, client: httpx.AsyncClient
) -> None:
    admin = await as_user(ADMIN)
    me = await _gid(ADMIN)
    before = await database_rows()
    alone = await _result(admin, REVOKE, user=me, role="ADMINISTRATOR")
    assert (alone["__typename"], alone["field"]) == ("InvalidInputError", "userId")
    assert "last active administrator" in alone["message"]
    assert await database_rows() == before

    # A second administrator who is disabled does not count.
    officer = await _gid(OFFICER)
    await _result(admin, GRANT, user=officer, role="ADMINISTRATOR")
    disabled = await admin.gql(
        "mutation($id: ID!) { disableAccount(userId: $id) { __typename } }", {"id": officer}
    )
    assert disabled["data"]["disableAccount"]["__typename"] == "DisableAccountSuccess"
    still_alone = await _result(admin, REVOKE, user=me, role="ADMINISTRATOR")
    assert still_alone["__typename"] == "InvalidInputError"
    await admin.gql(
        "mutation($id: ID!) { enableAccount(userId: $id) { __typename } }", {"id": officer}
    )

    # With another active administrator, one may step down.
    stepped = await _result(admin, REVOKE, user=me, role="ADMINISTRATOR")
    assert stepped["__typename"] == "StaffRoleSuccess"
    assert await _roles(ADMIN) == []

    # A restricted administrator is not active: they cannot disable the last active one.
    await User.filter(email_index=(await user_by_email(ADMIN)).email_index).update(
        roles=["administrator"], status=UserStatus.RESTRICTED
    )
    restricted = Api(client, await sign_in(client, ADMIN))
    before = await database_rows()
    refused = await restricted.gql(
        "mutation($id: ID!) { disableAccount(userId: $id) { __typename"
        " ... on InvalidInputError { message field } } }",
        {"id": officer},
    )
    assert refused["data"]["disableAccount"] == {
        "__typename": "InvalidInputError",
        "message": "The last active administrator cannot be removed or demoted.",
        "field": "userId",
    }
    assert await database_rows() == before


# --- Teams. ---


async def test_teams_are_created_renamed_staffed_led_and_archived(as_user: Any) -> None:
    admin = await as_user(ADMIN)
    created = await _result(admin, CREATE_TEAM, name="  Billing ")
    team = created["team"]
    assert (team["name"], team["archivedAt"], team["members"]) == ("Billing", None, [])
    renamed = await _result(admin, RENAME_TEAM, id=team["id"], name="Invoices")
    assert renamed["team"]["name"] == "Invoices"

    agent, agent2, lead = await _gid(AGENT), await _gid(AGENT2), await _gid(LEAD)
    staffed = await _result(admin, SET_MEMBERS, team=team["id"], users=[agent, agent2, agent])
    assert sorted(m["email"] for m in staffed["team"]["members"]) == [AGENT2, AGENT]
    support = await Team.get(name="Support")
    assert await User.filter(team_id=support.id).count() == 1  # the lead stayed in Support
    narrowed = await _result(admin, SET_MEMBERS, team=team["id"], users=[agent2])
    assert [m["email"] for m in narrowed["team"]["members"]] == [AGENT2]
    assert (await user_by_email(AGENT)).team_id is None

    led = await _result(admin, SET_LEAD, team=team["id"], user=agent2)
    assert led["team"]["members"] == [{"email": AGENT2, "roles": ["AGENT", "TEAM_LEAD"]}]
    # A new lead replaces the old one, who stays in the team as an agent.
    replaced = await _result(admin, SET_LEAD, team=team["id"], user=lead)
    members = {m["email"]: m["roles"] for m in replaced["team"]["members"]}
    assert members == {AGENT2: ["AGENT"], LEAD: ["TEAM_LEAD"]}

    listed = await admin.gql("{ teams { name } all: teams(includeArchived: true) { name } }")
    assert listed["data"]["teams"] == [{"name": "Invoices"}, {"name": "Support"}]
    archived = await _result(admin, ARCHIVE_TEAM, id=team["id"])
    assert archived["team"]["archivedAt"] is not None
    listed = await admin.gql("{ teams { name } all: teams(includeArchived: true) { name } }")
    assert listed["data"] == {
        "teams": [{"name": "Support"}],
        "all": [{"name": "Invoices"}, {"name": "Support"}],
    }

    events = await AuditEvent.filter(action__startswith="team.").order_by("seq")
    assert _actions(events) == [
        AuditAction.TEAM_CREATE,
        AuditAction.TEAM_RENAME,
        *[AuditAction.TEAM_MEMBERSHIP] * 3,  # agent and agent2 join, agent leaves
        AuditAction.TEAM_LEAD,  # agent2 leads
        AuditAction.TEAM_LEAD,  # agent2 stops leading
        AuditAction.TEAM_LEAD,  # the lead joins and leads
        AuditAction.TEAM_ARCHIVE,
    ]
    assert [event.subject_id for event in events[2:5]] == [
        (await user_by_email(email)).id for email in (AGENT, AGENT2, AGENT)
    ]
    trail = "\n".join(repr(event.__dict__) for event in events)
    assert "Invoices" not in trail
    assert "Billing" not in trail


# --- Revocation takes effect at once, in every process and for app tokens. ---


async def test_a_revoked_role_stops_the_app_token_at_its_next_request(
    app: Any, as_user: Any, client: httpx.AsyncClient
) -> None:
    admin = await as_user(ADMIN)
    agent = await user_by_email(AGENT)
    grant = await client.post(
        "/auth/token", data=await app_code_exchange(app.state.store, agent.id)
    )
    assert grant.status_code == 200, grant.text
    headers = {"authorization": f"Bearer {grant.json()['access_token']}"}

    async def tickets() -> list[Any]:
        client.cookies.clear()
        response = await client.post("/graphql", json={"query": TICKETS}, headers=headers)
        assert response.status_code == 200, response.text
        edges: list[Any] = response.json()["data"]["tickets"]["edges"]
        return edges

    assert len(await tickets()) > 0
    await _result(admin, REVOKE, user=await _gid(AGENT), role="AGENT")
    assert await tickets() == []


async def test_a_revoked_role_ends_the_staff_powers_of_a_session_in_another_process(
    servers: tuple[str, str], browser: Browser
) -> None:
    first, second = servers
    agent = await browser.session(second, AGENT)
    admin = await browser.session(first, ADMIN)
    seen = await browser.gql(second, agent, TICKETS)
    assert len(seen["data"]["tickets"]["edges"]) > 0
    agent_id = await browser.gql(
        first, admin, "{ users(first: 50) { edges { node { id email } } } }"
    )
    target = next(
        edge["node"]["id"]
        for edge in agent_id["data"]["users"]["edges"]
        if edge["node"]["email"] == AGENT
    )
    revoked = await browser.gql(first, admin, REVOKE, {"user": target, "role": "AGENT"})
    assert revoked["data"]["result"]["__typename"] == "StaffRoleSuccess"
    for base in (second, first):
        after = await browser.gql(base, agent, TICKETS)
        assert after["data"]["tickets"]["edges"] == []
    # Still signed in, only without the role.
    me = await browser.gql(second, agent, "{ me { email roles } }")
    assert me["data"]["me"] == {"email": AGENT, "roles": []}
