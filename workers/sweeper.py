"""The sweeper: nothing acknowledged is ever stranded.

Hands out again every event that was stored but not processed in time (Redis was down after
the commit, a worker was killed holding a batch) and every retry that has come due, and kicks
partitions whose lists hold ids with no drain scheduled.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from ledger.inbox import stranded
from service.bootstrap import Container

log = logging.getLogger(__name__)


def sweep(container: Container, now: datetime | None = None) -> int:
    """Re-enqueue stranded and due events; returns how many were handed out."""
    now = now or datetime.now(timezone.utc)
    after = timedelta(seconds=container.settings.sweep_after_seconds)
    by_partition: dict[int, list[int]] = defaultdict(list)
    rows = stranded(container.engine, now, after)
    for inbox_id, partition in rows:
        by_partition[partition].append(inbox_id)
    for partition, ids in by_partition.items():
        container.dispatcher.notify_many(partition, ids)
    for partition in range(container.settings.partitions):
        container.dispatcher.kick(partition)
    if rows:
        log.info("sweeper re-enqueued %d events", len(rows))
    return len(rows)
