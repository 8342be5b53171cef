"""Objection (P27, GDPR Art. 21): what a person may object to, and the consent purposes each
stops. It takes effect at once, recorded in the consent ledger as an objection."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from models import ConsentPurpose
from privacy import consent


class ObjectionTarget(StrEnum):
    """Processing on OCIS's legitimate interest, or marketing, that a person may object to."""

    MARKETING = "marketing"
    ANALYTICS = "analytics"


PURPOSES: dict[ObjectionTarget, tuple[ConsentPurpose, ...]] = {
    ObjectionTarget.MARKETING: consent.MARKETING,
    ObjectionTarget.ANALYTICS: (ConsentPurpose.STATISTICS,),
}


def purposes_of(targets: Iterable[ObjectionTarget]) -> list[ConsentPurpose]:
    """The consent purposes these objections stop, each once, in a stable order."""
    return list(dict.fromkeys(p for target in targets for p in PURPOSES[target]))
