"""The migrations build exactly the schema the models declare, on the database under test."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ledger.models import Base
from service.bootstrap import Container


def test_the_migrated_schema_matches_the_models(container: Container) -> None:
    with container.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
