"""The RQ job: drain one partition's inbox ids in batches, one transaction per batch.

Batching is what lets one worker apply well over a thousand events a second: RQ's per-job cost
is paid once per drain, not once per event. Exactly-once holds because an event's ledger changes
and its ``processed`` status are committed in the same transaction; a crash before the commit
leaves it pending, and the sweeper hands it out again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, defer

from gateway.envelope import parse_time
from ledger.bounds import OutOfRange
from ledger.db import is_postgres, one_of
from ledger.models import (
    Customer,
    Dispute,
    InboxEvent,
    InboxStatus,
    Invoice,
    Payment,
    Refund,
    Subscription,
)
from ledger.objects import Ref, all_or_nothing, prefetch
from service import metrics
from service.bootstrap import Container, current
from service.logs import log_context
from workers import paypal_events, stripe_events
from workers.actions import lock_refund_actions
from workers.context import EventContext, Handler, dig
from workers.decide import enqueue_actions_of
from workers.dispatch import list_key
from workers.intake import move
from workers.reactions import peek_batch, prepare_batch, reactions_for
from workers.routes import handler_for

log = logging.getLogger(__name__)
_WORKABLE = (InboxStatus.PENDING, InboxStatus.RETRY)
_INBOX = cast(Table, InboxEvent.__table__)
_BACKOFF_CAP = timedelta(hours=1)


@metrics.observed_job("drain")
def drain_partition(partition: int) -> int:
    """Process everything queued for ``partition``; returns how many events were processed.

    Two sources, one partition: the Redis inbox's stream (deliveries acknowledged from Redis,
    stored in the inbox table here before they are acknowledged in the stream), and the list
    of inbox ids the sweeper, a replay or a backfill hand out; a batch of each in turn, so
    neither waits for the other to run dry. The drain holds the partition's lease
    (``Intake.lease``) throughout: a second job for the partition leaves at once, and a drain
    that lost its lease stops. After a run of ``5 x GATEWAY_DRAIN_LOCK_SECONDS`` it hands the
    partition to a fresh job, well inside RQ's timeout (ten times the lock)."""
    container = current()
    redis, intake = container.redis, container.intake
    token = uuid.uuid4().hex
    if not intake.lease(partition, token):
        log.info("partition %d is being drained by another job", partition)
        return 0
    budget = time.monotonic() + 5 * container.settings.drain_lock_seconds
    done = 0
    while True:
        if not intake.extend(partition, token):
            log.warning("partition %d's drain lease was taken over; stopping", partition)
            return done
        worked = False
        if entries := intake.take(partition):
            ids = move(intake, container.engine, partition, entries)
            done += process_batch(container, sorted(set(ids)))
            worked = True
        if raw_ids := redis.lpop(list_key(partition), container.settings.batch_size):
            done += process_batch(container, sorted({int(i) for i in raw_ids}))
            worked = True
        if worked:
            if time.monotonic() > budget and intake.hand_over(partition, token):
                container.dispatcher.schedule(partition)
                return done
            continue
        # Atomic with the web tier's append: anything appended or pushed after our last read
        # either keeps the partition here or finds no flag and schedules a drain of its own.
        if intake.release(partition, token):
            return done


def process_batch(container: Container, ids: list[int], now: datetime | None = None) -> int:
    """Apply the workable events among ``ids`` in one transaction; returns how many were tried.

    The batch is first applied whole, without a savepoint per event (savepoints and the flushes
    they force were most of the cost). If anything in it fails, that transaction is rolled back
    entirely and the batch is applied again event by event, each in its own savepoint, so a bad
    event is recorded on its row and the others still commit. Nothing leaves the transaction
    before the commit, so the discarded attempt leaves no trace (but a metric count). A
    database error in the isolated pass (an outage, a lock given up on) raises: the events
    stay workable, uncounted, and the sweeper hands them out again once it is over."""
    now = now or datetime.now(UTC)
    try:
        tried, decisions, outcomes = _apply_batch(container, ids, now, isolated=False)
    except Exception:  # any failure: redo it with each event isolated in a savepoint
        log.info("batch of %d ids failed as a whole; applying its events one by one", len(ids))
        tried, decisions, outcomes = _apply_batch(container, ids, now, isolated=True)
    for provider, outcome in outcomes:
        metrics.EVENTS_PROCESSED.labels(provider, outcome).inc()
    enqueue_actions_of(container, *decisions)  # committed with their events: set them in motion
    return tried


def _apply_batch(container: Container, ids: list[int], now: datetime, isolated: bool
                 ) -> tuple[int, list[str], list[tuple[str, str]]]:
    """One transaction over the workable events among ``ids``: (tried, decision ids, outcomes).
    Not ``isolated``: the first failure raises and rolls the whole transaction back."""
    tried = 0
    decisions: list[str] = []
    with container.sessions() as session, session.begin():
        postgres = is_postgres(session.get_bind())
        outcomes = _Outcomes(postgres)
        if not isolated:
            all_or_nothing(session)
        rows = list(session.scalars(_WORKABLE_ROWS[postgres], {"ids": ids}))
        payloads = {row.id: _payload(row) for row in rows}  # parsed once, for both uses
        if not isolated:
            # The reactions' locks first, then the rows, in the order every worker takes them.
            events = [(row.merchant, row.provider, row.event_type, payload)
                      for row in rows if (payload := payloads[row.id])]
            locks = prepare_batch(session, events)
            # Payments before refund actions before refunds: the order every path that counts
            # a payment's refunds takes (``workers.actions._locked_action``, ``_record_result``).
            named = {ref for row in rows for ref in _named(row, payloads[row.id])}
            prefetch(session, _BEFORE_ACTIONS, named)
            lock_refund_actions(session, [(row.merchant, action, refund) for row in rows
                                          for action, refund in _refunds(row, payloads[row.id])])
            prefetch(session, _AFTER_ACTIONS, named)
            peek_batch(session, events, locks)
        for row in rows:
            if (row.status == InboxStatus.RETRY and row.next_attempt_at
                    and row.next_attempt_at > now):
                continue  # not due yet; the sweeper hands it out when it is
            with log_context(merchant=row.merchant, provider=row.provider,
                             event_id=row.event_id, inbox_id=row.id):
                decisions += process_event(session, container, row, now, outcomes, isolated,
                                           payloads[row.id])
            tried += 1
        outcomes.write(session, now)
        session.flush()  # a late failure (a racing insert) still fails inside the attempt
    return tried, decisions, outcomes.counted


def process_event(session: Session, container: Container, row: InboxEvent, now: datetime,
                  outcomes: _Outcomes, isolated: bool = True,
                  payload: dict[str, Any] | None = None) -> list[str]:
    """Apply one event (and its reactions); returns the ids of decisions its reactions
    recorded, and notes the event's outcome in ``outcomes``. ``isolated``: inside a savepoint,
    and a failure is recorded on the row, not raised, unless it is the database's
    (``_database_fault``), which fails the batch; otherwise a failure raises (the caller
    redoes the batch isolated). ``payload``: the body already parsed (None: parse it here)."""
    handler = handler_for(row.provider, row.event_type)
    if handler is None:
        outcomes.finish(row, InboxStatus.IGNORED, "no handler for this event type",
                        attempted=False)
        return []
    if not isolated:
        reason, decisions = _apply(session, container, handler, row, now, payload)
    else:
        try:
            with session.begin_nested():
                reason, decisions = _apply(session, container, handler, row, now, payload)
        except OutOfRange as exc:  # signed, but not sane: kept, never applied, never retried
            metrics.EVENTS_OUT_OF_RANGE.labels(row.provider).inc()
            log.warning("event ignored: %s", exc)
            outcomes.finish(row, InboxStatus.IGNORED, f"value out of range: {exc}")
            return []
        except Exception as exc:  # any handler failure: keep it on the row and retry later
            if _database_fault(exc):
                raise  # not the event's: the batch fails, and is handed out again later
            row.attempts += 1
            _fail(row, exc, container, now)
            outcomes.failed(row)
            return []
    # Counted with the outcome, not before the savepoint: nothing is committed before the
    # batch is, so a crash loses the count either way.
    outcomes.finish(row, InboxStatus.PROCESSED, reason)
    return decisions


def _workable_rows(postgres: bool) -> Select[InboxEvent]:
    """The workable rows among the ids bound as ``ids``, locked, those another worker holds
    skipped; built once per database kind."""
    return (
        select(InboxEvent)
        .options(defer(InboxEvent.headers), defer(InboxEvent.last_error),
                 defer(InboxEvent.last_traceback))  # never read here: not loaded
        .where(one_of(InboxEvent.id, "ids", postgres), InboxEvent.status.in_(_WORKABLE))
        .order_by(InboxEvent.id)
        .with_for_update(skip_locked=True)
    )


_WORKABLE_ROWS = {postgres: _workable_rows(postgres) for postgres in (False, True)}


class _Outcomes:
    """What a batch's events came to, written to their inbox rows when the batch ends: one
    UPDATE per distinct outcome, not one per event (each its own round trip, which was a large
    share of a batch on PostgreSQL). A failure is written on its row at once (``_fail``)."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.rows: dict[tuple[InboxStatus, str | None, bool], list[int]] = {}
        self.counted: list[tuple[str, str]] = []  # (provider, status), counted once committed

    def finish(self, row: InboxEvent, status: InboxStatus, reason: str | None,
               attempted: bool = True) -> None:
        self.rows.setdefault((status, reason, attempted), []).append(row.id)
        self.counted.append((row.provider, str(status)))
        log.info("event %s: %s (%s)", status, row.event_type, reason or "applied")

    def failed(self, row: InboxEvent) -> None:
        """Count a failure ``_fail`` already wrote on its row (retry or dead)."""
        self.counted.append((row.provider, str(row.status)))

    def write(self, session: Session, now: datetime) -> None:
        for (status, reason, attempted), ids in self.rows.items():
            values: dict[str, Any] = {"status": status, "status_reason": reason,
                                      "processed_at": now, "next_attempt_at": None}
            if attempted:
                values["attempts"] = _INBOX.c.attempts + 1
            session.execute(update(_INBOX).where(one_of(_INBOX.c.id, "ids", self.postgres))
                            .values(**values), {"ids": ids})


def _apply(session: Session, container: Container, handler: Handler, row: InboxEvent,
           now: datetime, payload: dict[str, Any] | None) -> tuple[str | None, list[str]]:
    """The handler's answer and the ids of the decisions the event's reactions recorded."""
    ctx = _context(row, payload)
    reason = handler(session, ctx)
    decisions: list[str] = []
    for react in reactions_for(row.provider, row.event_type):
        decisions += react(session, container, ctx, row.id, now)
    return reason, decisions


def _payload(row: InboxEvent) -> dict[str, Any] | None:
    """The stored body parsed, or None if it is not a JSON object (its handler says why)."""
    try:
        payload = json.loads(row.raw_body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _named(row: InboxEvent, payload: dict[str, Any] | None) -> list[Ref]:
    """The ledger objects an event's handler will look up and lock (its own object, its
    customer, a charge's refunds), to load in one query per table. A guess, kept to what the
    handlers lock anyway: one missed is looked up when the handler asks for it."""
    if payload is None:
        return []  # the handler will fail on it, and say why
    try:
        obj = payload.get("resource") if row.provider == "paypal" else payload["data"]["object"]
    except (KeyError, TypeError):
        return []  # the handler will fail on it, and say why
    if not isinstance(obj, dict):
        return []
    payer = obj.get("subscriber")
    payer = payer if isinstance(payer, dict) else {}
    ids = [obj.get("id"), obj.get("customer"), payer.get("payer_id") or payer.get("email_address"),
           obj.get("billing_agreement_id")]  # a PayPal sale's subscription, which it locks
    ids += [dig(rf, "id") for rf in dig(obj, "refunds", "data") or []]
    return [Ref(row.merchant, row.provider, i) for i in ids if isinstance(i, str) and i]


def _refunds(row: InboxEvent, payload: dict[str, Any] | None) -> list[tuple[str | None, str]]:
    """(the action id it carries or None, its id) for each refund the event reports, whose
    action its handler will look for (``confirm_refund``): a Stripe refund, the refunds a
    Stripe charge embeds, a PayPal refund or reversal. A guess like ``_named``: one missed is
    looked up when the handler asks for it."""
    if payload is None:
        return []
    if row.provider == "paypal":
        res = payload.get("resource")
        if not isinstance(res, dict) or not row.event_type.endswith(("REFUNDED", "REVERSED")):
            return []
        found = [(paypal_events.refund_action_id(res), res.get("id"))]
    else:
        obj = dig(payload, "data", "object")
        if not isinstance(obj, dict):
            return []
        refunds = [obj] if obj.get("object") == "refund" else dig(obj, "refunds", "data")
        found = [(stripe_events.refund_action_id(rf), dig(rf, "id"))
                 for rf in (refunds if isinstance(refunds, list) else [])]
    return [(action if isinstance(action, str) else None, refund) for action, refund in found
            if isinstance(refund, str) and refund]


_BEFORE_ACTIONS = (Customer, Subscription, Invoice, Payment)  # locked in this order, then
_AFTER_ACTIONS = (Refund, Dispute)  # the batch's refund actions, then these


def _context(row: InboxEvent, payload: dict[str, Any] | None = None) -> EventContext:
    if payload is None:
        payload = json.loads(row.raw_body)  # raises, or is not an object: the handler fails
    created = row.provider_created_at or parse_time(payload.get("create_time")) or row.received_at
    return EventContext(row.merchant, row.provider, row.event_id, row.event_type, created,
                        row.livemode, payload)


def _database_fault(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is the database's trouble rather than the
    event's: a connection SQLAlchemy found dead; on PostgreSQL a lost connection, a deadlock or
    serialization failure, a lock given up on, a lack of resources, an operator's intervention
    (SQLSTATE classes 08, 40, 53, 57, 58 and 55P03); on SQLite its write lock held elsewhere,
    an I/O error, a full disk. Such an error must not cost the event an attempt: enough of them
    in an outage would dead-letter events that were never wrong. Any other database error (a
    statement past the driver's parameter limit, say) is the event's: it is retried and, if
    it keeps failing, dead-lettered, rather than holding its partition up for ever."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, DBAPIError) and (cause.connection_invalidated
                                              or _unavailable(cause.orig)):
            return True
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return False


_PG_UNAVAILABLE = ("08", "40", "53", "57", "58")  # SQLSTATE classes
_SQLITE_UNAVAILABLE = {5, 6, 7, 10, 13, 14, 15}  # BUSY LOCKED NOMEM IOERR FULL CANTOPEN PROTOCOL
_SQLITE_MESSAGES = ("database is locked", "database table is locked", "disk i/o error",
                    "database or disk is full", "unable to open database file")


def _unavailable(orig: BaseException | None) -> bool:
    """The driver's error says the database could not do the work now, whatever was asked."""
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_PG_UNAVAILABLE) or sqlstate == "55P03"
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_UNAVAILABLE
    return isinstance(orig, sqlite3.OperationalError) and str(orig).lower().startswith(
        _SQLITE_MESSAGES)


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
