"""Usage analytics (P09): counts per feature and day, never a person."""

from __future__ import annotations

from tortoise import fields

from models.base import Entity


class UsageCount(Entity):
    """How many usage events of one feature were kept on one day (UTC); no person id."""

    feature = fields.CharField(max_length=64)
    day = fields.DateField()
    events = fields.BigIntField(default=0)

    class Meta:
        table = "usage_counts"
        unique_together = (("feature", "day"),)
