"""The inbox: every verified delivery, stored once, before it is acknowledged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.envelope import Envelope
from ledger.db import is_postgres
from ledger.models import InboxEvent, InboxStatus
from service.config import Merchant

_INBOX = InboxEvent.__table__


@dataclass(frozen=True, slots=True)
class Stored:
    inbox_id: int
    partition: int
    duplicate: bool
    status: str


def new_event_row(*, merchant: Merchant, provider: str, envelope: Envelope, livemode: bool,
                  raw: bytes, headers: dict[str, str], partition: int) -> dict[str, Any]:
    """The inbox row for one verified delivery (a webhook, or an event fetched by backfill).

    An event whose livemode does not match the merchant's mode is kept, but ignored.
    """
    mismatch = livemode != merchant.livemode
    return {
        "merchant": merchant.name, "provider": provider, "event_id": envelope.event_id,
        "event_type": envelope.event_type, "object_ref": envelope.object_ref,
        "partition": partition, "livemode": livemode,
        "provider_created_at": envelope.created_at, "raw_body": raw, "headers": headers,
        "received_at": datetime.now(timezone.utc), "deliveries": 1,
        "status": InboxStatus.IGNORED if mismatch else InboxStatus.PENDING,
        "status_reason": (f"livemode={livemode} but merchant is in {merchant.mode} mode"
                          if mismatch else None),
        "attempts": 0,
    }


def store_event(engine: Engine, row: dict[str, Any]) -> Stored:
    """Insert a delivery, or count it as a duplicate of the one already stored.

    One short transaction, committed before this returns: the caller may acknowledge then.
    """
    dialect_insert = pg_insert if is_postgres(engine) else sqlite_insert
    key = (row["merchant"], row["provider"], row["event_id"])
    with engine.begin() as conn:
        inserted = conn.execute(
            dialect_insert(_INBOX)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["merchant", "provider", "event_id"])
            .returning(_INBOX.c.id)
        ).scalar()
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


def stranded(engine: Engine, now: datetime, older_than: timedelta, limit: int = 5000
             ) -> list[tuple[int, int]]:
    """(id, partition) of events acknowledged but not processed in time, or due for a retry."""
    query = (
        select(_INBOX.c.id, _INBOX.c.partition)
        .where(
            or_(
                (_INBOX.c.status == InboxStatus.PENDING) & (_INBOX.c.received_at < now - older_than),
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
        return {status: n for status, n in conn.execute(query)}


