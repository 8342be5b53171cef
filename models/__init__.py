"""Tortoise models of OCIS: rows only, personal data sealed at rest."""

from models.enums import (
    SIGN_IN_STATUSES,
    AccountTokenPurpose,
    CampaignState,
    Channel,
    ConsentPurpose,
    ConsentSource,
    JobState,
    MailStatus,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    Role,
    TicketPriority,
    TicketStatus,
    TransferSafeguard,
    UserStatus,
)
from models.jobs import Job
from models.keys import DataKey, KeyRotation, KeyState
from models.notices import Announcement, Campaign, Notice, NoticeFanout, NoticePreference
from models.privacy import AuditEvent, ConsentEntry, PolicyVersion, PrivacyRequest, Processor
from models.staff import Invitation
from models.tickets import Ticket, TicketMessage, WalkInRequester
from models.users import AccountToken, ExternalIdentity, PaymentMethod, SignInSession, Team, User

__all__ = [
    "SIGN_IN_STATUSES",
    "AccountToken",
    "AccountTokenPurpose",
    "Announcement",
    "AuditEvent",
    "Campaign",
    "CampaignState",
    "Channel",
    "ConsentEntry",
    "ConsentPurpose",
    "ConsentSource",
    "DataKey",
    "ExternalIdentity",
    "Invitation",
    "Job",
    "JobState",
    "KeyRotation",
    "KeyState",
    "MailStatus",
    "Notice",
    "NoticeFanout",
    "NoticePreference",
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
    "WalkInRequester",
]
