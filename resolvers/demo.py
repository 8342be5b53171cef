"""Demo data for development: the accounts and tickets ARCHITECTURE.md promises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from auth.passwords import hash_password
from auth.principal import Principal
from models import (
    MailStatus,
    Notice,
    Role,
    Team,
    Ticket,
    TicketMessage,
    TicketStatus,
    User,
    crypto,
)
from resolvers.staff import invite_staff

DEMO_PASSWORD = "ocis-demo"  # noqa: S105 - published development credential


SUPPORT = "Support"
RETURNS = "Returns"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    email: str
    name: str
    role: Role
    team: str | None = None


DEMO_ACCOUNTS = (
    DemoAccount("admin@example.com", "Ada Admin", Role.ADMINISTRATOR),
    DemoAccount("privacy@example.com", "Priya Privacy", Role.PRIVACY_OFFICER),
    DemoAccount("lead@example.com", "Lena Lead", Role.TEAM_LEAD, SUPPORT),
    DemoAccount("agent@example.com", "Alex Agent", Role.AGENT, SUPPORT),
    DemoAccount("agent2@example.com", "Sam Agent", Role.AGENT, SUPPORT),
    DemoAccount("customer@example.com", "Carla Customer", Role.CUSTOMER),
    DemoAccount("customer2@example.com", "Chris Customer", Role.CUSTOMER),
)
# What `seed` adds for a help desk of two teams (the tests' demo data stays the one team).
HELP_DESK_ACCOUNTS = (
    DemoAccount("returns-lead@example.com", "Rui Returns", Role.TEAM_LEAD, RETURNS),
)
# Invited to the second team, not accepted yet: `seed` prints the link instead of mailing it.
DEMO_INVITEE = "new-agent@example.com"


async def seed_demo_data() -> bool:
    """Create the demo accounts and tickets once; False when they already exist. Every demo
    address counts as verified, so their notices reach them."""
    if await User.exists(email_index=crypto.blind_index(DEMO_ACCOUNTS[0].email)):
        return False
    password_hash = await hash_password(DEMO_PASSWORD)
    async with in_transaction():
        team = await Team.create(name=SUPPORT)
        people: dict[str, User] = {}
        for account in DEMO_ACCOUNTS:
            user = User(
                name=account.name,
                password_hash=password_hash,
                roles=[account.role.value],
                date_of_birth="1990-01-01",
                team=team if account.team else None,
                email_verified_at=datetime.now(UTC),
            )
            user.set_email(account.email)
            await user.save()
            people[account.email] = user
        agent = people["agent@example.com"]
        tickets = (
            ("customer@example.com", "Cannot reset my password", agent, TicketStatus.OPEN, True),
            (
                "customer@example.com",
                "Invoice shows the wrong address",
                agent,
                TicketStatus.PENDING,
                False,
            ),
            ("customer@example.com", "How do I export my data?", None, TicketStatus.OPEN, False),
            ("customer2@example.com", "App crashes on start", agent, TicketStatus.OPEN, False),
            (
                "customer2@example.com",
                "Feature request: dark mode",
                None,
                TicketStatus.SOLVED,
                False,
            ),
        )
        for email, subject, assignee, status, with_note in tickets:
            requester = people[email]
            ticket = await Ticket.create(
                subject=subject, requester=requester, assignee=assignee, team=team, status=status
            )
            await TicketMessage.create(
                ticket=ticket, author=requester, body=f"Hello, {subject.lower()}."
            )
            if assignee is not None:
                await TicketMessage.create(
                    ticket=ticket, author=assignee, body="Thanks, we are looking into it."
                )
            if with_note:
                await TicketMessage.create(
                    ticket=ticket,
                    author=assignee,
                    body="Internal: customer verified by phone.",
                    internal=True,
                )
    return True


async def seed_help_desk(public_url: str) -> str:
    """After seed_demo_data: a second team with its lead and a ticket in its queue, and an
    agent invited to it; answers the invitation's link (`seed` prints it)."""
    password_hash = await hash_password(DEMO_PASSWORD)
    async with in_transaction():
        returns = await Team.create(name=RETURNS)
        for account in HELP_DESK_ACCOUNTS:
            user = User(
                name=account.name,
                password_hash=password_hash,
                roles=[account.role.value],
                date_of_birth="1990-01-01",
                team=returns,
                email_verified_at=datetime.now(UTC),
            )
            user.set_email(account.email)
            await user.save()
        customer = await User.get(email_index=crypto.blind_index("customer2@example.com"))
        # The second team's queue: a ticket nobody has taken yet.
        returned = await Ticket.create(
            subject="Returning a damaged parcel",
            requester=customer,
            team=returns,
            status=TicketStatus.OPEN,
        )
        await TicketMessage.create(
            ticket=returned, author=customer, body="Hello, the parcel arrived damaged."
        )
        admin = await User.get(email_index=crypto.blind_index(DEMO_ACCOUNTS[0].email))
        invited = await invite_staff(
            Principal.for_user(admin.id, frozenset({Role.ADMINISTRATOR}), None),
            email=DEMO_INVITEE,
            roles=[Role.AGENT],
            team_id=returns.id,
            public_url=public_url,
        )
        # No one reads new-agent@example.com: `seed` prints the link instead of mailing it, and
        # the outbox keeps no copy of it.
        await Notice.filter(kind="staff.invited", user_id__isnull=True).update(
            mail_status=MailStatus.CANCELLED, link=None
        )
    return invited.link
