"""Consent (P05): grant, withdraw and object per purpose, for accounts and anonymous visitors;
read one's own state and ledger (the privacy officer anyone's); merge a visitor's decisions
into the account that signs in from its browser; honour the Global Privacy Control signal.

Nothing here caches a decision: every check reads the ledger (privacy/consent.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from tortoise.transactions import in_transaction

from auth.principal import Principal
from auth.scopes import Scope
from auth.visitor_ids import Owner, Visitor, VisitorIds
from models import ConsentEntry, ConsentPurpose, ConsentSource, User
from privacy import audit, consent
from privacy.audit_actions import AuditAction
from privacy.consent import ConsentState
from resolvers.errors import InvalidInput, NotAllowed, NotFound
from resolvers.users import require_user

_NOT_A_CHOICE = {
    ConsentPurpose.NECESSARY: "Necessary cookies are always on: recorded as information, "
    "not a choice.",
    ConsentPurpose.PRIVACY_POLICY: "Accept a version of the privacy policy with "
    "acceptPolicyVersion.",
}
_INVALID_VISITOR = "This consent id is not valid: send the visitorId OCIS gave you, or none."
_FIELDS = ["ConsentEntry.granted", "ConsentEntry.purpose"]
LEDGER_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision recorded; `issued_visitor_id` is the consent id issued with it, if any."""

    state: ConsentState
    owner: Owner
    issued_visitor_id: str | None = None


def subject_of_owner(owner: Owner) -> UUID:
    """Whose consent it is, as the audit trail names them."""
    return owner.id if isinstance(owner, Visitor) else owner


def _visitor(visitor_ids: VisitorIds, visitor_id: str) -> Visitor:
    visitor = visitor_ids.verify(visitor_id)
    if visitor is None:
        raise InvalidInput(_INVALID_VISITOR, "visitorId")
    return visitor


def _owner(
    principal: Principal, visitor_ids: VisitorIds, visitor_id: str | None
) -> tuple[Owner, str | None]:
    """The caller's ledger: their account's, or the visitor's their consent id proves (a new
    one issued when an anonymous caller sends none)."""
    if principal.user_id is not None:
        if visitor_id is not None:
            raise InvalidInput(
                "Signed in, your consent is your account's: send no visitorId.", "visitorId"
            )
        return principal.user_id, None
    if visitor_id is None:
        visitor, issued = visitor_ids.issue()
        return visitor, issued
    return _visitor(visitor_ids, visitor_id), None


async def set_consent(
    principal: Principal,
    purpose: ConsentPurpose,
    *,
    granted: bool,
    visitor_ids: VisitorIds,
    visitor_id: str | None,
    source: ConsentSource,
    ip_address: str | None,
    user_agent: str | None,
    gpc: bool = False,
    gpc_done_for: Owner | None = None,
) -> Decided:
    """Record a grant or a withdrawal in the ledger; it applies at once, everywhere.

    With `gpc` (the request's `Sec-GPC: 1`), an objection to marketing is recorded first for
    an owner the request's own handling has not already seen to (`gpc_done_for`)."""
    if purpose in _NOT_A_CHOICE:
        raise InvalidInput(_NOT_A_CHOICE[purpose], "purpose")
    owner, issued = _owner(principal, visitor_ids, visitor_id)
    if gpc and owner != gpc_done_for:
        await honour_gpc(principal, owner, ip_address=ip_address, user_agent=user_agent)
    async with in_transaction():
        entry = await consent.append(
            owner,
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
            subject_id=subject_of_owner(owner),
            field_names=_FIELDS,
        )
    state = ConsentState(purpose, granted, entry.policy_version, entry.created_at)
    return Decided(state, owner, issued)


async def object_to(
    principal: Principal,
    owner: Owner,
    purposes: list[ConsentPurpose],
    source: ConsentSource,
    *,
    ip_address: str | None,
    user_agent: str | None,
    current: dict[ConsentPurpose, ConsentEntry] | None = None,
) -> list[ConsentEntry]:
    """Record and audit an objection to each purpose not already objected to."""
    async with in_transaction():
        written = await consent.object_to(
            owner,
            purposes,
            source,
            ip_address=ip_address,
            user_agent=user_agent,
            current=current,
        )
        for entry in written:
            await audit.record(
                principal,
                action=AuditAction.CONSENT_OBJECT,
                entity="ConsentEntry",
                entity_id=entry.id,
                subject_id=subject_of_owner(owner),
                field_names=[*_FIELDS, "ConsentEntry.objection"],
            )
    return written


async def honour_gpc(
    principal: Principal, owner: Owner, *, ip_address: str | None, user_agent: str | None
) -> list[ConsentEntry]:
    """`Sec-GPC: 1`: an objection to marketing, recorded once (one read when there is nothing
    to do). A marketing purpose whose latest entry is an objection is left alone, and so is
    one granted explicitly after an earlier GPC objection: the person chose, on this site."""
    entries = await consent.entries_of(owner).filter(purpose__in=consent.MARKETING)
    history: dict[ConsentPurpose, list[ConsentEntry]] = {}
    for entry in sorted(entries, key=lambda row: (row.created_at, str(row.id))):
        history.setdefault(ConsentPurpose(entry.purpose), []).append(entry)
    due = []
    for purpose in consent.MARKETING:
        lines = history.get(purpose, [])
        if lines and lines[-1].objection:
            continue
        if any(line.objection and line.source == ConsentSource.GPC for line in lines):
            continue
        due.append(purpose)
    if not due:
        return []
    newest = {purpose: lines[-1] for purpose, lines in history.items()}
    return await object_to(
        principal,
        owner,
        due,
        ConsentSource.GPC,
        ip_address=ip_address,
        user_agent=user_agent,
        current=newest,
    )


async def my_consents(principal: Principal) -> list[ConsentState]:
    return await consent.current_state(require_user(principal))


async def my_consent_ledger(principal: Principal, limit: int = LEDGER_LIMIT) -> list[ConsentEntry]:
    user_id = require_user(principal)
    return await ConsentEntry.filter(user_id=user_id).order_by("-created_at").limit(limit)


async def visitor_consents(
    visitor_ids: VisitorIds, visitor_id: str
) -> tuple[Visitor, list[ConsentState]]:
    """An anonymous visitor's current state, for the holder of its consent id."""
    visitor = _visitor(visitor_ids, visitor_id)
    return visitor, await consent.current_state(visitor)


async def _readable_subject(principal: Principal, user_id: UUID) -> UUID:
    """One's own account, or (for the privacy officer) any account."""
    me = require_user(principal)
    if user_id == me:
        return me
    if not principal.has(Scope.PRIVACY_REQUESTS):
        raise NotAllowed("Only the privacy officer may read another person's consent.")
    if not await User.filter(id=user_id).exists():
        raise NotFound("No such account.", "userId")
    return user_id


async def consents_of(principal: Principal, user_id: UUID) -> list[ConsentState]:
    """An account's current consent state: its owner's, or any for the privacy officer."""
    return await consent.current_state(await _readable_subject(principal, user_id))


async def consent_ledger_of(
    principal: Principal, user_id: UUID, limit: int = LEDGER_LIMIT
) -> list[ConsentEntry]:
    """An account's consent ledger, newest first: its owner's, or any for the privacy officer."""
    subject = await _readable_subject(principal, user_id)
    return await ConsentEntry.filter(user_id=subject).order_by("-created_at").limit(limit)


def checked_visitor(visitor_ids: VisitorIds, visitor_id: str | None) -> Visitor | None:
    """The visitor a consent id argument proves, None for none; a forged one is refused."""
    return None if visitor_id is None else _visitor(visitor_ids, visitor_id)


async def adopt_visitor_consent(
    actor: Principal, user_id: UUID, visitor_ids: VisitorIds, visitor_id: str | None
) -> int:
    """At sign-in: attach the entries of the visitor whose consent id the browser carries to
    the account that signed in (an absent or invalid id changes nothing). Audited once, with
    ids only. Returns how many entries moved."""
    visitor = visitor_ids.verify(visitor_id)
    if visitor is None:
        return 0
    async with in_transaction():
        moved = await consent.merge_visitor(visitor, user_id)
        if moved:
            await audit.record(
                actor,
                action=AuditAction.CONSENT_MERGE,
                entity="Visitor",
                entity_id=visitor.id,
                subject_id=user_id,
                field_names=["ConsentEntry.user"],
            )
    return len(moved)
