"""Demo data for development: the accounts and tickets ARCHITECTURE.md promises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from auth.passwords import hash_password
from models import Role, Team, Ticket, TicketMessage, TicketStatus, User, crypto

DEMO_PASSWORD = "ocis-demo"  # noqa: S105 - published development credential


@dataclass(frozen=True, slots=True)
class DemoAccount:
    email: str
    name: str
    role: Role
    in_team: bool = False


DEMO_ACCOUNTS = (
    DemoAccount("admin@example.com", "Ada Admin", Role.ADMINISTRATOR),
    DemoAccount("privacy@example.com", "Priya Privacy", Role.PRIVACY_OFFICER),
    DemoAccount("lead@example.com", "Lena Lead", Role.TEAM_LEAD, in_team=True),
    DemoAccount("agent@example.com", "Alex Agent", Role.AGENT, in_team=True),
    DemoAccount("agent2@example.com", "Sam Agent", Role.AGENT, in_team=True),
    DemoAccount("customer@example.com", "Carla Customer", Role.CUSTOMER),
    DemoAccount("customer2@example.com", "Chris Customer", Role.CUSTOMER),
)


async def seed_demo_data() -> bool:
    """Create the demo accounts and tickets once; False when they already exist."""
    if await User.exists(email_index=crypto.blind_index(DEMO_ACCOUNTS[0].email)):
        return False
    password_hash = await hash_password(DEMO_PASSWORD)
    async with in_transaction():
        team = await Team.create(name="Support")
        people: dict[str, User] = {}
        for account in DEMO_ACCOUNTS:
            user = User(
                name=account.name,
                password_hash=password_hash,
                roles=[account.role.value],
                date_of_birth="1990-01-01",
                team=team if account.in_team else None,
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
