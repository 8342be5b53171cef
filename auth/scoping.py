"""Row scoping: every read starts from the rows the caller may reach."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from auth.policy import Relation
from auth.principal import Principal
from auth.scopes import Scope, is_staff_account
from models import (
    OPEN_PRIVACY_REQUEST_STATUSES,
    AuditEvent,
    Export,
    ExternalIdentity,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestStep,
    Role,
    SignInSession,
    Team,
    Ticket,
    TicketMessage,
    TicketStatus,
    User,
)

QUEUE_STATUSES = (TicketStatus.OPEN, TicketStatus.PENDING)
_NOTHING = Q(id__in=[])


def _worked_by(principal: Principal) -> Q:
    """Tickets the caller works: assigned to them, or in their team's open queue."""
    work = Q(assignee_id=principal.user_id)
    if principal.team_id is not None:
        work |= Q(team_id=principal.team_id, status__in=QUEUE_STATUSES)
    return work


def _ticket_scope(principal: Principal) -> Q:
    if principal.user_id is None:
        return _NOTHING
    if principal.has(Scope.TICKETS_ALL):
        return Q()
    clauses: list[Q] = []
    if principal.has(Scope.TICKETS_OWN):
        clauses.append(Q(requester_id=principal.user_id))
    if principal.has(Scope.TICKETS_WORK):
        clauses.append(_worked_by(principal))
    if principal.has(Scope.TICKETS_TEAM) and principal.team_id is not None:
        clauses.append(Q(team_id=principal.team_id))
    return Q(*clauses, join_type=Q.OR) if clauses else _NOTHING


def readable_tickets(principal: Principal) -> QuerySet[Ticket]:
    """Tickets the caller may see: their own, the ones they work, or all for admins."""
    return Ticket.filter(_ticket_scope(principal))


def countable_teams(principal: Principal) -> QuerySet[Team]:
    """Teams whose tickets the caller may count: every team for admins, else their own."""
    if principal.has(Scope.TICKETS_ALL):
        return Team.all()
    if principal.team_id is not None and principal.has(Scope.TICKETS_WORK):
        return Team.filter(id=principal.team_id)
    return Team.filter(_NOTHING)


def readable_messages(
    principal: Principal, on: Sequence[UUID] | None = None
) -> QuerySet[TicketMessage]:
    """Messages on readable tickets; internal notes only for staff with that scope.

    `on`: only on these tickets, with the scope checked for them alone (by primary key), not
    for every ticket the caller may read (PostgreSQL then hashed the whole queue to answer a
    page: 3.5 of its 4.8 ms for the bench page's messages)."""
    tickets = readable_tickets(principal)
    if on is not None:
        tickets = tickets.filter(id__in=list(on))
    messages = TicketMessage.filter(ticket_id__in=Subquery(tickets.values("id")))
    if on is not None:
        messages = messages.filter(ticket_id__in=list(on))
    if not principal.has(Scope.NOTES_INTERNAL):
        messages = messages.filter(internal=False)
    return messages


def readable_users(principal: Principal) -> QuerySet[User]:
    """Accounts the caller may reach: themselves, people on their tickets, or the directory."""
    if principal.user_id is None:
        return User.filter(_NOTHING)
    if principal.has(Scope.USERS_DIRECTORY):
        return User.all()
    # A ticket that awaits its requester does not make them reachable (auth.relations).
    tickets = readable_tickets(principal).filter(awaiting_requester=False)
    return User.filter(
        Q(id=principal.user_id)
        | Q(id__in=Subquery(tickets.filter(requester_id__not_isnull=True).values("requester_id")))
        | Q(id__in=Subquery(tickets.filter(assignee_id__not_isnull=True).values("assignee_id")))
    )


async def with_role(query: QuerySet[User], role: Role) -> QuerySet[User]:
    """Narrow accounts to one role: JSON containment on PostgreSQL, a scan on SQLite."""
    if User._choose_db().capabilities.dialect == "postgres":
        return query.filter(roles__contains=[role.value])
    # SQLite has no JSON containment lookup in Tortoise; the embedded directory is small.
    rows = await User.all().values_list("id", "roles")
    return query.filter(id__in=[ident for ident, roles in rows if role.value in roles])


def readable_privacy_requests(principal: Principal) -> QuerySet[PrivacyRequest]:
    if principal.has(Scope.PRIVACY_REQUESTS):
        return PrivacyRequest.all()
    if principal.user_id is None:
        return PrivacyRequest.filter(_NOTHING)
    return PrivacyRequest.filter(subject_id=principal.user_id)


def readable_privacy_request_steps(principal: Principal) -> QuerySet[PrivacyRequestStep]:
    """The history of readable requests: every one for the officer, else one's own."""
    if principal.has(Scope.PRIVACY_REQUESTS):
        return PrivacyRequestStep.all()
    if principal.user_id is None:
        return PrivacyRequestStep.filter(_NOTHING)
    return PrivacyRequestStep.filter(subject_id=principal.user_id)


def readable_exports(principal: Principal) -> QuerySet[Export]:
    """Exports, their state only: every one for the officer, else one's own."""
    if principal.has(Scope.PRIVACY_REQUESTS):
        return Export.all()
    if principal.user_id is None:
        return Export.filter(_NOTHING)
    return Export.filter(subject_id=principal.user_id)


def readable_audit_events(principal: Principal) -> QuerySet[AuditEvent]:
    """The privacy officer reads the whole trail; everyone else the records about themselves."""
    if principal.has(Scope.PRIVACY_REQUESTS):
        return AuditEvent.all()
    if principal.user_id is None:
        return AuditEvent.filter(seq__in=[])
    return AuditEvent.filter(subject_id=principal.user_id)


def readable_sign_ins(principal: Principal) -> QuerySet[SignInSession]:
    if principal.has(Scope.SECURITY_METADATA):
        return SignInSession.all()
    if principal.user_id is None:
        return SignInSession.filter(_NOTHING)
    return SignInSession.filter(user_id=principal.user_id)


def readable_identities(principal: Principal) -> QuerySet[ExternalIdentity]:
    """Linked identities: one's own, or any for account administrators."""
    if principal.has(Scope.USERS_PERSONAL_DATA):
        return ExternalIdentity.all()
    if principal.user_id is None:
        return ExternalIdentity.filter(_NOTHING)
    return ExternalIdentity.filter(user_id=principal.user_id)


def readable_payment_methods(principal: Principal) -> QuerySet[PaymentMethod]:
    if principal.user_id is None:
        return PaymentMethod.filter(_NOTHING)
    return PaymentMethod.filter(user_id=principal.user_id)


async def relations_to(principal: Principal, people: Iterable[User]) -> dict[UUID, Relation]:
    """The caller's relation to each person, in at most two queries for any number of them."""
    people = list(people)
    others = [person.id for person in people if person.id != principal.user_id]
    worked: set[UUID] = set()
    handled: set[UUID] = set()
    if others and principal.has(Scope.CONTACT_NEED_TO_KNOW):
        rows = (
            await Ticket.filter(
                _worked_by(principal), requester_id__in=others, awaiting_requester=False
            )
            .distinct()
            .values_list("requester_id", flat=True)
        )
        worked = {UUID(str(row)) for row in rows}
    if others and principal.has(Scope.PRIVACY_REQUESTS):
        # An open request the caller handles, or that nobody handles yet (the queue's).
        rows = (
            await PrivacyRequest.filter(
                Q(assignee_id=principal.user_id) | Q(assignee_id__isnull=True),
                subject_id__in=others,
                status__in=OPEN_PRIVACY_REQUEST_STATUSES,
            )
            .distinct()
            .values_list("subject_id", flat=True)
        )
        handled = {UUID(str(row)) for row in rows}
    return {
        person.id: Relation(
            is_self=person.id == principal.user_id,
            subject_is_staff=is_staff_account(person.roles),
            works_their_ticket=person.id in worked,
            handles_their_privacy_request=person.id in handled,
        )
        for person in people
    }


async def worked_walk_ins(principal: Principal, email_indexes: list[str]) -> set[str]:
    """Which email-only requesters (by blind index) have a ticket the caller works."""
    if principal.user_id is None or not principal.has(Scope.CONTACT_NEED_TO_KNOW):
        return set()
    rows = (
        await Ticket.filter(
            _worked_by(principal),
            requester_email_index__in=email_indexes,
            awaiting_requester=False,
        )
        .distinct()
        .values_list("requester_email_index", flat=True)
    )
    return {str(row) for row in rows}
