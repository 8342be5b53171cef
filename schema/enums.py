"""The models' enums, registered with Strawberry once so fields annotate the Python enum."""

import strawberry

from models import (
    Channel,
    ConsentPurpose,
    ConsentSource,
    CorrectableField,
    ExportStatus,
    IdentityVerificationMethod,
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
from resolvers.live import TicketEventKind
from resolvers.privacy_requests import ObjectionTarget

for _enum in (
    Channel,
    ConsentPurpose,
    ConsentSource,
    CorrectableField,
    ExportStatus,
    IdentityVerificationMethod,
    ObjectionTarget,
    PrivacyRequestAction,
    PrivacyRequestChannel,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    Role,
    TicketEventKind,
    TicketPriority,
    TicketStatus,
    TransferSafeguard,
    UserStatus,
):
    strawberry.enum(_enum, name=_enum.__name__)

__all__ = [
    "Channel",
    "ConsentPurpose",
    "ConsentSource",
    "CorrectableField",
    "ExportStatus",
    "IdentityVerificationMethod",
    "ObjectionTarget",
    "PrivacyRequestAction",
    "PrivacyRequestChannel",
    "PrivacyRequestKind",
    "PrivacyRequestStatus",
    "Role",
    "TicketEventKind",
    "TicketPriority",
    "TicketStatus",
    "TransferSafeguard",
    "UserStatus",
]
