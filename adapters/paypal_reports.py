"""PayPal's reporting reads: Transaction Search and the webhook events list, as plain data.

GETs only, through ``PayPalClient`` (OAuth token cached, our timeout, no redirects) at the
merchant's configured API base. Transaction Search answers at most 31 days per request, so a
longer period is read in consecutive windows; both listings are read a page at a time. Errors
are translated by the same function the refund adapter uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from adapters.base import ErrorCode, provider_error
from adapters.paypal_adapter import PROVIDER, _call
from adapters.paypal_client import PayPalClient
from service.config import PayPalSettings

SEARCH_WINDOW = timedelta(days=31)  # Transaction Search: "The maximum supported range is 31 days"
SEARCH_PAGE_SIZE = 500  # Transaction Search's largest page_size
EVENTS_PAGE_SIZE = 100


class PayPalReports:
    def __init__(self, settings: PayPalSettings, timeout: float = 30.0) -> None:
        self._api = PayPalClient(settings, timeout=timeout)
        self._base = urlsplit(settings.api_base)

    def transactions(self, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """``transaction_info`` of every balance-affecting transaction in [start, end)."""
        for window_start, window_end in windows(start, end, SEARCH_WINDOW):
            page, total_pages = 1, 1
            while page <= total_pages:
                query = urlencode({
                    "start_date": _iso(window_start), "end_date": _iso(window_end),
                    "fields": "transaction_info", "page_size": SEARCH_PAGE_SIZE, "page": page,
                })
                answer = _call(lambda q=query: self._api.get(f"v1/reporting/transactions?{q}"))
                for detail in answer.get("transaction_details") or []:
                    info = dict(detail.get("transaction_info") or {})
                    # end_date is inclusive: a transaction on a boundary belongs to one window
                    if window_start <= initiated_at(info) < window_end:
                        yield info
                total_pages = int(answer.get("total_pages") or 0)
                page += 1

    def webhook_events(self, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """Webhook events of this app created in [start, end], following ``rel=next`` links."""
        path: str | None = "v1/notifications/webhooks-events?" + urlencode({
            "page_size": EVENTS_PAGE_SIZE, "start_time": _iso(start), "end_time": _iso(end)})
        while path:
            answer = _call(lambda p=path: self._api.get(p))
            yield from answer.get("events") or []
            path = self._next_path(answer)

    def _next_path(self, answer: Mapping[str, Any]) -> str | None:
        """The next page's path, only on our own API host: our bearer token goes with it."""
        link = next((x for x in answer.get("links") or [] if x.get("rel") == "next"), None)
        if not link:
            return None
        href = urlsplit(str(link.get("href", "")))
        if (href.scheme, href.netloc) != (self._base.scheme, self._base.netloc):
            raise provider_error(PROVIDER, ErrorCode.INVALID_REQUEST,
                                 f"next link points away from {self._base.netloc}: {href.netloc}")
        return href.path.lstrip("/") + (f"?{href.query}" if href.query else "")


def windows(start: datetime, end: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive [a, b) windows of at most ``size`` covering [start, end)."""
    while start < end:
        stop = min(start + size, end)
        yield start, stop
        start = stop


def initiated_at(info: Mapping[str, Any]) -> datetime:
    """``transaction_initiation_date`` (local time with an offset, ``+0000`` style) in UTC."""
    value = str(info.get("transaction_initiation_date") or "")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise provider_error(PROVIDER, ErrorCode.INVALID_REQUEST,
                             f"transaction {info.get('transaction_id')} has no readable "
                             f"transaction_initiation_date: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _iso(moment: datetime) -> str:
    """RFC 3339 in UTC with seconds, as both endpoints require (``2024-03-01T00:00:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
