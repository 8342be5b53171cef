"""The registry of GraphQL documents that clients may send by their SHA-256 instead of text."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.base import Entity


class DocumentSource(StrEnum):
    """Who registered a document: a manifest by the CLI (trusted) or a client's automatic
    persisted query."""

    MANIFEST = "manifest"
    AUTOMATIC = "automatic"


class PersistedDocument(Entity):
    """One GraphQL document, keyed by the SHA-256 of its exact text (as Apollo clients hash it).

    Registered only once it parsed and validated against the schema, its limits and its cost;
    the text holds no personal data (a literal that looks like card data is refused first).
    """

    sha256 = fields.CharField(max_length=64, unique=True)
    text = fields.TextField()
    source = fields.CharEnumField(DocumentSource, max_length=10)
    # The operation names the manifest gave, or those of the document; labels, never values.
    operation_name = fields.CharField(max_length=200, null=True)
    registered_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "persisted_documents"
