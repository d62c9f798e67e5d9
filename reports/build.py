"""One reconciliation report: stage the provider's records, match, total, and assemble.

Memory is bounded by the number of discrepancies (kept for the report's table), never by the
number of ledger entries or provider records.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Any

from reports.reconcile import Progress, Run
from reports.records import ProviderRecord
from service.bootstrap import Container

# The console's page of one inbox event: a browser opens it (signing in first if it must),
# where the admin API's /v1/events/<id> would answer 401 without a bearer token.
EVENT_PATH = "/console/events/by-id/{event_id}"


def event_link(base_url: str | None) -> str | None:
    """The address of a row's event under the gateway's public address, as a format string;
    None without one (a relative link would be dead in a page opened from disk)."""
    return f"{base_url.rstrip('/')}{EVENT_PATH}" if base_url else None


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """[start, end) as UTC datetimes; ``end`` is exclusive, as finance periods are."""
    if end <= start:
        raise ValueError("the period's end must be after its start")
    return (datetime.combine(start, time(), UTC),
            datetime.combine(end, time(), UTC))


def build_report(container: Container, merchant: str, start: date, end: date,
                 records: Iterable[ProviderRecord], progress: Progress | None = None,
                 now: datetime | None = None, base_url: str | None = None) -> dict[str, Any]:
    """The report as plain data: totals per currency, the daily series, every discrepancy;
    rows link to their events under ``base_url`` (GATEWAY_PUBLIC_URL) when there is one."""
    begin, finish = period(start, end)
    run = Run(container.engine, merchant, begin, finish)
    try:
        run.stage(records, progress)
        discrepancies = list(run.discrepancies(now=now, progress=progress))
        totals = run.compute_totals()
        daily = run.daily()
    finally:
        run.close()
    return {
        "merchant": merchant, "from": start.isoformat(), "to": end.isoformat(),
        "generated_at": (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "currencies": {cur: t.as_dict() for cur, t in sorted(totals.items())},
        "daily": daily,
        "discrepancies": discrepancies,
        "event_link": event_link(base_url),
    }
