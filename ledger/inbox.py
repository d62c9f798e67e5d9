"""The inbox: every verified delivery, stored once, before it is acknowledged."""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, IntegrityError

from gateway.envelope import Envelope
from ledger.db import is_postgres, wait_limit, waiting_until
from ledger.models import InboxEvent, InboxStatus
from service.config import Merchant
from service.errors import InboxUnavailable, TransmissionReused

# A Table: SQLAlchemy types __table__ as any FromClause, which insert/update do not take.
_INBOX = cast(Table, InboxEvent.__table__)


@dataclass(frozen=True, slots=True)
class Stored:
    inbox_id: int
    partition: int
    duplicate: bool
    status: str


def new_event_row(*, merchant: Merchant, provider: str, envelope: Envelope, livemode: bool,
                  raw: bytes, headers: dict[str, str], partition: int) -> dict[str, Any]:
    """The inbox row for one verified delivery (a webhook, or an event fetched by backfill).

    An event whose livemode does not match the merchant's mode, or dated outside 2000-2100, is
    kept, but ignored.
    """
    mismatch = livemode != merchant.livemode
    ignored = envelope.out_of_range or (
        f"livemode={livemode} but merchant is in {merchant.mode} mode" if mismatch else None)
    return {
        "merchant": merchant.name, "provider": provider, "event_id": envelope.event_id,
        "event_type": envelope.event_type, "object_ref": envelope.object_ref,
        "partition": partition, "livemode": livemode,
        "provider_created_at": envelope.created_at, "raw_body": raw, "headers": headers,
        "transmission_id": headers.get("Paypal-Transmission-Id") if provider == "paypal" else None,
        "received_at": datetime.now(UTC), "deliveries": 1,
        "status": InboxStatus.IGNORED if ignored else InboxStatus.PENDING,
        "status_reason": ignored,
        "attempts": 0,
    }


def store_event(engine: Engine, row: dict[str, Any]) -> Stored:
    """Insert a delivery, or count it as a duplicate of the one already stored.

    Committed before this returns: the caller may acknowledge then. Concurrent callers in one
    process share a transaction (see ``_GroupCommit``), so under load one commit, and one
    fsync, covers many deliveries. A caller waits for the write lock at most the engine's
    ``wait_limit`` (on the web tier, GATEWAY_WEB_DB_WAIT), counted from its call, and then fails.
    """
    return _group_commit(engine).store(row)


# Built once: constructing the statement per delivery cost as much as executing it. Many rows
# at once (the drain's ``store_rows``), or one returning its id (``store_event``).
_INSERT_MANY = {
    dialect: insert(_INBOX)
    .on_conflict_do_nothing(index_elements=["merchant", "provider", "event_id"])
    for dialect, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_INSERT = {dialect: many.returning(_INBOX.c.id) for dialect, many in _INSERT_MANY.items()}


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["merchant"], row["provider"], row["event_id"])


def _store_one(conn: Connection, row: dict[str, Any]) -> Stored:
    key = _key(row)
    try:
        inserted = conn.execute(_INSERT["postgresql" if is_postgres(conn.engine) else "sqlite"],
                                row).scalar()
    except IntegrityError as exc:
        # The event id's conflict is handled above; the one other unique key is PayPal's
        # transmission, taken by a different event.
        if row.get("transmission_id") and "transmission" in str(exc.orig):
            raise TransmissionReused(row["transmission_id"]) from exc
        raise
    if inserted is not None:
        return Stored(inserted, row["partition"], False, row["status"])
    found = conn.execute(
        update(_INBOX)
        .where(_INBOX.c.merchant == key[0], _INBOX.c.provider == key[1])
        .where(_INBOX.c.event_id == key[2])
        .values(deliveries=_INBOX.c.deliveries + 1)
        .returning(_INBOX.c.id, _INBOX.c.partition, _INBOX.c.status)
    ).one()
    return Stored(found.id, found.partition, True, found.status)


def store_rows(engine: Engine, rows: list[dict[str, Any]],
               again: Mapping[tuple[str, ...], int] | None = None) -> list[int]:
    """Store rows taken from the Redis inbox in one transaction; returns the inbox id of each
    event stored or found. A row already stored (a late duplicate) counts one more delivery on
    it, and ``again`` counts more deliveries by event key (merchant, provider, event id). Raises
    TransmissionReused if a PayPal transmission carried another stored event (for a single row
    it names that row's; for several, the caller stores them one by one to find which)."""
    # In the order given (a stream's): inbox ids follow it, and a drain applies a batch in id
    # order, so events about one object keep the order they were delivered in.
    more: Counter[tuple[str, ...]] = Counter(again or {})
    keys = list(dict.fromkeys([*(_key(r) for r in rows), *more]))
    if not keys:
        return []
    ident = tuple_(_INBOX.c.merchant, _INBOX.c.provider, _INBOX.c.event_id)
    found = select(_INBOX.c.id, _INBOX.c.merchant, _INBOX.c.provider, _INBOX.c.event_id)
    try:
        with engine.begin() as conn:
            before = {(r.merchant, r.provider, r.event_id)
                      for r in conn.execute(found.where(ident.in_(keys)))}
            new = [r for r in rows if _key(r) not in before]
            more.update(_key(r) for r in rows if _key(r) in before)
            if new:
                dialect = "postgresql" if is_postgres(engine) else "sqlite"
                conn.execute(_INSERT_MANY[dialect], new)
            for key, count in sorted(more.items()):
                conn.execute(update(_INBOX).where(ident == tuple(key))
                             .values(deliveries=_INBOX.c.deliveries + count))
            ids = {(r.merchant, r.provider, r.event_id): r.id
                   for r in conn.execute(found.where(ident.in_(keys)))}
            lost = [k for k in (_key(r) for r in rows) if k not in ids]
            if lost:  # never acknowledge an entry whose row is not there: roll back, retry
                raise InboxUnavailable(f"rows not found after their insert: {lost[:3]}")
    except IntegrityError as exc:
        if "transmission" in str(exc.orig):
            raise TransmissionReused(rows[0].get("transmission_id") or "") from exc
        raise
    return [ids[k] for k in keys if k in ids]


_GROUP_LIMIT = 64  # deliveries in one transaction at most
# Failures that belong to one row, not to the database as a whole.
ONE_ROWS_FAULT = (IntegrityError, DataError, TransmissionReused)


class _Waiter:
    __slots__ = ("row", "deadline", "done", "lead", "result", "error")

    def __init__(self, row: dict[str, Any], deadline: float) -> None:
        self.row = row
        self.deadline = deadline  # time.monotonic() after which it waits for no lock
        self.done = threading.Event()
        self.lead = False
        self.result: Stored | None = None
        self.error: BaseException | None = None


class _GroupCommit:
    """Group commit for the web tier's threads: whoever finds no commit in progress leads; the
    deliveries that arrive while it commits wait, and the next leader stores them all in one
    transaction, its rows in key order. Each caller still returns only once its own row is
    committed. A batch that fails is retried row by row, so a bad row (a constraint, a value the
    column refuses) fails only its own delivery; if the database itself is unavailable, the first
    row to find out fails the rest with it, so each delivery gets its 503 without waiting out
    the busy timeout once more per row.

    On SQLite the writer also holds an exclusive lock on a file beside the database while it
    writes, so the web processes queue for the write lock on that file, polled every few
    milliseconds, rather than in SQLite's busy handler, which polls with sleeps of up to 100 ms.

    Every wait is bounded: each delivery may wait for locks until its deadline (its arrival plus
    the engine's ``wait_limit``), and a group waits, for the file lock and then SQLite's, only
    until the earliest deadline among its deliveries. A group that begins past that deadline
    still tries once, without waiting. So while another process holds the write lock, every
    delivery fails within its own wait, however many groups queue before it.
    """

    def __init__(self, engine: Engine, limit: int = _GROUP_LIMIT) -> None:
        self.engine, self.limit = engine, limit
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.queue: list[_Waiter] = []
        self.leading = False
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self.lock_path = (f"{database}.write-lock"
                          if database and database != ":memory:" else None)

    def store(self, row: dict[str, Any]) -> Stored:
        me = _Waiter(row, time.monotonic() + wait_limit(self.engine))
        with self.lock:
            self.queue.append(me)
            if not self.leading:
                self.leading = me.lead = True
        if not me.lead:
            me.done.wait()
        if me.lead:
            self._lead()
        if me.error is not None:
            raise me.error
        assert me.result is not None
        return me.result

    def _lead(self) -> None:
        with self.lock:
            batch, self.queue = self.queue[:self.limit], self.queue[self.limit:]
        try:
            self._commit(batch)
        finally:
            with self.lock:
                successor = self.queue[0] if self.queue else None
                if successor is None:
                    self.leading = False
                else:
                    successor.lead = True
            for waiter in batch:
                if waiter.result is None and waiter.error is None:  # the leader was interrupted
                    waiter.error = InboxUnavailable("the commit of this delivery was interrupted")
                waiter.done.set()
            if successor is not None:
                successor.done.set()

    def _commit(self, batch: list[_Waiter]) -> None:
        # In key order, as every process writes its group: two groups never wait on each
        # other's rows in opposite orders (a deadlock on PostgreSQL).
        batch = sorted(batch, key=lambda w: _key(w.row))
        deadline = min(w.deadline for w in batch)
        with self._write_lock(deadline) as locked:
            if not locked:
                error = InboxUnavailable("another process held the database's write lock "
                                         "for longer than this delivery may wait")
                for waiter in batch:
                    waiter.error = error
                return
            try:
                with waiting_until(deadline), self.engine.begin() as conn:
                    results = [_store_one(conn, w.row) for w in batch]
            except Exception as exc:  # not swallowed: handed to the caller, who raises it
                if len(batch) == 1:
                    batch[0].error = exc
                    return
                self._one_by_one(batch)
                return
        for waiter, result in zip(batch, results, strict=True):
            waiter.result = result

    def _one_by_one(self, batch: list[_Waiter]) -> None:
        """After a failed group: one transaction per row, each with its own fate. A row that
        fails for a reason of its own (a constraint) fails alone; the first that fails for a
        reason outside it (the database unavailable) fails the rest with it, at once, rather
        than each waiting out the same timeout."""
        for i, waiter in enumerate(batch):
            try:
                with (waiting_until(min(w.deadline for w in batch[i:])),
                      self.engine.begin() as conn):
                    waiter.result = _store_one(conn, waiter.row)
            except ONE_ROWS_FAULT as exc:
                waiter.error = exc
            except Exception as exc:
                for rest in batch[i:]:
                    rest.error = exc
                return

    @contextmanager
    def _write_lock(self, deadline: float) -> Iterator[bool]:
        """Hold the file lock (True), or give up at ``deadline`` without it (False)."""
        if self.lock_path is None:
            yield True
            return
        with open(self.lock_path, "a") as handle:
            if not _flock_until(handle.fileno(), deadline):
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_LOCK_POLL = (0.0005, 0.005)  # first and longest pause between tries for the file lock


def _flock_until(fd: int, deadline: float) -> bool:
    """Take an exclusive flock on ``fd``, trying until ``deadline`` (at least once).

    flock has no timeout and a blocked flock cannot be called off, so it is tried without
    blocking, with pauses that grow from half a millisecond to five."""
    pause = _LOCK_POLL[0]
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, _LOCK_POLL[1])


_committers: weakref.WeakKeyDictionary[Engine, _GroupCommit] = (
    weakref.WeakKeyDictionary())
_committers_lock = threading.Lock()


def _group_commit(engine: Engine) -> _GroupCommit:
    """The engine's committer in this process (a forked child makes its own)."""
    committer = _committers.get(engine)
    if committer is None or committer.pid != os.getpid():
        with _committers_lock:
            committer = _committers.get(engine)
            if committer is None or committer.pid != os.getpid():
                committer = _committers[engine] = _GroupCommit(engine)
    return committer


def stranded(engine: Engine, now: datetime, older_than: timedelta, limit: int = 5000
             ) -> list[tuple[int, int]]:
    """(id, partition) of events acknowledged but not processed in time, or due for a retry."""
    query = (
        select(_INBOX.c.id, _INBOX.c.partition)
        .where(
            or_(
                (_INBOX.c.status == InboxStatus.PENDING)
                & (_INBOX.c.received_at < now - older_than),
                (_INBOX.c.status == InboxStatus.RETRY) & (_INBOX.c.next_attempt_at <= now),
            )
        )
        .order_by(_INBOX.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [(r.id, r.partition) for r in conn.execute(query)]


def requeue(engine: Engine, ids: Iterable[int] | None) -> list[tuple[int, int]]:
    """Put dead (or the given) events back to pending for a replay; returns (id, partition)."""
    query = update(_INBOX).values(status=InboxStatus.PENDING, next_attempt_at=None, attempts=0)
    if ids is None:
        query = query.where(_INBOX.c.status == InboxStatus.DEAD)
    else:
        query = query.where(_INBOX.c.id.in_(list(ids)))
        query = query.where(_INBOX.c.status.in_([InboxStatus.DEAD, InboxStatus.RETRY,
                                                 InboxStatus.PENDING]))
    with engine.begin() as conn:
        rows = conn.execute(query.returning(_INBOX.c.id, _INBOX.c.partition)).all()
    return [(r.id, r.partition) for r in rows]


def counts_by_status(engine: Engine) -> dict[str, int]:
    query = select(_INBOX.c.status, func.count()).group_by(_INBOX.c.status)
    with engine.connect() as conn:
        return dict(conn.execute(query).all())


