"""The committed migrations describe the models exactly (like `makemigrations --check`)."""

from __future__ import annotations

from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector

from models import db


async def test_the_migrations_match_the_models() -> None:
    config = db.tortoise_config("sqlite://:memory:")
    async with TortoiseContext() as context:
        await context.init(config=config)
        assert context.apps is not None
        writers = await MigrationAutodetector(context.apps, config["apps"]).changes()
    # Non-empty: a model changed without a migration (`tortoise makemigrations` writes it).
    assert [op.describe() for writer in writers for op in writer.operations] == []
