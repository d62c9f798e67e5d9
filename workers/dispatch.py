"""How a stored inbox event reaches a worker, without paying one RQ job per event.

Each inbox row belongs to one of N partitions (by the provider object it is about), so that two
events about one object are never applied at the same time. ``notify`` pushes the row id onto its
partition's Redis list and, unless a drain of that partition is already queued or running,
enqueues one RQ job that drains the list in batches. The per-partition flag is the exclusive
right to drain it; it expires, so a killed worker cannot hold a partition for ever, and the
sweeper re-pushes whatever was acknowledged but not processed.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from ledger.inbox import Stored
from ledger.models import InboxStatus

log = logging.getLogger(__name__)

DRAIN_JOB = "workers.drain.drain_partition"


def partition_of(merchant: str, object_ref: str | None, partitions: int) -> int:
    """A stable partition for events about one provider object."""
    return zlib.crc32(f"{merchant}\x00{object_ref or ''}".encode()) % partitions


def list_key(partition: int) -> str:
    return f"gateway:inbox:{partition}"


def flag_key(partition: int) -> str:
    return f"gateway:drain:{partition}"


class Dispatcher:
    """Hands inbox ids to the workers through Redis lists and coalesced RQ drain jobs."""

    def __init__(self, redis: Redis, queue: Queue, lock_seconds: int = 60) -> None:
        self.redis = redis
        self.queue = queue
        self.lock_seconds = lock_seconds

    def notify(self, inbox_id: int, partition: int) -> None:
        """Queue ``inbox_id``; raises redis errors (the caller decides what that means)."""
        self.notify_many(partition, [inbox_id])

    def notify_many(self, partition: int, inbox_ids: list[int]) -> None:
        self._push({partition: inbox_ids})

    def announce(self, stored: Sequence[Stored]) -> None:
        """Hand out the pending rows among a group the inbox just committed, every partition in
        one round trip. Best effort, never raises: the rows are safe in the inbox, and the
        sweeper hands out whatever a Redis outage kept from its list."""
        by_partition: dict[int, list[int]] = {}
        for row in stored:
            if row.status == InboxStatus.PENDING:  # not a duplicate of a finished event
                by_partition.setdefault(row.partition, []).append(row.inbox_id)
        if not by_partition:
            return
        try:
            self._push(by_partition)
        except RedisError:
            log.warning("enqueue failed, the sweeper will pick up inbox ids %s",
                        sorted(i for ids in by_partition.values() for i in ids))

    def _push(self, by_partition: dict[int, list[int]]) -> None:
        """Append ids to their partitions' lists and schedule a drain of each partition nobody
        holds; raises redis errors."""
        partitions = sorted(by_partition)
        pipe = self.redis.pipeline(transaction=False)
        for partition in partitions:
            if by_partition[partition]:
                pipe.rpush(list_key(partition), *by_partition[partition])
            pipe.set(flag_key(partition), "queued", nx=True, ex=self.lock_seconds)
        answers = iter(pipe.execute())
        for partition in partitions:
            if by_partition[partition]:
                next(answers)  # the list's new length
            if next(answers):
                self._enqueue(partition)

    def kick(self, partition: int) -> bool:
        """Schedule a drain if the partition has ids waiting and nobody holds it."""
        if not self.redis.llen(list_key(partition)):
            return False
        if not self.redis.set(flag_key(partition), "queued", nx=True, ex=self.lock_seconds):
            return False
        self._enqueue(partition)
        return True

    def _enqueue(self, partition: int) -> None:
        self.queue.enqueue(
            DRAIN_JOB,
            partition,
            job_timeout=self.lock_seconds * 10,
            result_ttl=0,
            failure_ttl=24 * 3600,
            description=f"drain inbox partition {partition}",
        )
