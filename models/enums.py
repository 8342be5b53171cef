"""Closed vocabularies stored in rows."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    TEAM_LEAD = "team_lead"
    PRIVACY_OFFICER = "privacy_officer"
    ADMINISTRATOR = "administrator"


class UserStatus(StrEnum):
    ACTIVE = "active"
    RESTRICTED = "restricted"
    DISABLED = "disabled"
    ERASED = "erased"


# Who may hold a session or a token: a restricted account still signs in (to see and lift
# its restriction); a disabled or erased one never does.
SIGN_IN_STATUSES = (UserStatus.ACTIVE, UserStatus.RESTRICTED)


class AccountTokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a secret)
    CHANGE_EMAIL = "change_email"


class MailStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TicketStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SOLVED = "solved"
    CLOSED = "closed"


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Channel(StrEnum):
    WEB = "web"
    MOBILE = "mobile"
    EMAIL = "email"


class ConsentPurpose(StrEnum):
    # Always on: recorded as information (the cookies the service cannot work without), never
    # asked for, never withdrawn.
    NECESSARY = "necessary"
    PREFERENCES = "preferences"
    STATISTICS = "statistics"
    MARKETING_COOKIES = "marketing_cookies"
    MARKETING_EMAIL = "marketing_email"
    # Acceptance of the terms of service.
    TERMS = "terms"
    # Acceptance of a version of the privacy policy (the entry names the version).
    PRIVACY_POLICY = "privacy_policy"


class CampaignState(StrEnum):
    DRAFT = "draft"
    # Its mails are being written, a batch of eligible accounts at a time (privacy/fanout.py).
    SENDING = "sending"
    SENT = "sent"


class ConsentSource(StrEnum):
    """Where a consent decision was made."""

    WEB = "web"
    MOBILE = "mobile"
    EMAIL_LINK = "email_link"
    STAFF_ON_BEHALF = "staff_on_behalf"
    # The browser's Global Privacy Control signal (`Sec-GPC: 1`).
    GPC = "gpc"
    # Entries from before migration 0016, which did not tell web from mobile; never written now.
    API = "api"
    # What an erasure keeps of a withdrawn purpose: the proof, without the person's details.
    ERASURE = "erasure"


class PrivacyRequestKind(StrEnum):
    ACCESS = "access"
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    PORTABILITY = "portability"
    OBJECTION = "objection"


class CorrectableField(StrEnum):
    """A profile field a rectification request may propose a correction to (GDPR Art. 16)."""

    NAME = "name"
    PHONE = "phone"
    DATE_OF_BIRTH = "date_of_birth"


class ExportStatus(StrEnum):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


class PrivacyRequestStatus(StrEnum):
    RECEIVED = "received"
    IDENTITY_VERIFIED = "identity_verified"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REJECTED = "rejected"
    # A second open request of the same kind by the same person: linked to the first, closed.
    DUPLICATE = "duplicate"


# Requests still to be answered (the officer's queue; they give the officer need-to-know).
OPEN_PRIVACY_REQUEST_STATUSES = (
    PrivacyRequestStatus.RECEIVED,
    PrivacyRequestStatus.IDENTITY_VERIFIED,
    PrivacyRequestStatus.IN_PROGRESS,
)


class IdentityVerificationMethod(StrEnum):
    """How the privacy officer made sure a request comes from the person it is about."""

    SIGNED_IN_SESSION = "signed_in_session"
    EMAIL_LINK = "email_link"
    DOCUMENT_CHECK = "document_check"
    STAFF_KNOWN_CONTACT = "staff_known_contact"


class PrivacyRequestAction(StrEnum):
    """What one step of a privacy request's history did."""

    SUBMITTED = "submitted"
    REGISTERED = "registered"
    ASSIGNED = "assigned"
    IDENTITY_VERIFIED = "identity_verified"
    STARTED = "started"
    COMPLETED = "completed"
    REJECTED = "rejected"
    EXTENDED = "extended"
    LINKED_AS_DUPLICATE = "linked_as_duplicate"
    # After its request was completed: the officer lifts the restriction it put in place.
    RESTRICTION_LIFTED = "restriction_lifted"
    # An erasure the officer completed waits: a legal hold applies (P13). It runs once lifted.
    ERASURE_BLOCKED = "erasure_blocked"


class PrivacyRequestChannel(StrEnum):
    """How a request reached OCIS: submitted through the API, or written to the contact address."""

    SELF_SERVICE = "self_service"
    CONTACT_ADDRESS = "contact_address"
    # No one asked: staff found the account to be a child's and its erasure began (P29).
    CHILD_ACCOUNT = "child_account"


class TransferSafeguard(StrEnum):
    """What makes a transfer to a processor's country lawful (GDPR Chapter V)."""

    ADEQUACY_DECISION = "adequacy_decision"
    STANDARD_CONTRACTUAL_CLAUSES = "standard_contractual_clauses"
    BINDING_CORPORATE_RULES = "binding_corporate_rules"
    NOT_NEEDED_EEA = "not_needed_eea"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    # Its subject's processing is restricted (P25): held back until the restriction is lifted.
    PARKED = "parked"
