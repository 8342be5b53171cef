"""Tortoise models of OCIS: rows only, personal data sealed at rest."""

from models.enums import (
    SIGN_IN_STATUSES,
    AccountTokenPurpose,
    Channel,
    ConsentPurpose,
    MailStatus,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    Role,
    TicketPriority,
    TicketStatus,
    UserStatus,
)
from models.keys import DataKey, KeyRotation, KeyState
from models.notices import Notice, NoticePreference
from models.privacy import AuditEvent, ConsentEntry, PolicyVersion, PrivacyRequest
from models.staff import Invitation
from models.tickets import Ticket, TicketMessage, WalkInRequester
from models.users import AccountToken, ExternalIdentity, PaymentMethod, SignInSession, Team, User

__all__ = [
    "SIGN_IN_STATUSES",
    "AccountToken",
    "AccountTokenPurpose",
    "AuditEvent",
    "Channel",
    "ConsentEntry",
    "ConsentPurpose",
    "DataKey",
    "ExternalIdentity",
    "Invitation",
    "KeyRotation",
    "KeyState",
    "MailStatus",
    "Notice",
    "NoticePreference",
    "PaymentMethod",
    "PolicyVersion",
    "PrivacyRequest",
    "PrivacyRequestKind",
    "PrivacyRequestStatus",
    "Role",
    "SignInSession",
    "Team",
    "Ticket",
    "TicketMessage",
    "TicketPriority",
    "TicketStatus",
    "User",
    "UserStatus",
    "WalkInRequester",
]
