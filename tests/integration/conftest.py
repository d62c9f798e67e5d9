"""Fixtures of the integration tests that more than one module uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from service.bootstrap import Container

_HOLD = """
CREATE OR REPLACE FUNCTION test_hold_commit() RETURNS trigger AS $$
BEGIN
  IF NEW.event_id = '{event_id}' AND NEW.status = 'processed' THEN
    PERFORM pg_sleep(1.5);
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER test_hold_commit BEFORE UPDATE ON inbox_events
  FOR EACH ROW EXECUTE FUNCTION test_hold_commit();
"""


@pytest.fixture
def hold_commit(container: Container) -> Iterator[Callable[[str], None]]:
    """``hold_commit(event_id)``: the transaction that marks that inbox event processed is held
    1.5 s before it commits (a PostgreSQL trigger), so that another worker's transaction runs
    beside it. PostgreSQL only: SQLite has one writer at a time."""
    if container.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the two transactions cannot overlap")

    def install(event_id: str) -> None:
        with container.engine.begin() as conn:
            conn.execute(text(_HOLD.format(event_id=event_id.replace("'", "''"))))

    yield install
    with container.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS test_hold_commit ON inbox_events"))
        conn.execute(text("DROP FUNCTION IF EXISTS test_hold_commit()"))
