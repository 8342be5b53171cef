"""Tortoise models of OCIS: rows only, personal data sealed at rest."""

from models.enums import (
    SIGN_IN_STATUSES,
    Channel,
    ConsentPurpose,
    MailStatus,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    Role,
    TicketPriority,
    TicketStatus,
    TransferSafeguard,
    UserStatus,
)
from models.keys import DataKey, KeyRotation, KeyState
from models.notices import Announcement, Notice, NoticeFanout
from models.privacy import AuditEvent, ConsentEntry, PolicyVersion, PrivacyRequest, Processor
from models.tickets import Ticket, TicketMessage
from models.users import ExternalIdentity, PaymentMethod, SignInSession, Team, User

__all__ = [
    "SIGN_IN_STATUSES",
    "Announcement",
    "AuditEvent",
    "Channel",
    "ConsentEntry",
    "ConsentPurpose",
    "DataKey",
    "ExternalIdentity",
    "KeyRotation",
    "KeyState",
    "MailStatus",
    "Notice",
    "NoticeFanout",
    "PaymentMethod",
    "PolicyVersion",
    "PrivacyRequest",
    "PrivacyRequestKind",
    "PrivacyRequestStatus",
    "Processor",
    "Role",
    "SignInSession",
    "Team",
    "Ticket",
    "TicketMessage",
    "TicketPriority",
    "TicketStatus",
    "TransferSafeguard",
    "User",
    "UserStatus",
]
