"""Need-to-know: one table of field rules, each rule a pure function.

Row scoping (``auth.scoping``) decides which objects a caller can reach at all; these
rules decide, field by field, which personal data of a reachable object they may read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from auth.principal import Principal
from auth.scopes import Scope


@dataclass(frozen=True, slots=True)
class Relation:
    """What the caller is to the person whose data a field holds."""

    is_self: bool = False
    subject_is_staff: bool = False
    works_their_ticket: bool = False
    handles_their_privacy_request: bool = False
    ticket_awaits_requester: bool = False


Rule = Callable[[Principal, Relation], bool]


def reachable(principal: Principal, relation: Relation) -> bool:
    """Anyone who can reach the object (its row scope already decided)."""
    return True


def owner(principal: Principal, relation: Relation) -> bool:
    """The person the data is about, and nobody else."""
    return relation.is_self


def owner_or_account_admin(principal: Principal, relation: Relation) -> bool:
    """The person, or an administrator managing accounts."""
    return relation.is_self or principal.has(Scope.USERS_PERSONAL_DATA)


def contact_need_to_know(principal: Principal, relation: Relation) -> bool:
    """The person; staff working one of their tickets; their privacy request's officer; admins."""
    return (
        relation.is_self
        or principal.has(Scope.USERS_PERSONAL_DATA)
        or (principal.has(Scope.CONTACT_NEED_TO_KNOW) and relation.works_their_ticket)
        or (principal.has(Scope.PRIVACY_REQUESTS) and relation.handles_their_privacy_request)
    )


def requester_on_ticket(principal: Principal, relation: Relation) -> bool:
    """Who reaches it; opened on one's behalf: them and admins till they write or others assign."""
    if principal.user_id is None:
        return False
    if not relation.ticket_awaits_requester:
        return True
    return relation.is_self or principal.has(Scope.USERS_PERSONAL_DATA)


def display_name(principal: Principal, relation: Relation) -> bool:
    """Contact need-to-know, plus a staff member's name to anyone signed in."""
    if relation.subject_is_staff and principal.user_id is not None:
        return True
    return contact_need_to_know(principal, relation)


def owner_or_security(principal: Principal, relation: Relation) -> bool:
    """The person, or staff with the security-review scope."""
    return relation.is_self or principal.has(Scope.SECURITY_METADATA)


def owner_or_privacy_officer(principal: Principal, relation: Relation) -> bool:
    """The person, or the privacy officer handling requests."""
    return relation.is_self or principal.has(Scope.PRIVACY_REQUESTS)


def staff(principal: Principal, relation: Relation) -> bool:
    """Staff members only."""
    return principal.is_staff


def staff_administrator(principal: Principal, relation: Relation) -> bool:
    """Administrators managing staff, and nobody else."""
    return principal.has(Scope.STAFF_ADMIN)


def privacy_officer(principal: Principal, relation: Relation) -> bool:
    """The privacy officer only."""
    return principal.has(Scope.PRIVACY_REQUESTS)


def legal_staff(principal: Principal, relation: Relation) -> bool:
    """Staff with the legal scope (holds and disclosures), and nobody else."""
    return principal.has(Scope.LEGAL_HOLDS)


def may_introspect(principal: Principal, *, production: bool) -> bool:
    """Introspection maps the schema: in production only staff (the console) may run it;
    clients have the committed SDL as their contract."""
    return not production or principal.is_staff


def may_run_unregistered_documents(principal: Principal, *, trusted_only: bool) -> bool:
    """With trusted documents only, clients run registered documents; staff may still send
    any document (the console writes its own), under the same need-to-know as everyone."""
    return not trusted_only or principal.is_staff


FIELD_POLICY: dict[str, dict[str, Rule]] = {
    "User": {
        "id": reachable,
        "name": display_name,
        "email": contact_need_to_know,
        "phone": contact_need_to_know,
        "username": owner_or_account_admin,
        "dateOfBirth": owner,
        "locale": contact_need_to_know,
        "timeZone": contact_need_to_know,
        "roles": owner_or_account_admin,
        "status": owner_or_account_admin,
        "source": owner_or_account_admin,
        "createdAt": owner_or_account_admin,
        "paymentMethods": owner,
        "signIns": owner_or_security,
        "identities": owner_or_account_admin,
        "pendingPolicyAcceptance": owner,
    },
    "LinkedIdentity": {
        "id": reachable,
        "provider": owner_or_account_admin,
        "email": owner,
        "emailVerified": owner,
        "linkedAt": owner_or_account_admin,
    },
    "Ticket": {
        "id": reachable,
        "subject": reachable,
        "status": reachable,
        "priority": reachable,
        "channel": reachable,
        "requester": requester_on_ticket,
        "requesterName": contact_need_to_know,
        "requesterEmail": contact_need_to_know,
        "assignee": reachable,
        "createdAt": reachable,
        "updatedAt": reachable,
        "closedAt": reachable,
        "messages": reachable,
    },
    "TicketMessage": {
        "id": reachable,
        "body": reachable,
        "internal": reachable,
        "author": reachable,
        "createdAt": reachable,
    },
    # A subscription's event: only rows the subscriber reaches at that moment are in it
    # (resolvers/live.py), and their own fields keep their own rules.
    "TicketEvent": {
        "kind": reachable,
        "ticket": reachable,
        "message": reachable,
    },
    "SignIn": {
        "id": reachable,
        "method": owner_or_security,
        "ipAddress": owner_or_security,
        "browser": owner_or_security,
        "browserVersion": owner_or_security,
        "os": owner_or_security,
        "deviceType": owner_or_security,
        "timeZone": owner_or_security,
        "referrer": owner_or_security,
        "location": owner_or_security,
        "createdAt": owner_or_security,
        "current": owner_or_security,
    },
    "PaymentMethod": {
        "id": reachable,
        "brand": owner,
        "last4": owner,
        "expMonth": owner,
        "expYear": owner,
        "createdAt": owner,
    },
    "PrivacyRequest": {
        "id": reachable,
        "kind": owner_or_privacy_officer,
        "status": owner_or_privacy_officer,
        "details": owner_or_privacy_officer,
        "receivedAt": owner_or_privacy_officer,
        "dueAt": owner_or_privacy_officer,
        "closedAt": owner_or_privacy_officer,
        "outcome": owner_or_privacy_officer,
        "overdue": owner_or_privacy_officer,
        "channel": owner_or_privacy_officer,
        "verificationMethod": owner_or_privacy_officer,
        "extensionMonths": owner_or_privacy_officer,
        "internalNotesReleased": owner_or_privacy_officer,
        "subject": owner_or_privacy_officer,
        "assignee": owner_or_privacy_officer,
        "registeredBy": owner_or_privacy_officer,
        "duplicateOf": owner_or_privacy_officer,
        "history": owner_or_privacy_officer,
        "corrections": owner_or_privacy_officer,
        "exports": owner_or_privacy_officer,
    },
    # An export's state, never its content (downloaded at /privacy/exports/{id}) nor its link.
    "PrivacyExport": {
        "id": reachable,
        "kind": owner_or_privacy_officer,
        "status": owner_or_privacy_officer,
        "createdAt": owner_or_privacy_officer,
        "readyAt": owner_or_privacy_officer,
        "expiresAt": owner_or_privacy_officer,
        "downloadsLeft": owner_or_privacy_officer,
        # Only the subject downloads with their session; the officer has no use for it.
        "downloadPath": owner,
    },
    "Correction": {
        "field": owner_or_privacy_officer,
        "value": owner_or_privacy_officer,
        "accepted": owner_or_privacy_officer,
        "reason": owner_or_privacy_officer,
    },
    "PrivacyRequestStep": {
        "id": reachable,
        "action": owner_or_privacy_officer,
        "fromStatus": owner_or_privacy_officer,
        "toStatus": owner_or_privacy_officer,
        "actor": owner_or_privacy_officer,
        "at": owner_or_privacy_officer,
        "note": owner_or_privacy_officer,
    },
    "ConsentEntry": {
        "id": reachable,
        "purpose": owner_or_privacy_officer,
        "granted": owner_or_privacy_officer,
        "objection": owner_or_privacy_officer,
        "policyVersion": owner_or_privacy_officer,
        "source": owner_or_privacy_officer,
        "createdAt": owner_or_privacy_officer,
    },
    "ConsentState": {
        "purpose": owner_or_privacy_officer,
        "granted": owner_or_privacy_officer,
        "objected": owner_or_privacy_officer,
        "policyVersion": owner_or_privacy_officer,
        "updatedAt": owner_or_privacy_officer,
    },
    "Notice": {
        "id": reachable,
        "kind": owner,
        "subject": owner,
        "body": owner,
        "createdAt": owner,
        "readAt": owner,
        "emailedAt": owner,
    },
    # Invitations and teams are reached by administrators only (resolvers/staff.py).
    "Invitation": {
        "id": reachable,
        "email": staff_administrator,
        "roles": staff_administrator,
        "team": staff_administrator,
        "invitedBy": staff_administrator,
        "createdAt": staff_administrator,
        "expiresAt": staff_administrator,
        "acceptedAt": staff_administrator,
        "revokedAt": staff_administrator,
    },
    "Team": {
        "id": reachable,
        "name": reachable,
        "archivedAt": reachable,
        "createdAt": reachable,
        "members": reachable,
    },
    "NoticePreference": {
        "kind": owner,
        "byMail": owner,
        "alwaysByMail": owner,
    },
    # Holds and disclosures are reached by the legal scope only (resolvers/legal.py); the
    # subject sees a disclosure in their export once they may be told (privacy/legal.py).
    "LegalHold": {
        "id": reachable,
        "authority": legal_staff,
        "reference": legal_staff,
        "reason": legal_staff,
        "reviewOn": legal_staff,
        "placedAt": legal_staff,
        "liftedAt": legal_staff,
        "active": legal_staff,
    },
    "LegalDisclosure": {
        "id": reachable,
        "authority": legal_staff,
        "legalBasis": legal_staff,
        "dataCategories": legal_staff,
        "disclosedOn": legal_staff,
        "subjectMayBeToldOn": legal_staff,
        "recordedAt": legal_staff,
    },
    "AuditEntry": {
        "id": reachable,
        "occurredAt": owner_or_privacy_officer,
        "action": owner_or_privacy_officer,
        "fieldNames": owner_or_privacy_officer,
        "actorRoles": owner_or_privacy_officer,
        "purpose": owner_or_privacy_officer,
        "actor": privacy_officer,
        "requestId": privacy_officer,
    },
}

# Fields whose values are personal data: reading another person's is written to the audit trail.
PERSONAL_FIELDS: dict[str, frozenset[str]] = {
    "User": frozenset({"name", "email", "phone", "username", "dateOfBirth", "locale", "timeZone"}),
    "Ticket": frozenset({"subject", "requesterName", "requesterEmail"}),
    "TicketMessage": frozenset({"body"}),
    "SignIn": frozenset(
        {"ipAddress", "browser", "browserVersion", "os", "deviceType", "timeZone", "referrer"}
        | {"location"}
    ),
    "PaymentMethod": frozenset({"brand", "last4", "expMonth", "expYear"}),
    "PrivacyRequest": frozenset({"kind", "details", "outcome", "corrections"}),
    "PrivacyRequestStep": frozenset({"note"}),
    "PrivacyExport": frozenset({"kind"}),
    "ConsentEntry": frozenset({"purpose", "granted", "objection"}),
    "ConsentState": frozenset({"purpose", "granted", "objected"}),
    "LinkedIdentity": frozenset({"email"}),
    # No GraphQL type of its own: its values show as Ticket.requesterName and requesterEmail.
    # Listed so that the at-rest checks generated from this table cover its columns.
    "WalkInRequester": frozenset({"email", "name"}),
    "Invitation": frozenset({"email"}),
    # The authority is a public body's name, not the person's data; what it holds them for is.
    "LegalHold": frozenset({"reference", "reason"}),
    "LegalDisclosure": frozenset({"legalBasis"}),
}


def may_filter(type_name: str, field_name: str, principal: Principal) -> bool:
    """Whether a list may be filtered or ordered by a field: its rule allows anyone's row."""
    return may_read(type_name, field_name, principal, Relation())


def may_read(type_name: str, field_name: str, principal: Principal, relation: Relation) -> bool:
    """The decision for one field; a field without a rule is never readable."""
    rule = FIELD_POLICY.get(type_name, {}).get(field_name)
    return rule is not None and rule(principal, relation)


# What each connection's filter arguments read: (input type, argument) to (type, field).
FILTER_FIELDS: dict[tuple[str, str], tuple[str, str]] = {
    ("UserFilterInput", "role"): ("User", "roles"),
    ("UserFilterInput", "status"): ("User", "status"),
    ("TicketFilterInput", "status"): ("Ticket", "status"),
    ("TicketFilterInput", "assigneeId"): ("Ticket", "assignee"),
    ("TicketFilterInput", "requesterId"): ("Ticket", "requester"),
    ("TicketFilterInput", "unassigned"): ("Ticket", "assignee"),
}
