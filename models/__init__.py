"""Tortoise models of OCIS: rows only, personal data sealed at rest."""

from models.documents import DocumentSource, PersistedDocument
from models.enums import (
    OPEN_PRIVACY_REQUEST_STATUSES,
    SIGN_IN_STATUSES,
    AccountTokenPurpose,
    CampaignState,
    Channel,
    ConsentPurpose,
    ConsentSource,
    IdentityVerificationMethod,
    JobState,
    MailStatus,
    PrivacyRequestAction,
    PrivacyRequestChannel,
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
from models.privacy import (
    AuditEvent,
    ConsentEntry,
    PolicyVersion,
    PrivacyRequest,
    PrivacyRequestStep,
    Processor,
)
from models.staff import Invitation
from models.tickets import Ticket, TicketMessage, WalkInRequester
from models.usage import UsageCount
from models.users import AccountToken, ExternalIdentity, PaymentMethod, SignInSession, Team, User

__all__ = [
    "OPEN_PRIVACY_REQUEST_STATUSES",
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
    "DocumentSource",
    "ExternalIdentity",
    "IdentityVerificationMethod",
    "Invitation",
    "Job",
    "JobState",
    "KeyRotation",
    "KeyState",
    "MailStatus",
    "Notice",
    "PersistedDocument",
    "NoticeFanout",
    "NoticePreference",
    "PaymentMethod",
    "PolicyVersion",
    "PrivacyRequest",
    "PrivacyRequestAction",
    "PrivacyRequestChannel",
    "PrivacyRequestKind",
    "PrivacyRequestStatus",
    "PrivacyRequestStep",
    "Processor",
    "Role",
    "SignInSession",
    "Team",
    "Ticket",
    "TicketMessage",
    "TicketPriority",
    "TicketStatus",
    "TransferSafeguard",
    "UsageCount",
    "User",
    "UserStatus",
    "WalkInRequester",
]
