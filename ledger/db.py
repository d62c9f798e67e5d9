"""Engine and session factory for the ledger (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Text,
    any_,
    bindparam,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.orm import InstrumentedAttribute, Mapper, Session, sessionmaker

# How long a SQLite writer may wait for the write lock: the engine's busy timeout, at most the
# process's limit (``limit_waits``), and at most until the deadline of the code running now
# (``waiting_until``). Set per transaction, just before its BEGIN IMMEDIATE.
_busy_timeouts: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
_process_limit: float | None = None
_deadline: ContextVar[float | None] = ContextVar("ledger_wait_deadline", default=None)


def make_engine(url: str, busy_timeout: float = 30, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout (seconds a writer waits for the
    lock before failing; see ``limit_waits``) and full fsync on commit."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": _limited(busy_timeout)}, **kwargs)
        _busy_timeouts[engine] = busy_timeout
        event.listen(engine, "connect",
                     lambda conn, record: _sqlite_pragmas(conn, record, busy_timeout))
        # pysqlite's own transaction handling defers BEGIN; take control so that a
        # transaction that will write starts as a write transaction (no upgrade deadlocks).
        event.listen(engine, "begin", _begin_immediate)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.get_backend_name() == "postgresql" and _process_limit is not None:
        kwargs = {**kwargs, "connect_args": {**kwargs.get("connect_args", {}),
                                             **_postgres_limits(_process_limit)}}
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _postgres_limits(seconds: float) -> dict[str, Any]:
    """The web tier's bounds on PostgreSQL: connecting and waiting for a lock take at most
    ``seconds`` (a request answers 503 then), and no statement runs past 10 seconds, all well
    within gunicorn's 30-second timeout."""
    millis = max(1, int(seconds * 1000))
    return {"connect_timeout": max(1, math.ceil(seconds)),
            "options": f"-c lock_timeout={millis} -c statement_timeout={max(millis, 10000)}"}


def _sqlite_pragmas(dbapi_conn: Any, record: Any, busy_timeout: float) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see make_engine)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # an acknowledged event survives a power cut
    cur.execute("PRAGMA foreign_keys=ON")
    millis = int(_limited(busy_timeout) * 1000)
    cur.execute(f"PRAGMA busy_timeout={millis}")
    record.info["busy_timeout_ms"] = millis
    cur.close()


def _begin_immediate(conn: Connection) -> None:
    """Start a write transaction, after giving the connection the busy timeout it may wait."""
    millis = int(_wait_now(conn.engine) * 1000)
    pooled = conn.connection
    if pooled.info.get("busy_timeout_ms") != millis:
        # A checked-out connection has its DBAPI connection (typed Optional for detached ones).
        pooled.dbapi_connection.execute(f"PRAGMA busy_timeout={millis}")  # type: ignore[union-attr]
        pooled.info["busy_timeout_ms"] = millis
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def limit_waits(seconds: float | None) -> None:
    """Wait at most ``seconds`` for the SQLite write lock anywhere in this process, whatever
    the engines' busy timeouts say (None: no limit); on PostgreSQL, engines made afterwards
    wait at most that long to connect or for a lock (``_postgres_limits``). The web tier sets
    it (GATEWAY_WEB_DB_WAIT) so that a request answers 503 well within gunicorn's timeout;
    workers keep the long one."""
    global _process_limit
    _process_limit = seconds


def wait_limit(engine: Engine) -> float:
    """Seconds a writer on ``engine`` may wait for the write lock in this process."""
    return _limited(_busy_timeouts.get(engine, 30.0))


@contextmanager
def waiting_until(deadline: float) -> Iterator[None]:
    """Transactions begun inside the block wait for the write lock only until ``deadline`` (a
    ``time.monotonic()`` value); one begun after it tries once and does not wait."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def _limited(busy_timeout: float) -> float:
    return busy_timeout if _process_limit is None else min(busy_timeout, _process_limit)


def _wait_now(engine: Engine) -> float:
    seconds = wait_limit(engine)
    deadline = _deadline.get()
    if deadline is not None:
        seconds = min(seconds, max(0.0, deadline - time.monotonic()))
    return seconds


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Rows:
    """A read of the rows of ``model`` whose columns hold every one of these values, before or
    after a pending change: narrower than a (column, value) pair when a query filters on more
    than one column (a pending row that differs in one of them cannot change its answer)."""

    model: type
    equal: tuple[tuple[str, Any], ...]

    @classmethod
    def where(cls, model: type, **equal: Any) -> Rows:
        return cls(model, tuple(sorted(equal.items())))


Read = type | tuple[InstrumentedAttribute[Any], Any] | Rows


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
        if isinstance(read, Rows):
            if isinstance(obj, read.model) and (whole_rows or all(
                    _may_hold(obj, key, value) for key, value in read.equal)):
                return True
        elif not isinstance(read, tuple):
            if isinstance(obj, read):
                return True
        elif isinstance(obj, cast(type, read[0].class_)) and (
                whole_rows or _may_hold(obj, read[0].key, read[1])):
            return True
    return False


def _may_hold(obj: object, key: str, value: Any) -> bool:
    """Whether the attribute ``key`` of ``obj`` holds ``value`` before or after its pending
    change (or cannot be told: not loaded)."""
    state = inspect(obj)
    if key in state.unloaded:
        # A row not inserted yet has no key of its own: it is not the row with a given one.
        return not (state.pending and key in _primary_keys(state.mapper))
    history = state.attrs[key].history
    return value in (*history.added, *history.unchanged, *history.deleted)


@cache
def _primary_keys(mapper: Mapper[Any]) -> frozenset[str]:
    """The attribute names of ``mapper``'s primary key."""
    return frozenset(mapper.get_property_by_column(column).key for column in mapper.primary_key)


_Model = TypeVar("_Model")
_current_queries: dict[tuple[type, tuple[tuple[str, bool], ...]], Select[Any]] = {}


def current_rows(session: Session, model: type[_Model], **equal: Any) -> list[_Model]:
    """The rows of ``model`` whose attributes equal ``equal`` (a tuple, list or set: any of
    its values) as this transaction sees them, without flushing the session: what the database
    holds, less the rows a pending change took out, plus those it put in or added. The answer
    a flush and a query would give, in no particular order.

    A drain batch holds its writes until it commits, so that they go out together; a question
    about rows it may have written (an account's invoices, a subscription's payments) used to
    flush them all first, one small round of statements each time. ``None`` is refused: SQL's
    ``= NULL`` matches nothing, Python's ``==`` would."""
    if any(value is None for value in equal.values()):
        raise ValueError(f"current_rows: None is not a value to match ({model.__name__})")
    many = {key: isinstance(value, (tuple, list, set, frozenset)) for key, value in equal.items()}
    shape = tuple(sorted(many.items()))
    query = _current_queries.get((model, shape))
    if query is None:
        query = select(model).where(*(
            getattr(model, key).in_(bindparam(key, expanding=True)) if several
            else getattr(model, key) == bindparam(key) for key, several in shape))
        _current_queries[(model, shape)] = query
    wanted = {key: frozenset(value) if many[key] else frozenset((value,))
              for key, value in equal.items()}
    params = {key: sorted(values) if many[key] else equal[key]
              for key, values in wanted.items()}
    with session.no_autoflush:
        found = list(session.scalars(query, params))
    pending = [obj for obj in chain(session.new, session.dirty) if isinstance(obj, model)]
    gone = {id(obj) for obj in session.deleted}
    seen: set[int] = set()
    rows: list[_Model] = []
    for obj in chain(found, pending):
        if id(obj) in seen or id(obj) in gone:
            continue
        seen.add(id(obj))
        if all(getattr(obj, key) in values for key, values in wanted.items()):
            rows.append(obj)
    return rows


def is_postgres(bind: Engine | Connection) -> bool:
    """Whether ``bind`` (an engine, or a session's ``get_bind()``) is on PostgreSQL."""
    return bind.dialect.name == "postgresql"


def one_of(column: Any, name: str, postgres: bool) -> ColumnElement[bool]:
    """``column`` equals one of the list bound as ``name``: on PostgreSQL ``= ANY(:name)``,
    one array parameter, so that the statement's text is the same whatever the list's length;
    elsewhere an expanding ``IN``. psycopg parses a statement's text again unless it has at most
    50 parameters, and PostgreSQL plans it again unless its text repeats (a prepared statement):
    a batch's lists of a hundred ids paid both on every statement."""
    if postgres:
        # Text, not the column's VARCHAR(n): PostgreSQL cuts a value cast to VARCHAR(n)[] to n
        # characters, and a longer id would then match a stored one that begins like it.
        element = Text() if isinstance(column.type, String) else column.type
        return cast(ColumnElement[bool], column == any_(bindparam(name, type_=ARRAY(element))))
    return cast(ColumnElement[bool], column.in_(bindparam(name, expanding=True)))
