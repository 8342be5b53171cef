"""Consent: grant and withdraw per purpose, read one's own state and ledger."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from auth.principal import Principal
from models import ConsentEntry, ConsentPurpose
from privacy import audit, consent
from privacy.audit_actions import AuditAction
from privacy.consent import ConsentState
from resolvers.errors import InvalidInput
from resolvers.users import require_user

# Accepted through acceptPolicyVersion, which names the version accepted.
_NOT_A_CHOICE = frozenset({ConsentPurpose.PRIVACY_POLICY})


async def set_consent(
    principal: Principal,
    purpose: ConsentPurpose,
    *,
    granted: bool,
    source: str,
    ip_address: str | None,
    user_agent: str | None,
) -> ConsentState:
    """Record a grant or a withdrawal in the ledger; it applies at once."""
    user_id = require_user(principal)
    if purpose in _NOT_A_CHOICE:
        raise InvalidInput(
            "Accept a version of the privacy policy with acceptPolicyVersion.", "purpose"
        )
    async with in_transaction():
        entry = await consent.append(
            user_id,
            purpose,
            granted=granted,
            source=source,
            ip_address=ip_address,
            user_agent=user_agent,
        )
        await audit.record(
            principal,
            action=AuditAction.CONSENT_GRANT if granted else AuditAction.CONSENT_WITHDRAW,
            entity="ConsentEntry",
            entity_id=entry.id,
            subject_id=user_id,
            field_names=["ConsentEntry.granted", "ConsentEntry.purpose"],
        )
    return ConsentState(purpose, granted, entry.policy_version, entry.created_at)


async def my_consents(principal: Principal) -> list[ConsentState]:
    return await consent.current_state(require_user(principal))


async def my_consent_ledger(principal: Principal, limit: int = 100) -> list[ConsentEntry]:
    user_id = require_user(principal)
    return await ConsentEntry.filter(user_id=user_id).order_by("-created_at").limit(limit)
