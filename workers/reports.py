"""The reconciliation report as a job: the admin API asks, a worker reads the providers' records
(which can take minutes for a large merchant: far longer than a web request may), and the
report waits in Redis for a day to be fetched in any format."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import JOB_ID_PATTERN, Job, JobStatus

from reports.run import PROVIDERS, reconcile
from service import metrics
from service.bootstrap import Container, current
from service.errors import UnknownMerchant

RECONCILE_JOB = "workers.reports.reconcile_report"
KEEP_SECONDS = 24 * 3600


def start(container: Container, report_id: str, merchant: str, start_day: date,
          end_day: date, providers: Collection[str] = PROVIDERS) -> None:
    """Queue the report ``report_id`` for ``merchant`` over [start_day, end_day), against the
    records of ``providers``."""
    container.queue.enqueue(RECONCILE_JOB, merchant, start_day.isoformat(), end_day.isoformat(),
                            sorted(providers),
                            job_id=report_id, result_ttl=KEEP_SECONDS, failure_ttl=KEEP_SECONDS,
                            job_timeout=3600, meta={"merchant": merchant},
                            description=f"reconcile {merchant} {start_day}..{end_day}")


@metrics.observed_job("report")
def reconcile_report(merchant: str, start_day: str, end_day: str,
                     providers: Collection[str] = PROVIDERS) -> dict[str, Any]:
    """The RQ job: the report, kept as the job's result. (A job queued before ``providers``
    existed has none: every provider.)"""
    container = current()
    found = container.settings.merchant(merchant)
    if found is None:
        raise UnknownMerchant(merchant)
    return reconcile(container, found, date.fromisoformat(start_day),
                     date.fromisoformat(end_day), providers=providers)


def find(container: Container, report_id: str, merchant: str) -> Job | None:
    """The report's job, if it exists and is ``merchant``'s (an id the queue would refuse names
    no job)."""
    if not JOB_ID_PATTERN.fullmatch(report_id):
        return None
    try:
        job = Job.fetch(report_id, connection=container.redis)
    except NoSuchJobError:
        return None
    return job if job.meta.get("merchant") == merchant else None


def state(job: Job) -> str:
    """queued | running | ready | failed."""
    status = job.get_status(refresh=True)
    if status == JobStatus.FINISHED:
        return "ready"
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        return "failed"
    return "running" if status == JobStatus.STARTED else "queued"


def failure(job: Job) -> str:
    """The last line of the job's error: what went wrong, without the traceback."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or "the report failed"
    return text.strip().splitlines()[-1][:500]
