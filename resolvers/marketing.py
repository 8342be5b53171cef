"""Marketing campaigns (P12): written and sent by marketing staff, left by one click.

Sending writes one fan-out row in the request; the fan-out job writes each eligible
account's mail in batches (privacy/fanout.py) and the delivery loop sends them with their
unsubscribe link (privacy/mail.py). Who is eligible is privacy/marketing.py's one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from tortoise.transactions import in_transaction

import settings as config
from auth.principal import Principal
from auth.scopes import Scope
from models import Campaign, CampaignState, ConsentEntry, ConsentSource, User, UserStatus
from privacy import audit, consent, fanout, marketing
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.errors import InvalidInput, NotAllowed, NotFound
from resolvers.users import require_user

MAX_SUBJECT = 150
MAX_BODY = 20_000
MAX_PAGE = 100
UNSUBSCRIBE_SOURCE = ConsentSource.EMAIL_LINK


def _require_marketing(principal: Principal) -> UUID:
    user_id = require_user(principal)
    if not principal.has(Scope.MARKETING_SEND):
        raise NotAllowed("Only marketing staff may write and send campaigns.")
    return user_id


async def create_campaign(principal: Principal, subject: str, body: str) -> Campaign:
    """Write a campaign as a draft (marketing staff); nothing is sent yet."""
    user_id = _require_marketing(principal)
    heading = validation.text(subject, "subject", max_length=MAX_SUBJECT)
    text = validation.text(body, "body", max_length=MAX_BODY, multiline=True)
    async with in_transaction():
        campaign = Campaign(subject=heading, body=text, created_by_id=user_id)
        await campaign.save()
        await audit.record(
            principal,
            action=AuditAction.CAMPAIGN_CREATE,
            entity="Campaign",
            entity_id=campaign.id,
            subject_id=None,
        )
    return campaign


async def send_campaign(principal: Principal, campaign_id: UUID) -> Campaign:
    """Send a draft to every eligible account, once (marketing staff); a campaign already
    sent or sending is answered as it is, and nothing more is sent."""
    _require_marketing(principal)
    async with in_transaction():
        now = datetime.now(UTC)
        started = await Campaign.filter(id=campaign_id, state=CampaignState.DRAFT).update(
            state=CampaignState.SENDING, sent_at=now
        )
        if started:
            eligible = await marketing.count_eligible()
            await Campaign.filter(id=campaign_id).update(eligible=eligible)
            await fanout.owe_everyone(marketing.CAMPAIGN_KIND, campaign=str(campaign_id))
            await audit.record(
                principal,
                action=AuditAction.CAMPAIGN_SEND,
                entity="Campaign",
                entity_id=campaign_id,
                subject_id=None,
                purpose=f"marketing email to {eligible} eligible accounts",
            )
        campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise NotFound("No such campaign.", "id")
    return campaign


async def campaigns(principal: Principal, first: int) -> list[Campaign]:
    """The newest campaigns (marketing staff)."""
    _require_marketing(principal)
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"Ask for 1 to {MAX_PAGE} campaigns.", "first")
    return await Campaign.all().order_by("-created_at", "-id").limit(first)


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The outcome of a one-click unsubscribe: whether this click withdrew the consent."""

    withdrew: bool


class InvalidUnsubscribeLink(Exception):
    """Forged, tampered, expired, or for an account that is gone."""


def unsubscribe_link_account(settings: config.Settings, token: str) -> UUID | None:
    """The account a mailed unsubscribe link names, if it is genuine and not expired."""
    return marketing.read_unsubscribe_token(settings, token)


async def unsubscribe(
    settings: config.Settings,
    token: str,
    *,
    ip_address: str | None,
    user_agent: str | None,
    request_id: str | None,
) -> Unsubscribed:
    """Withdraw the marketing-email consent a mailed link names, without a session; a
    second click finds it withdrawn and changes nothing."""
    user_id = unsubscribe_link_account(settings, token)
    if user_id is None:
        raise InvalidUnsubscribeLink
    async with in_transaction():
        # The account's row is the lock that makes two clicks at once one withdrawal.
        owner = (
            await User.filter(id=user_id)
            .exclude(status=UserStatus.ERASED)
            .select_for_update()
            .only("id")
            .first()
        )
        if owner is None:
            raise InvalidUnsubscribeLink
        latest = (
            await ConsentEntry.filter(user_id=user_id, purpose=marketing.PURPOSE)
            .order_by("-created_at", "granted")
            .only("id", "granted")
            .first()
        )
        if latest is None or not latest.granted:
            return Unsubscribed(withdrew=False)
        entry = await consent.append(
            user_id,
            marketing.PURPOSE,
            granted=False,
            source=UNSUBSCRIBE_SOURCE,
            ip_address=ip_address,
            user_agent=user_agent,
        )
        await audit.record(
            Principal(user_id=user_id, request_id=request_id),
            action=AuditAction.CONSENT_WITHDRAW,
            entity="ConsentEntry",
            entity_id=entry.id,
            subject_id=user_id,
            field_names=["ConsentEntry.granted", "ConsentEntry.purpose"],
            purpose="one-click unsubscribe link",
        )
    return Unsubscribed(withdrew=True)
