"""Engine and session factory for the ledger (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker


def make_engine(url: str, busy_timeout: float = 30, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout (seconds a writer waits for the
    lock before failing) and full fsync on commit."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout}, **kwargs)
        event.listen(engine, "connect",
                     lambda conn, record: _sqlite_pragmas(conn, record, busy_timeout))
        # pysqlite's own transaction handling defers BEGIN; take control so that a
        # transaction that will write starts as a write transaction (no upgrade deadlocks).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, busy_timeout: float) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see make_engine)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # an acknowledged event survives a power cut
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cur.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


Read = type | tuple[InstrumentedAttribute[Any], Any]


@contextmanager
def reading(session: Session, *reads: Read) -> Iterator[Session]:
    """For queries that read only what ``reads`` names: flush first if, and only if, the session
    holds an unflushed change to it, then query without autoflush.

    A model names all its rows; a (column, value) pair names only the rows whose column holds
    that value, before or after the pending change (the query's WHERE says so). The answer is
    the one autoflush would give, since no other pending change can alter what such a query
    returns. What it saves is the flush of everything else: a drain batch asks many such
    questions, and one flush per question (each a round of statements) was a large share of
    its time; the writes wait and go out together."""
    if any(_touches(obj, reads) for obj in chain(session.new, session.dirty)) or any(
            _touches(obj, reads, whole_rows=True) for obj in session.deleted):
        session.flush()
    with session.no_autoflush:
        yield session


def _touches(obj: object, reads: tuple[Read, ...], whole_rows: bool = False) -> bool:
    for read in reads:
        if not isinstance(read, tuple):
            if isinstance(obj, read):
                return True
            continue
        column, value = read
        if not isinstance(obj, cast(type, column.class_)):
            continue
        state = inspect(obj)
        if whole_rows or column.key in state.unloaded:
            return True  # cannot tell what it held: assume the worst
        history = state.attrs[column.key].history
        if value in (*history.added, *history.unchanged, *history.deleted):
            return True
    return False


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
