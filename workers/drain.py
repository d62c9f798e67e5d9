"""The RQ job: drain one partition's inbox ids in batches, one transaction per batch.

Batching is what lets one worker apply well over a thousand events a second: RQ's per-job cost
is paid once per drain, not once per event. Exactly-once holds because an event's ledger changes
and its ``processed`` status are committed in the same transaction; a crash before the commit
leaves it pending, and the sweeper hands it out again.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.envelope import parse_time
from ledger.models import InboxEvent, InboxStatus
from service.bootstrap import Container, current
from workers.context import EventContext
from workers.decide import enqueue_actions_of
from workers.dispatch import flag_key, list_key
from workers.reactions import reactions_for
from workers.routes import handler_for

log = logging.getLogger(__name__)
_WORKABLE = (InboxStatus.PENDING, InboxStatus.RETRY)
_BACKOFF_CAP = timedelta(hours=1)


def drain_partition(partition: int) -> int:
    """Process everything queued for ``partition``; returns how many events were processed."""
    container = current()
    redis, lock = container.redis, container.settings.drain_lock_seconds
    done = 0
    while True:
        raw_ids = redis.lpop(list_key(partition), container.settings.batch_size)
        if raw_ids:
            redis.expire(flag_key(partition), lock)
            done += process_batch(container, sorted({int(i) for i in raw_ids}))
            continue
        redis.delete(flag_key(partition))
        # An id pushed after our last pop but before the delete found the flag held and
        # scheduled nothing: take the partition back if anything is waiting.
        if not redis.llen(list_key(partition)):
            return done
        if not redis.set(flag_key(partition), "draining", nx=True, ex=lock):
            return done


def process_batch(container: Container, ids: list[int], now: datetime | None = None) -> int:
    """Apply the workable events among ``ids`` in one transaction; returns how many were tried."""
    now = now or datetime.now(timezone.utc)
    query = (
        select(InboxEvent)
        .where(InboxEvent.id.in_(ids), InboxEvent.status.in_(_WORKABLE))
        .order_by(InboxEvent.id)
        .with_for_update(skip_locked=True)
    )
    tried = 0
    decisions: list[str] = []
    with container.sessions() as session, session.begin():
        for row in session.scalars(query):
            if row.status == InboxStatus.RETRY and row.next_attempt_at and row.next_attempt_at > now:
                continue  # not due yet; the sweeper hands it out when it is
            decisions += process_event(session, container, row, now)
            tried += 1
    for decision_id in decisions:  # committed with their events: now set them in motion
        enqueue_actions_of(container, decision_id)
    return tried


def process_event(session: Session, container: Container, row: InboxEvent, now: datetime
                  ) -> list[str]:
    """Apply one event (and its reactions) inside a savepoint; a failure is recorded on the
    row, not raised. Returns the ids of decisions its reactions recorded."""
    handler = handler_for(row.provider, row.event_type)
    if handler is None:
        _finish(row, InboxStatus.IGNORED, "no handler for this event type", now)
        return []
    row.attempts += 1
    decisions: list[str] = []
    try:
        with session.begin_nested():
            ctx = _context(row)
            reason = handler(session, ctx)
            for react in reactions_for(row.provider, row.event_type):
                decisions += react(session, container, ctx, row.id, now)
    except Exception as exc:  # any handler failure: keep it on the row and retry later
        _fail(row, exc, container, now)
        return []
    _finish(row, InboxStatus.PROCESSED, reason, now)
    return decisions


def _context(row: InboxEvent) -> EventContext:
    payload = json.loads(row.raw_body)
    created = row.provider_created_at or parse_time(payload.get("create_time")) or row.received_at
    return EventContext(row.merchant, row.provider, row.event_id, row.event_type, created,
                        row.livemode, payload)


def _finish(row: InboxEvent, status: InboxStatus, reason: str | None, now: datetime) -> None:
    row.status, row.status_reason, row.processed_at = status, reason, now
    row.next_attempt_at = None


def _fail(row: InboxEvent, exc: Exception, container: Container, now: datetime) -> None:
    settings = container.settings
    row.last_error = f"{type(exc).__name__}: {exc}"
    row.last_traceback = traceback.format_exc()
    if row.attempts >= settings.max_attempts:
        row.status, row.next_attempt_at = InboxStatus.DEAD, None
        log.error("event dead after %d attempts event=%s error=%s", row.attempts, row.event_id,
                  row.last_error)
        return
    delay = timedelta(seconds=settings.retry_base_seconds * 2 ** (row.attempts - 1))
    row.status, row.next_attempt_at = InboxStatus.RETRY, now + min(delay, _BACKOFF_CAP)
    log.warning("event failed, retry at %s event=%s error=%s", row.next_attempt_at, row.event_id,
                row.last_error)
