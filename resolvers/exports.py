"""Exports of a subject's data (access, portability): listing them, downloading one, the schema.

The building and the rules of the link are privacy/exports.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from auth import scoping
from auth.principal import Principal
from models import Export, ExportStatus
from privacy import exports
from privacy.exports import DownloadRefused

__all__ = ["DownloadRefused", "download", "download_path", "load_exports", "schema_text"]


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


async def load_exports(principal: Principal, request_ids: list[UUID]) -> list[list[Export]]:
    """DataLoader batch: the readable exports of these requests (their state, never their
    content), newest first, in key order; one query."""
    found: dict[UUID, list[Export]] = {key: [] for key in request_ids}
    readable = scoping.readable_exports(principal).filter(request_id__in=request_ids)
    for export in await readable.order_by("-created_at", "id"):
        found[export.request_id].append(export)
    return [found[key] for key in request_ids]


def download_path(export: Export) -> str | None:
    """Where its subject downloads a ready export with their session (the link's secret is
    in the mail alone)."""
    if export.status is not ExportStatus.READY:
        return None
    return f"/privacy/exports/{export.id}"


def schema_text() -> str:
    """The export's JSON Schema (docs/export.schema.json)."""
    return exports.schema_text()
