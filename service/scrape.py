"""What a scrape of ``/metrics`` reads: every process's counters (prometheus_client's
multiprocess files, or this process's registry) and the queue lag, read from the stores at
scrape time. Kept apart from the metric definitions (``service.metrics``), which every layer
imports and which therefore import nothing of ours: this module needs the composition root.

Queue lag is not counted: ``QueueLag`` reads it when scraped (the depth of each partition's
Redis list and of the RQ queue, the age of the oldest pending inbox event), and reports
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

    Each read is bounded: one pipelined LLEN per partition, one LLEN of the RQ queue, and one
    indexed MIN over pending inbox rows (``ix_inbox_status_received``).
    """

    def __init__(self, container: Container) -> None:
        self._container = container

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gateway_scrape_source_up",
                               "1 when the store answered this scrape, 0 when it did not",
                               labels=["source"])
        redis_metrics = self._redis()
        up.add_metric(["redis"], 0 if redis_metrics is None else 1)
        yield from redis_metrics or ()
        age = self._oldest_pending_age()
        up.add_metric(["database"], 0 if age is None else 1)
        if age is not None:
            yield GaugeMetricFamily(
                "gateway_inbox_oldest_pending_age_seconds",
                "Age of the oldest inbox event still pending (0 when none is)", value=age)
        yield up

    def _redis(self) -> list[Metric] | None:
        from workers.dispatch import list_key

        partitions = self._container.settings.partitions
        try:
            pipe = self._container.redis.pipeline(transaction=False)
            for partition in range(partitions):
                pipe.llen(list_key(partition))
            pipe.llen(self._container.queue.key)
            *depths, queued = pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("metrics: redis unavailable for queue depth: %s", type(exc).__name__)
            return None
        depth = GaugeMetricFamily("gateway_inbox_partition_depth",
                                  "Inbox ids waiting in a partition's Redis list",
                                  labels=["partition"])
        for partition, value in enumerate(depths):
            depth.add_metric([str(partition)], value)
        jobs = GaugeMetricFamily("gateway_rq_queue_depth", "Jobs waiting in the RQ queue",
                                 labels=["queue"])
        jobs.add_metric([self._container.settings.queue_name], queued)
        return [depth, jobs]

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
