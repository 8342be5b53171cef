"""Privacy requests (GDPR rights): submitting and following one's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from auth import scoping
from auth.principal import Principal
from models import PrivacyRequest, PrivacyRequestKind
from privacy import audit
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.users import require_user

# GDPR Art. 12(3): answer within one month of receipt.
RESPONSE_WINDOW = timedelta(days=30)
MAX_DETAILS = 5_000


async def submit_privacy_request(
    principal: Principal, kind: PrivacyRequestKind, details: str | None
) -> PrivacyRequest:
    """Register a request to exercise a right; it is due one month after receipt."""
    subject_id = require_user(principal)
    cleaned = (
        validation.text(details, "details", max_length=MAX_DETAILS, multiline=True)
        if details and details.strip()
        else None
    )
    received = datetime.now(UTC)
    request = PrivacyRequest(
        subject_id=subject_id,
        kind=kind,
        details=cleaned,
        received_at=received,
        due_at=received + RESPONSE_WINDOW,
    )
    async with in_transaction():
        await request.save()
        await audit.record(
            principal,
            action=AuditAction.PRIVACY_REQUEST_SUBMIT,
            entity="PrivacyRequest",
            entity_id=request.id,
            subject_id=subject_id,
            field_names=["PrivacyRequest.kind", "PrivacyRequest.details"]
            if cleaned
            else ["PrivacyRequest.kind"],
        )
    return request


async def my_privacy_requests(principal: Principal, limit: int = 100) -> list[PrivacyRequest]:
    subject_id = require_user(principal)
    return (
        await scoping.readable_privacy_requests(principal)
        .filter(subject_id=subject_id)
        .order_by("-received_at")
        .limit(limit)
    )
