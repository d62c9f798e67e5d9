"""Whether a row or a named lock is held by another transaction, asked from a second
connection just before each write or at once (PostgreSQL; SQLite takes no row locks), and the
SQL statements a block sends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from ledger.locks import _key
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


def named_lock_free(container: Container, *name: str) -> bool:
    """Whether another transaction could take the named lock (``ledger.locks``) now (it lets
    go at once)."""
    with container.engine.begin() as conn:
        return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                 {"k": _key(name)}).scalar())


@contextmanager
def statements(container: Container) -> Iterator[list[str]]:
    """The SQL statements sent while the block runs."""
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(container.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(container.engine, "before_cursor_execute", count)
