"""Engine and session factory for the ledger (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


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


@contextmanager
def reading(session: Session, *models: type) -> Iterator[Session]:
    """For queries that read only ``models``' tables: flush first if, and only if, the session
    holds unflushed changes to one of them, then query without autoflush.

    The answer is the one autoflush would give, since no other pending change can alter what a
    query of those tables returns. What it saves is the flush of everything else: a drain batch
    asks many such questions, and one flush per question (each a round of statements) was a
    large share of its time; the writes wait and go out together."""
    if any(isinstance(obj, models) for obj in chain(session.new, session.dirty, session.deleted)):
        session.flush()
    with session.no_autoflush:
        yield session


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
