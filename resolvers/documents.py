"""The document registry: GraphQL documents known by the SHA-256 of their text.

Clients send a registered document's hash instead of its text (automatic persisted queries,
as Apollo clients send them); with trusted documents only, the documents registered from a
manifest are the only ones clients may run. Each process keeps the documents it used in a
bounded cache; the table is the registry that every process shares.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError

from models import DocumentSource, PersistedDocument

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# The documents a process keeps in memory; the rest are one indexed read away.
CACHE_SIZE = 2_000
# Automatic registrations stop here (each needs a valid document, but a caller can write many
# valid ones); past it a new document still runs, and is remembered only in the process.
MAX_AUTOMATIC_DOCUMENTS = 10_000
APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"
OPERATION_NAME_LENGTH = 200

# Parses and checks a document against the schema, its limits and its cost (schema/documents.py):
# the problems found, none for a document that may be registered.
DocumentCheck = Callable[[str], list[str]]


def document_hash(text: str) -> str:
    """The SHA-256 of the document's exact text, lower-case hex (Apollo's `sha256Hash`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredDocument:
    sha256: str
    text: str
    source: DocumentSource

    @property
    def trusted(self) -> bool:
        return self.source is DocumentSource.MANIFEST


class DocumentRegistry:
    """The registry as one process sees it: the shared table behind a bounded cache."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._cache: OrderedDict[str, StoredDocument] = OrderedDict()
        self._cache_size = cache_size

    async def find(self, sha256: str, *, trusted: bool = False) -> StoredDocument | None:
        """The document with this hash; with `trusted`, looked up again in the table when this
        process knows it only as automatic (a manifest may have registered it since)."""
        cached = self._cache.get(sha256)
        if cached is not None and (cached.trusted or not trusted):
            self._cache.move_to_end(sha256)
            return cached
        row = await PersistedDocument.get_or_none(sha256=sha256)
        if row is None:
            return cached
        return self._remember(StoredDocument(row.sha256, row.text, row.source))

    async def register(
        self, text: str, source: DocumentSource, operation_name: str | None = None
    ) -> bool:
        """Register a checked document; idempotent. True when the table did not hold it yet.

        A manifest's registration makes an automatic one trusted."""
        sha256 = document_hash(text)
        existing = await self.find(sha256, trusted=source is DocumentSource.MANIFEST)
        if existing is not None:
            if source is DocumentSource.MANIFEST and not existing.trusted:
                await PersistedDocument.filter(sha256=sha256).update(source=source)
                self._remember(StoredDocument(sha256, text, source))
            return False
        document = StoredDocument(sha256, text, source)
        if (
            source is DocumentSource.AUTOMATIC
            and await PersistedDocument.filter(source=source).count() >= MAX_AUTOMATIC_DOCUMENTS
        ):
            self._remember(document)
            return False
        name = operation_name[:OPERATION_NAME_LENGTH] if operation_name else None
        try:
            await PersistedDocument.create(
                sha256=sha256, text=text, source=source, operation_name=name
            )
        except IntegrityError:
            # Another process registered it meanwhile; a manifest still makes it trusted.
            if source is DocumentSource.MANIFEST:
                await PersistedDocument.filter(sha256=sha256).update(source=source)
            self._cache.pop(sha256, None)
            return False
        self._remember(document)
        return True

    def _remember(self, document: StoredDocument) -> StoredDocument:
        self._cache[document.sha256] = document
        self._cache.move_to_end(document.sha256)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return document


class InvalidManifest(Exception):
    """The manifest cannot be registered; the message says why (it never quotes a document)."""


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    label: str  # where the manifest names it: its position and operation name
    body: str
    operation_name: str | None = None


def manifest_entries(raw: str | bytes) -> list[ManifestEntry]:
    """The documents of a manifest: Apollo's persisted-query manifest, or a JSON object mapping
    each document's SHA-256 to its text. Every given id must be the SHA-256 of its body."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidManifest("the manifest is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidManifest(
            f'the manifest must be a JSON object: {{"format": "{APOLLO_MANIFEST_FORMAT}",'
            ' "version": 1, "operations": [...]}, or a map from SHA-256 to document text'
        )
    if "format" in data:
        entries = _apollo_entries(data)
    else:
        entries = []
        for position, (claimed, body) in enumerate(data.items(), start=1):
            label = f"entry {position}"
            if not isinstance(body, str):
                raise InvalidManifest(f"{label}: the document text must be a string")
            entries.append(_entry(label, claimed, body, None))
    if not entries:
        raise InvalidManifest("the manifest holds no documents")
    return entries


def _apollo_entries(data: dict[str, object]) -> list[ManifestEntry]:
    if data.get("format") != APOLLO_MANIFEST_FORMAT:
        raise InvalidManifest(f'unknown manifest format (expected "{APOLLO_MANIFEST_FORMAT}")')
    version = data.get("version")
    if type(version) is not int or version != 1:
        raise InvalidManifest("unsupported manifest version (expected 1)")
    operations = data.get("operations")
    if not isinstance(operations, list):
        raise InvalidManifest('"operations" must be a list')
    entries = []
    for position, operation in enumerate(operations, start=1):
        label = f"operation {position}"
        if not isinstance(operation, dict):
            raise InvalidManifest(f"{label}: must be an object with id, name, type and body")
        name = operation.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidManifest(f"{label}: name must be a string")
        if name:
            label = f"{label} ({name[:OPERATION_NAME_LENGTH]})"
        body = operation.get("body")
        if not isinstance(body, str):
            raise InvalidManifest(f"{label}: body must be the document's text")
        kind = operation.get("type")
        if kind is not None and kind not in ("query", "mutation", "subscription"):
            raise InvalidManifest(f"{label}: type must be query, mutation or subscription")
        entries.append(_entry(label, operation.get("id"), body, name or None))
    return entries


def _entry(label: str, claimed: object, body: str, name: str | None) -> ManifestEntry:
    if not isinstance(claimed, str) or not SHA256_HEX.fullmatch(claimed.lower()):
        raise InvalidManifest(f"{label}: the id must be the document's SHA-256 (64 hex digits)")
    if claimed.lower() != document_hash(body):
        raise InvalidManifest(f"{label}: the id is not the SHA-256 of the document's text")
    return ManifestEntry(label, body, name)


@dataclass(frozen=True, slots=True)
class ManifestRegistration:
    registered: int
    already_present: int


async def register_manifest(
    registry: DocumentRegistry, entries: list[ManifestEntry], check: DocumentCheck
) -> ManifestRegistration:
    """Check every document of a manifest, then register them all as trusted; nothing is
    registered when any is invalid (InvalidManifest names each). Idempotent."""
    problems = [f"{entry.label}: {problem}" for entry in entries for problem in check(entry.body)]
    if problems:
        raise InvalidManifest("; ".join(problems))
    registered = 0
    for entry in entries:
        if await registry.register(entry.body, DocumentSource.MANIFEST, entry.operation_name):
            registered += 1
    return ManifestRegistration(registered, len(entries) - registered)
