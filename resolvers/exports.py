"""Exports of a subject's data (access, portability): listing them, downloading one, the schema.

The building and the rules of the link are privacy/exports.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from auth.principal import Principal
from models import Export
from privacy import exports
from privacy.exports import DownloadRefused

__all__ = ["DownloadRefused", "download", "load_exports", "schema_text"]


async def download(
    principal: Principal, export_id: str, secret: str | None
) -> tuple[Export, AsyncIterator[str]]:
    """Count one download (the subject's session or the link's secret) and the export's JSON."""
    try:
        key = UUID(export_id)
    except ValueError:
        raise DownloadRefused(gone=False) from None
    if secret is not None and len(secret) > 200:
        secret = None
    export = await exports.take_download(principal, key, secret)
    return export, exports.stream(export)


async def load_exports(request_ids: list[UUID]) -> list[list[Export]]:
    """DataLoader batch: the exports of requests the caller could read (their status, never
    their content), newest first, in key order."""
    found: dict[UUID, list[Export]] = {key: [] for key in request_ids}
    for export in await Export.filter(request_id__in=request_ids).order_by("-created_at"):
        found[export.request_id].append(export)
    return [found[key] for key in request_ids]


def schema_text() -> str:
    """The export's JSON Schema (docs/export.schema.json)."""
    return exports.schema_text()
