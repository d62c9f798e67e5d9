"""How a stored inbox event reaches a worker, without paying one RQ job per event.

Each inbox row belongs to one of N partitions (by the provider object it is about), so that two
events about one object are never applied at the same time. ``notify`` pushes the row id onto its
partition's Redis list and, unless a drain of that partition is already queued or running,
enqueues one RQ job that drains the list in batches. The per-partition flag is the exclusive
right to drain it; it expires, so a killed worker cannot hold a partition for ever, and the
sweeper re-pushes whatever was acknowledged but not processed.
"""

from __future__ import annotations

import zlib

from redis import Redis
from rq import Queue

DRAIN_JOB = "workers.drain.drain_partition"


def partition_of(merchant: str, object_ref: str | None, partitions: int) -> int:
    """A stable partition for events about one provider object."""
    return zlib.crc32(f"{merchant}\x00{object_ref or ''}".encode()) % partitions


def list_key(partition: int) -> str:
    return f"gateway:inbox:{partition}"


def flag_key(partition: int) -> str:
    return f"gateway:drain:{partition}"


def stream_key(partition: int) -> str:
    """The partition's stream of deliveries in the Redis inbox (``workers.intake``)."""
    return f"gateway:stream:{partition}"


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
        pipe = self.redis.pipeline(transaction=False)
        if inbox_ids:
            pipe.rpush(list_key(partition), *inbox_ids)
        pipe.set(flag_key(partition), "queued", nx=True, ex=self.lock_seconds)
        scheduled = pipe.execute()[-1]
        if scheduled:
            self.schedule(partition)

    def kick(self, partition: int) -> bool:
        """Schedule a drain if the partition has ids or stream entries waiting and nobody
        holds it."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(list_key(partition))
        pipe.xlen(stream_key(partition))
        if not any(pipe.execute()):
            return False
        if not self.redis.set(flag_key(partition), "queued", nx=True, ex=self.lock_seconds):
            return False
        self.schedule(partition)
        return True

    def schedule(self, partition: int) -> None:
        """Enqueue the partition's drain job (the caller holds its flag)."""
        self.queue.enqueue(
            DRAIN_JOB,
            partition,
            job_timeout=self.lock_seconds * 10,
            result_ttl=0,
            failure_ttl=24 * 3600,
            description=f"drain inbox partition {partition}",
        )
