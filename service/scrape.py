"""What a scrape of ``/metrics`` reads: every process's counters (prometheus_client's
multiprocess files, or this process's registry) and the queue lag, read from the stores at
scrape time. Kept apart from the metric definitions (``service.metrics``), which every layer
imports and which therefore import nothing of ours: this module needs the composition root.

Queue lag is not counted: ``QueueLag`` reads it when scraped (the depth of each partition's
Redis list and inbox stream and of the RQ queue, the age of the oldest event waiting in the
inbox table or a stream), and reports
``gateway_scrape_source_up{source}`` = 0 for a store that did not answer instead of failing the
scrape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from service.metrics import MULTIPROC_ENV

if TYPE_CHECKING:
    from service.bootstrap import Container

log = logging.getLogger(__name__)


class _Default(Collector):
    """This process's own metrics, when no multiprocess directory is in use."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class QueueLag(Collector):
    """Queue depth and age, read from Redis and the database when scraped.

    Each read is bounded: one pipelined LLEN, XLEN and first XRANGE entry per partition, one
    LLEN of the RQ queue, and one indexed MIN over pending inbox rows
    (``ix_inbox_status_received``).
    """

    def __init__(self, container: Container) -> None:
        self._container = container

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gateway_scrape_source_up",
                               "1 when the store answered this scrape, 0 when it did not",
                               labels=["source"])
        redis_metrics, streamed_age = self._redis()
        up.add_metric(["redis"], 0 if redis_metrics is None else 1)
        yield from redis_metrics or ()
        age = self._oldest_pending_age()
        up.add_metric(["database"], 0 if age is None else 1)
        if age is not None:
            age = max(age, streamed_age)
            yield GaugeMetricFamily(
                "gateway_inbox_oldest_pending_age_seconds",
                "Age of the oldest inbox event still pending (0 when none is)", value=age)
        yield up

    def _redis(self) -> tuple[list[Metric] | None, float]:
        """The depth metrics (None: Redis did not answer) and the age of the oldest entry in
        any partition's stream, in seconds (an entry's id is its time in milliseconds)."""
        from workers.dispatch import list_key, stream_key

        partitions = self._container.settings.partitions
        try:
            pipe = self._container.redis.pipeline(transaction=False)
            for partition in range(partitions):
                pipe.llen(list_key(partition))
                pipe.xlen(stream_key(partition))
                pipe.xrange(stream_key(partition), count=1)
            pipe.llen(self._container.queue.key)
            *answers, queued = pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("metrics: redis unavailable for queue depth: %s", type(exc).__name__)
            return None, 0.0
        depth = GaugeMetricFamily("gateway_inbox_partition_depth",
                                  "Events waiting in a partition: inbox ids on its Redis list "
                                  "and deliveries in its Redis inbox stream",
                                  labels=["partition"])
        now_ms, oldest_ms = datetime.now(UTC).timestamp() * 1000, None
        for partition in range(partitions):
            listed, streamed, first = answers[3 * partition:3 * partition + 3]
            depth.add_metric([str(partition)], listed + streamed)
            if first:
                since = int(first[0][0].split(b"-")[0])
                oldest_ms = since if oldest_ms is None else min(oldest_ms, since)
        jobs = GaugeMetricFamily("gateway_rq_queue_depth", "Jobs waiting in the RQ queue",
                                 labels=["queue"])
        jobs.add_metric([self._container.settings.queue_name], queued)
        age = 0.0 if oldest_ms is None else max(0.0, (now_ms - oldest_ms) / 1000)
        return [depth, jobs], age

    def _oldest_pending_age(self) -> float | None:
        from ledger.models import InboxEvent, InboxStatus

        query = select(func.min(InboxEvent.received_at)).where(
            InboxEvent.status == InboxStatus.PENDING)
        try:
            with self._container.engine.connect() as conn:
                oldest = conn.execute(query).scalar()
        except SQLAlchemyError as exc:
            log.warning("metrics: database unavailable for queue age: %s", type(exc).__name__)
            return None
        if oldest is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - oldest).total_seconds())


def scrape_registry(container: Container) -> CollectorRegistry:
    """A registry holding every process's counters (or this one's) and the queue lag."""
    registry = CollectorRegistry()
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]  # untyped
    else:
        registry.register(_Default())
    registry.register(QueueLag(container))
    return registry


def serve_metrics_if_configured(container: Container) -> None:
    """For a worker or clock on a host of its own: serve /metrics on ``GATEWAY_METRICS_PORT``."""
    port = os.environ.get("GATEWAY_METRICS_PORT")
    if port:
        start_http_server(int(port), registry=scrape_registry(container))
        log.info("serving metrics on port %s", port)
