"""The registry of processors (P15) with their country and transfer safeguard (P30).

The privacy officer keeps it; everyone may read it. The mail transport is registered when
OCIS starts (it is what receives every email address OCIS writes to) and cannot be removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from auth.principal import Principal
from auth.scopes import Scope
from models import Processor, TransferSafeguard
from privacy import audit
from privacy.audit_actions import AuditAction
from resolvers import validation
from resolvers.countries import COUNTRIES, in_eea
from resolvers.errors import InvalidInput, NotAllowed, NotFound
from resolvers.users import require_user

MAIL_TRANSPORT = "mail_transport"
# What privacy/mail.py compose hands the transport: nothing else of anyone.
MAIL_TRANSPORT_CATEGORIES = ["email address", "email subject", "email text"]
MAX_CATEGORIES = 30
_FIELD_NAMES = {
    "name": "Processor.name",
    "purpose": "Processor.purpose",
    "data_categories": "Processor.dataCategories",
    "country": "Processor.country",
    "safeguard": "Processor.safeguard",
    "contract_date": "Processor.contractDate",
}


@dataclass(frozen=True, slots=True)
class ProcessorChanges:
    """Fields to set; None leaves one as it is (``clear_contract_date`` empties the date)."""

    name: str | None = None
    purpose: str | None = None
    data_categories: list[str] | None = None
    country: str | None = None
    safeguard: TransferSafeguard | None = None
    contract_date: date | None = None
    clear_contract_date: bool = False


def _manager(principal: Principal) -> None:
    require_user(principal)
    if not principal.has(Scope.PROCESSORS_MANAGE):
        raise NotAllowed("Only the privacy officer may change the registry of processors.")


def _country(value: str) -> str:
    code = validation.characters(value, "country").strip().upper()
    if code not in COUNTRIES:
        raise InvalidInput("Use an ISO 3166-1 alpha-2 country code such as IE or US.", "country")
    return code


def _categories(values: list[str]) -> list[str]:
    cleaned = list(
        dict.fromkeys(validation.text(value, "dataCategories", max_length=100) for value in values)
    )
    if not cleaned:
        raise InvalidInput("Name at least one category of data.", "dataCategories")
    if len(cleaned) > MAX_CATEGORIES:
        raise InvalidInput(f"Name at most {MAX_CATEGORIES} categories.", "dataCategories")
    return cleaned


def _contract_date(value: date) -> date:
    if value > datetime.now(UTC).date() or value.year < 1990:
        raise InvalidInput("Give the date the contract was signed.", "contractDate")
    return value


def _apply(row: Processor, changes: ProcessorChanges) -> list[str]:
    """Check and set the changes on the row; answer the audit names of what changed."""
    changed: list[str] = []

    def put(attribute: str, value: object) -> None:
        if getattr(row, attribute) != value:
            setattr(row, attribute, value)
            changed.append(_FIELD_NAMES[attribute])

    if changes.name is not None:
        put("name", validation.text(changes.name, "name", max_length=200))
    if changes.purpose is not None:
        put("purpose", validation.text(changes.purpose, "purpose", max_length=2_000))
    if changes.data_categories is not None:
        put("data_categories", _categories(changes.data_categories))
    if changes.country is not None:
        put("country", _country(changes.country))
    if changes.safeguard is not None:
        put("safeguard", TransferSafeguard(changes.safeguard))
    if changes.clear_contract_date:
        put("contract_date", None)
    elif changes.contract_date is not None:
        put("contract_date", _contract_date(changes.contract_date))
    if row.safeguard == TransferSafeguard.NOT_NEEDED_EEA and not in_eea(row.country):
        raise InvalidInput(
            "A processor outside the EEA needs a transfer safeguard.",
            "safeguard" if changes.safeguard is not None else "country",
        )
    return changed


async def _save(
    principal: Principal, row: Processor, action: AuditAction, names: list[str]
) -> None:
    try:
        async with in_transaction():
            await row.save()
            await audit.record(
                principal,
                action=action,
                entity="Processor",
                entity_id=row.id,
                subject_id=None,
                field_names=names,
            )
    except IntegrityError:
        raise InvalidInput("A processor of this name is registered already.", "name") from None


async def list_processors() -> list[Processor]:
    """Every registered processor, by name (public)."""
    return await Processor.all().order_by("name")


async def add_processor(
    principal: Principal,
    *,
    name: str,
    purpose: str,
    data_categories: list[str],
    country: str,
    safeguard: TransferSafeguard,
    contract_date: date | None,
) -> Processor:
    """Register a processor (privacy officer)."""
    _manager(principal)
    row = Processor(name="", purpose="", data_categories=[], country="", safeguard=safeguard)
    _apply(
        row,
        ProcessorChanges(
            name=name,
            purpose=purpose,
            data_categories=data_categories,
            country=country,
            safeguard=safeguard,
            contract_date=contract_date,
        ),
    )
    if await Processor.filter(name=row.name).exists():
        raise InvalidInput("A processor of this name is registered already.", "name")
    given = [name for attribute, name in _FIELD_NAMES.items() if getattr(row, attribute)]
    await _save(principal, row, AuditAction.PROCESSOR_ADD, given)
    return row


async def _registered(processor_id: UUID) -> Processor:
    row = await Processor.get_or_none(id=processor_id)
    if row is None:
        raise NotFound("No such processor.", "id")
    return row


async def update_processor(
    principal: Principal, processor_id: UUID, changes: ProcessorChanges
) -> Processor:
    """Correct a processor's entry (privacy officer); only what changed is audited."""
    _manager(principal)
    row = await _registered(processor_id)
    names = _apply(row, changes)
    if names and changes.name is not None and "Processor.name" in names:
        if await Processor.filter(name=row.name).exclude(id=row.id).exists():
            raise InvalidInput("A processor of this name is registered already.", "name")
    if names:
        await _save(principal, row, AuditAction.PROCESSOR_UPDATE, names)
    return row


async def remove_processor(principal: Principal, processor_id: UUID) -> None:
    """Take a processor off the registry (privacy officer); OCIS's own ones stay."""
    _manager(principal)
    row = await _registered(processor_id)
    if row.system_role is not None:
        raise InvalidInput("OCIS cannot work without this processor: correct it instead.", "id")
    async with in_transaction():
        await Processor.filter(id=row.id).delete()
        await audit.record(
            principal,
            action=AuditAction.PROCESSOR_REMOVE,
            entity="Processor",
            entity_id=row.id,
            subject_id=None,
        )


async def register_mail_transport(name: str, country: str) -> Processor:
    """At start-up: make sure the mail transport is in the registry (kept as it is if so)."""
    existing = await Processor.get_or_none(system_role=MAIL_TRANSPORT)
    if existing is not None:
        return existing
    code = country.strip().upper()
    row = Processor(
        name=name,
        purpose="Delivers the email OCIS sends (notices, invitations, sign-in and privacy mail).",
        data_categories=list(MAIL_TRANSPORT_CATEGORIES),
        country=code,
        safeguard=TransferSafeguard.NOT_NEEDED_EEA
        if in_eea(code)
        else TransferSafeguard.STANDARD_CONTRACTUAL_CLAUSES,
        contract_date=None,
        system_role=MAIL_TRANSPORT,
    )
    try:
        await row.save()
    except IntegrityError:  # another process registered it first (or the name is taken)
        found = await Processor.get_or_none(system_role=MAIL_TRANSPORT)
        if found is None:
            raise
        return found
    return row
