"""Prometheus metrics: what the gateway counts, and the registry a scrape reads.

Counters and histograms are module-level and counted where things happen (the webhook view, the
drain, decisions, adapters, jobs). Queue lag is not counted: ``QueueLag`` reads it from the
stores at scrape time (the depth of each partition's Redis list and of the RQ queue, the age of
the oldest pending inbox event), and reports ``gateway_scrape_source_up{source}`` = 0 for a
store that did not answer instead of failing the scrape.

Separate processes (gunicorn's workers, RQ workers, the clock) are added up by
prometheus_client's multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` names a directory
before prometheus_client is first imported, every process writes its values to files there and
``scrape_registry`` sums them. ``gateway/gunicorn_conf.py`` makes a fresh directory for the web
processes when the operator has not named one, and tells prometheus_client when a gunicorn
worker exits. For ``/metrics`` to include the worker and the clock, run them on the same host
with the same ``PROMETHEUS_MULTIPROC_DIR`` (empty it before the processes start, never while
they run); on a host of their own, ``GATEWAY_METRICS_PORT`` makes them serve their own.
Without the variable a process counts in memory, which is what the tests see.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from service.logs import new_log_scope

if TYPE_CHECKING:
    from service.bootstrap import Container

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

WEBHOOKS_RECEIVED = Counter(
    "gateway_webhooks_received", "Webhook deliveries for a known merchant and provider",
    ["provider", "merchant"])
WEBHOOKS_VERIFIED = Counter(
    "gateway_webhooks_verified", "Deliveries whose signature verified",
    ["provider", "merchant"])
WEBHOOKS_REJECTED = Counter(
    "gateway_webhooks_rejected", "Deliveries refused, by reason (the error code answered)",
    ["provider", "reason"])
WEBHOOKS_DUPLICATES = Counter(
    "gateway_webhooks_duplicates", "Verified deliveries of an event already in the inbox",
    ["provider"])
EVENTS_PROCESSED = Counter(
    "gateway_events_processed", "Inbox events a drain committed, by the status they ended in "
    "(processed, ignored, retry, dead)", ["provider", "outcome"])
EVENTS_OUT_OF_RANGE = Counter(
    "gateway_events_out_of_range", "Signed events stored but ignored: a value out of range "
    "(an amount, a time, a currency, an id)", ["provider"])
JOB_FAILURES = Counter(
    "gateway_job_failures", "Jobs that raised (RQ jobs and the clock's scheduled jobs)",
    ["kind"])
DECISIONS = Counter(
    "gateway_decisions", "Decisions recorded, by outcome", ["merchant", "outcome"])
PROVIDER_CALL_SECONDS = Histogram(
    "gateway_provider_call_seconds", "Time a provider API operation took, failures included",
    ["provider", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0))
PROVIDER_CALL_ERRORS = Counter(
    "gateway_provider_call_errors", "Provider API operations that failed, by our error code",
    ["provider", "operation", "code"])

F = TypeVar("F", bound=Callable[..., Any])


def observed_job(kind: str) -> Callable[[F], F]:
    """An RQ job: its log lines start with nothing bound but ``job=kind``, and a raising call
    is counted in ``gateway_job_failures_total{kind}``."""
    def decorate(job: F) -> F:
        @wraps(job)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with new_log_scope(job=kind):
                try:
                    return job(*args, **kwargs)
                except BaseException:  # a job timeout is a BaseException in RQ: count it too
                    JOB_FAILURES.labels(kind).inc()
                    raise
        return wrapped  # type: ignore[return-value]  # @wraps keeps job's signature: still an F
    return decorate


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
