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
    PREFERENCES = "preferences"
    STATISTICS = "statistics"
    MARKETING = "marketing"
    # Acceptance of a version of the privacy policy (the entry names the version).
    PRIVACY_POLICY = "privacy_policy"


class PrivacyRequestKind(StrEnum):
    ACCESS = "access"
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    PORTABILITY = "portability"
    OBJECTION = "objection"


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


class PrivacyRequestChannel(StrEnum):
    """How a request reached OCIS: submitted through the API, or written to the contact address."""

    SELF_SERVICE = "self_service"
    CONTACT_ADDRESS = "contact_address"


class TransferSafeguard(StrEnum):
    """What makes a transfer to a processor's country lawful (GDPR Chapter V)."""

    ADEQUACY_DECISION = "adequacy_decision"
    STANDARD_CONTRACTUAL_CLAUSES = "standard_contractual_clauses"
    BINDING_CORPORATE_RULES = "binding_corporate_rules"
    NOT_NEEDED_EEA = "not_needed_eea"
