"""Scopes as "resource:action" with descriptions, and the scope set of each role."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from models.enums import Role


class Scope(StrEnum):
    TICKETS_OWN = "tickets:own"
    TICKETS_WORK = "tickets:work"
    TICKETS_TEAM = "tickets:team"
    TICKETS_ALL = "tickets:all"
    TICKETS_ASSIGN = "tickets:assign"
    NOTES_INTERNAL = "notes:internal"
    CONTACT_NEED_TO_KNOW = "contact:need_to_know"
    USERS_DIRECTORY = "users:directory"
    USERS_PERSONAL_DATA = "users:personal_data"
    PRIVACY_REQUESTS = "privacy:requests"
    SECURITY_METADATA = "security:metadata"
    ACCOUNTS_DISABLE = "accounts:disable"
    STAFF_ADMIN = "staff:admin"
    POLICY_PUBLISH = "policy:publish"
    NOTICES_ANNOUNCE = "notices:announce"
    PROCESSORS_MANAGE = "processors:manage"
    MARKETING_SEND = "marketing:send"
    USAGE_READ = "usage:read"
    LEGAL_HOLDS = "legal:holds"
    CHILD_ACCOUNTS = "accounts:flag_child"


DESCRIPTIONS: dict[Scope, str] = {
    Scope.TICKETS_OWN: "Open and follow one's own tickets",
    Scope.TICKETS_WORK: "Work tickets assigned to oneself or queued for one's team",
    Scope.TICKETS_TEAM: "Read every ticket of one's team",
    Scope.TICKETS_ALL: "Read every ticket",
    Scope.TICKETS_ASSIGN: "Assign tickets to staff",
    Scope.NOTES_INTERNAL: "Read and write internal notes on readable tickets",
    Scope.CONTACT_NEED_TO_KNOW: "Read a requester's contact details while working their ticket",
    Scope.USERS_DIRECTORY: "List accounts",
    Scope.USERS_PERSONAL_DATA: "Read any account's personal data (account administration)",
    Scope.PRIVACY_REQUESTS: "Handle every subject's privacy requests",
    Scope.SECURITY_METADATA: "Read sign-in metadata for security review",
    Scope.ACCOUNTS_DISABLE: "Disable an account (ending all its sign-ins) and enable it again",
    Scope.STAFF_ADMIN: "Invite staff, grant and revoke staff roles, manage teams",
    Scope.POLICY_PUBLISH: "Publish a version of the privacy policy",
    Scope.NOTICES_ANNOUNCE: "Send a notice to every user (a business transfer, a change of owner)",
    Scope.PROCESSORS_MANAGE: "Keep the registry of processors and their transfer safeguards",
    Scope.MARKETING_SEND: "Write marketing campaigns and send them to the accounts that consent",
    Scope.USAGE_READ: "Read usage analytics: counts per feature and day, never per person",
    Scope.LEGAL_HOLDS: "Place and lift legal holds, record legal disclosures, and read them",
    Scope.CHILD_ACCOUNTS: "Flag an account as a child's: restricted at once, then erased",
}


_STAFF = frozenset({Scope.TICKETS_WORK, Scope.NOTES_INTERNAL, Scope.CONTACT_NEED_TO_KNOW})

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.CUSTOMER: frozenset({Scope.TICKETS_OWN}),
    Role.AGENT: _STAFF,
    Role.TEAM_LEAD: _STAFF | {Scope.TICKETS_TEAM, Scope.TICKETS_ASSIGN, Scope.USERS_DIRECTORY},
    Role.PRIVACY_OFFICER: frozenset(
        {
            Scope.PRIVACY_REQUESTS,
            Scope.USERS_DIRECTORY,
            Scope.PROCESSORS_MANAGE,
            Scope.LEGAL_HOLDS,
            Scope.CHILD_ACCOUNTS,
        }
    ),
    Role.ADMINISTRATOR: frozenset(
        {
            Scope.USERS_DIRECTORY,
            Scope.USERS_PERSONAL_DATA,
            Scope.TICKETS_ALL,
            Scope.TICKETS_ASSIGN,
            Scope.SECURITY_METADATA,
            Scope.ACCOUNTS_DISABLE,
            Scope.STAFF_ADMIN,
            Scope.POLICY_PUBLISH,
            Scope.NOTICES_ANNOUNCE,
            Scope.MARKETING_SEND,
            Scope.USAGE_READ,
            Scope.LEGAL_HOLDS,
            Scope.CHILD_ACCOUNTS,
        }
    ),
}

STAFF_ROLES = frozenset({Role.AGENT, Role.TEAM_LEAD, Role.PRIVACY_OFFICER, Role.ADMINISTRATOR})
_STAFF_ROLE_VALUES = frozenset(role.value for role in STAFF_ROLES)


def is_staff_account(roles: Iterable[str]) -> bool:
    """Whether an account's stored roles include a staff role."""
    return not _STAFF_ROLE_VALUES.isdisjoint(roles)


def scopes_for(roles: frozenset[Role]) -> frozenset[Scope]:
    granted: frozenset[Scope] = frozenset()
    for role in roles:
        granted |= ROLE_SCOPES[role]
    return granted
