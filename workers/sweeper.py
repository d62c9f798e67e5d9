"""The sweeper: nothing acknowledged is ever stranded.

Hands out again every event that was stored but not processed in time (Redis was down after
the commit, a worker was killed holding a batch) and every retry that has come due, and kicks
partitions whose lists hold ids with no drain scheduled. With the Redis inbox it also removes
the stream consumers of drain processes that have stopped (``Intake.prune``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ledger.inbox import requeue, stranded
from ledger.models import InboxEvent, InboxStatus, RequestStatus, SupportRequest
from service.bootstrap import Container
from workers.actions import due_actions
from workers.actions import enqueue as enqueue_actions
from workers.requests import enqueue as enqueue_request

log = logging.getLogger(__name__)


def sweep(container: Container, now: datetime | None = None) -> int:
    """Re-enqueue stranded and due events; returns how many were handed out."""
    now = now or datetime.now(UTC)
    after = timedelta(seconds=container.settings.sweep_after_seconds)
    rows = stranded(container.engine, now, after)
    _hand_out(container, rows)
    for partition in range(container.settings.partitions):
        container.dispatcher.kick(partition)
    if container.settings.inbox == "redis":
        container.intake.prune(container.settings.partitions)
    with container.sessions() as session:
        actions = due_actions(session, now, after)
        requests = list(session.scalars(select(SupportRequest.id).where(
            SupportRequest.status == RequestStatus.RECEIVED,
            SupportRequest.created_at <= now - after).limit(1000)))
    enqueue_actions(container, actions)
    for request_id in requests:
        enqueue_request(container, request_id)
    handed = len(rows) + len(actions) + len(requests)
    if handed:
        log.info("sweeper re-enqueued %d events, %d actions, %d requests", len(rows),
                 len(actions), len(requests))
    return handed


def replay(container: Container, event_ids: Iterable[str] | None = None,
           merchant: str | None = None) -> int:
    """Put dead-lettered events (or the named provider event ids) back to pending and enqueue;
    only ``merchant``'s when one is named. Returns how many were handed out."""
    return len(replay_rows(container, event_ids, merchant))


def replay_rows(container: Container, event_ids: Iterable[str] | None = None,
                merchant: str | None = None) -> list[int]:
    """``replay``, answering the inbox ids handed out. Named events are replayed when dead,
    waiting for a retry or pending; processed and ignored ones are left as they are."""
    ids = None
    if event_ids is not None or merchant is not None:
        query = select(InboxEvent.id)
        if event_ids is not None:
            query = query.where(InboxEvent.event_id.in_(list(event_ids)))
        else:
            query = query.where(InboxEvent.status == InboxStatus.DEAD)
        if merchant is not None:
            query = query.where(InboxEvent.merchant == merchant)
        with container.sessions() as session:
            ids = list(session.scalars(query))
    rows = requeue(container.engine, ids)
    _hand_out(container, rows)
    log.info("replay re-enqueued %d events", len(rows))
    return [inbox_id for inbox_id, _ in rows]


def event_statuses(container: Container, event_ids: Iterable[str]) -> dict[str, set[str]]:
    """The inbox statuses of the provider event ids named (one id may be stored for several
    merchants); an id the inbox does not hold is absent."""
    found: dict[str, set[str]] = defaultdict(set)
    with container.sessions() as session:
        query = select(InboxEvent.event_id, InboxEvent.status).where(
            InboxEvent.event_id.in_(list(event_ids)))
        for event_id, status in session.execute(query):
            found[event_id].add(str(status))
    return dict(found)


def _hand_out(container: Container, rows: Iterable[tuple[int, int]]) -> None:
    """Push (inbox id, partition) pairs to their partitions' lists, scheduling drains."""
    by_partition: dict[int, list[int]] = defaultdict(list)
    for inbox_id, partition in rows:
        by_partition[partition].append(inbox_id)
    for partition, ids in by_partition.items():
        container.dispatcher.notify_many(partition, ids)
