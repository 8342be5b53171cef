"""`seed`'s help desk of two teams: a second team with its lead and queue, a waiting invitation."""

from __future__ import annotations

from typing import Any

from models import MailStatus, Notice, Team, User
from resolvers.demo import DEMO_ACCOUNTS, DEMO_INVITEE, HELP_DESK_ACCOUNTS, seed_help_desk
from schema.relay import to_global_id
from tests.helpers import ORIGIN, run_cli

QUEUE = "query ($team: ID!) { teamQueue(teamId: $team, first: 10) { edges { node { subject } } } }"


def subjects(body: dict[str, Any]) -> list[str]:
    assert "errors" not in body, body
    return [edge["node"]["subject"] for edge in body["data"]["teamQueue"]["edges"]]


async def test_the_second_team_has_a_lead_a_queue_and_an_invitation_waiting(
    demo: None, as_user: Any
) -> None:
    link = await seed_help_desk(ORIGIN)
    assert link.startswith(f"{ORIGIN}/invitation#")
    returns = await Team.get(name="Returns")
    support = await Team.get(name="Support")
    returns_lead = await as_user(HELP_DESK_ACCOUNTS[0].email)
    assert subjects(await returns_lead.gql(QUEUE, {"team": to_global_id("Team", returns.id)})) == [
        "Returning a damaged parcel"
    ]
    # The lead's view is their team's: the other team's queue is not theirs.
    refused = await returns_lead.gql(QUEUE, {"team": to_global_id("Team", support.id)})
    assert refused["data"] == {"teamQueue": None}
    support_lead = await as_user("lead@example.com")
    assert "Returning a damaged parcel" not in subjects(
        await support_lead.gql(QUEUE, {"team": to_global_id("Team", support.id)})
    )
    # Every demo account's address is verified, so its notices reach it.
    emails = [a.email for a in (*DEMO_ACCOUNTS, *HELP_DESK_ACCOUNTS)]
    assert await User.filter(email_verified_at__isnull=True).count() == 0
    assert await User.all().count() == len(emails)

    admin = await as_user("admin@example.com")
    waiting = await admin.gql("{ invitations(openOnly: true) { email } }")
    assert waiting == {"data": {"invitations": [{"email": DEMO_INVITEE}]}}
    # Printed, not mailed: the outbox keeps neither the mail nor its link.
    (notice,) = await Notice.filter(kind="staff.invited")
    assert notice.mail_status == MailStatus.CANCELLED
    assert notice.link is None
    token = link.split("#", 1)[1]
    accepted = await (await as_user(None)).gql(
        'mutation ($token: String!) { acceptInvitation(token: $token, name: "Nora New",'
        ' password: "a long demo password") { __typename } }',
        {"token": token},
    )
    assert accepted == {"data": {"acceptInvitation": {"__typename": "AcceptInvitationSuccess"}}}
    # The new agent joined the Returns team beside its lead (names are sealed: counted by team).
    assert await User.filter(team_id=returns.id).count() == 2


def test_seed_prints_the_second_team_and_the_invitation_link(tmp_path: Any) -> None:
    env = {"DATABASE_URL": f"sqlite://{tmp_path / 'fresh.sqlite3'}", "PORT": "8765"}
    assert run_cli("migrate", env=env).returncode == 0
    seeded = run_cli("seed", env=env)
    assert seeded.returncode == 0, seeded.stderr
    assert "returns-lead@example.com" in seeded.stdout
    assert (
        f"{DEMO_INVITEE} is invited to the Returns team: http://127.0.0.1:8765/invitation#"
        in seeded.stdout
    )
