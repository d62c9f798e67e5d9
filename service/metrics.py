"""Prometheus metrics: what the gateway counts. A leaf: every layer imports it, so it imports
nothing of ours but the log scope (what a scrape reads is ``service.scrape``).

Counters and histograms are module-level and counted where things happen (the webhook view, the
drain, decisions, adapters, jobs).

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

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

from service.logs import new_log_scope

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
