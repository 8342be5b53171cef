"""The caller's relation to the person a row is about: what every need-to-know rule receives.

People (accounts, ticket requesters) are judged in batches by ``auth.scoping``; every
other row is about its owner, and only being that owner counts.
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from tortoise.models import Model

from auth.policy import Relation
from auth.principal import Principal
from auth.scopes import is_staff_account
from auth.visitor_ids import Owner, Visitor
from models import (
    AuditEvent,
    ConsentEntry,
    Export,
    ExternalIdentity,
    Notice,
    PaymentMethod,
    PrivacyRequest,
    PrivacyRequestStep,
    SignInSession,
    Ticket,
    TicketMessage,
    User,
)
from models.rows import model_of

NO_RELATION = Relation()

# The column naming the person each kind of row is about.
_SUBJECT_COLUMN: dict[type, str] = {
    User: "id",
    Ticket: "requester_id",
    TicketMessage: "author_id",
    SignInSession: "user_id",
    ExternalIdentity: "user_id",
    PaymentMethod: "user_id",
    PrivacyRequest: "subject_id",
    PrivacyRequestStep: "subject_id",
    Export: "subject_id",
    ConsentEntry: "user_id",
    Notice: "user_id",
    AuditEvent: "subject_id",
}


def person_in(row: Model, column: str) -> UUID | None:
    """The account id a row's foreign-key column holds."""
    person: UUID | None = getattr(row, column)
    return person


def subject_of(row: Model) -> UUID | None:
    """The id of the person a row is about, if it names one."""
    return person_in(row, _SUBJECT_COLUMN[model_of(row)])


def requester_of(ticket: Ticket) -> UUID | None:
    """Whom a ticket is about: its requester's account, or the walk-in who wrote in by email."""
    return ticket.requester_id or ticket.walk_in_id


_SELF = Relation(is_self=True)


def relation_to_person(principal: Principal, person_id: UUID | None) -> Relation:
    """Being the person, or nothing (a Relation is frozen: one of each serves every row)."""
    return _SELF if person_id is not None and person_id == principal.user_id else NO_RELATION


def relation_to_consent_owner(principal: Principal, owner: Owner) -> Relation:
    """A visitor's consent state is answered only to the holder of its signed consent id, so
    it is theirs; an account's is its owner's."""
    if isinstance(owner, Visitor):
        return Relation(is_self=True)
    return relation_to_person(principal, owner)


def relation_to_row(principal: Principal, row: Model) -> Relation:
    """Being the person the row is about, or nothing."""
    return relation_to_person(principal, subject_of(row))


def relation_to_own_account(user: User) -> Relation:
    """The caller's relation to the account they just opened or changed."""
    return Relation(is_self=True, subject_is_staff=is_staff_account(user.roles))


def relation_to_walk_in(worked: bool) -> Relation:
    """The caller's relation to a requester known only by email."""
    return Relation(works_their_ticket=worked)


def relation_on_ticket(ticket: Ticket, to_requester: Relation) -> Relation:
    """The caller's relation to a ticket's requester, as far as this ticket grants it.

    A ticket that awaits its requester grants nothing: its opener typed the address, and
    working it must not hand them what the address belongs to.
    """
    if not ticket.awaiting_requester:
        return to_requester
    return replace(to_requester, works_their_ticket=False, ticket_awaits_requester=True)
