"""Legal holds and disclosures (P13): placed, lifted, recorded and read by staff with the
legal scope (the privacy officer, administrators)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from tortoise.transactions import in_transaction

from auth.principal import Principal
from auth.scopes import Scope
from models import LegalDisclosure, LegalHold, User, UserStatus
from privacy import erasure, legal
from resolvers import validation
from resolvers.errors import IllegalTransition, InvalidInput, NotAllowed, NotFound
from resolvers.users import require_user

MAX_AUTHORITY = 200
MAX_REFERENCE = 200
MAX_REASON = 2_000
MAX_CATEGORIES = 30
# A disclosure is recorded when it happens, or soon after: not years later, never ahead.
MAX_DISCLOSURE_AGE = timedelta(days=365 * 10)


def require_legal(principal: Principal) -> UUID:
    """The caller's id, when they hold the legal scope."""
    me = require_user(principal)
    if not principal.has(Scope.LEGAL_HOLDS):
        raise NotAllowed("Only staff with the legal scope may see or change legal holds.")
    return me


async def _subject(user_id: UUID) -> UUID:
    if not await User.filter(id=user_id).exclude(status=UserStatus.ERASED).exists():
        raise NotFound("No such account.", "userId")
    return user_id


def _categories(values: list[str]) -> list[str]:
    cleaned = list(
        dict.fromkeys(validation.text(value, "dataCategories", max_length=100) for value in values)
    )
    if not cleaned:
        raise InvalidInput("Name at least one category of data.", "dataCategories")
    if len(cleaned) > MAX_CATEGORIES:
        raise InvalidInput(f"Name at most {MAX_CATEGORIES} categories.", "dataCategories")
    return cleaned


async def place_legal_hold(
    principal: Principal,
    user_id: UUID,
    *,
    authority: str,
    reference: str,
    reason: str,
    review_on: date,
) -> LegalHold:
    """Place a hold on an account's data: erasure and retention skip it until it is lifted."""
    require_legal(principal)
    subject = await _subject(user_id)
    if review_on <= datetime.now(UTC).date():
        raise InvalidInput("Choose a review date in the future.", "reviewOn")
    async with in_transaction():
        return await legal.place_hold(
            principal,
            subject,
            authority=validation.text(authority, "authority", max_length=MAX_AUTHORITY),
            reference=validation.text(reference, "reference", max_length=MAX_REFERENCE),
            reason=validation.text(reason, "reason", max_length=MAX_REASON, multiline=True),
            review_on=review_on,
        )


async def lift_legal_hold(principal: Principal, hold_id: UUID) -> LegalHold:
    """Lift a hold; once none is left on its subject, an erasure it blocked goes ahead."""
    require_legal(principal)
    async with in_transaction():
        hold = await LegalHold.select_for_update().get_or_none(id=hold_id)
        if hold is None:
            raise NotFound("No such legal hold.", "holdId")
        try:
            await legal.lift_hold(principal, hold)
        except legal.HoldNotActive as refused:
            raise IllegalTransition(str(refused), "holdId") from None
        await erasure.resume(principal, hold.subject_id)
    return hold


async def record_legal_disclosure(
    principal: Principal,
    user_id: UUID,
    *,
    authority: str,
    legal_basis: str,
    data_categories: list[str],
    disclosed_on: date,
    subject_may_be_told_on: date | None,
) -> LegalDisclosure:
    """Record data disclosed to an authority; shown in its subject's export from the date
    they may be told (at once when none is given)."""
    require_legal(principal)
    subject = await _subject(user_id)
    today = datetime.now(UTC).date()
    if disclosed_on > today or disclosed_on < today - MAX_DISCLOSURE_AGE:
        raise InvalidInput("Give the date the data was disclosed.", "disclosedOn")
    if subject_may_be_told_on is not None and subject_may_be_told_on < disclosed_on:
        raise InvalidInput(
            "The subject may be told on the day of the disclosure at the earliest.",
            "subjectMayBeToldOn",
        )
    async with in_transaction():
        return await legal.record_disclosure(
            principal,
            subject,
            authority=validation.text(authority, "authority", max_length=MAX_AUTHORITY),
            legal_basis=validation.text(legal_basis, "legalBasis", max_length=MAX_REASON),
            data_categories=_categories(data_categories),
            disclosed_on=disclosed_on,
            subject_may_be_told_on=subject_may_be_told_on,
        )


async def legal_holds_of(principal: Principal, user_id: UUID) -> list[LegalHold]:
    """Every hold on an account, active and lifted, the newest first (legal scope)."""
    require_legal(principal)
    return await LegalHold.filter(subject_id=user_id).order_by("-placed_at", "-id").limit(100)


async def legal_disclosures_of(principal: Principal, user_id: UUID) -> list[LegalDisclosure]:
    """Every disclosure recorded about an account, the newest first (legal scope)."""
    require_legal(principal)
    return (
        await LegalDisclosure.filter(subject_id=user_id).order_by("-disclosed_on", "-id").limit(100)
    )
