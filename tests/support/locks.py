"""Whether a row is locked by the transaction writing it: asked from a second connection just
before each write (PostgreSQL; SQLite takes no row locks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from service.bootstrap import Container


def action_row_free(container: Container, action_id: str) -> bool:
    """Whether another transaction could lock the action's row now (it lets go at once)."""
    with container.engine.begin() as conn:
        try:
            conn.execute(text("SELECT 1 FROM actions WHERE id = :id FOR UPDATE NOWAIT"),
                         {"id": action_id})
        except OperationalError:
            return False
    return True


@contextmanager
def action_row_free_at_each_write(container: Container, action_id: str) -> Iterator[list[bool]]:
    """Whether the action's row could be locked by another, just before each UPDATE of it."""
    seen: list[bool] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE actions "):
            seen.append(action_row_free(container, action_id))

    event.listen(container.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(container.engine, "before_cursor_execute", before)
