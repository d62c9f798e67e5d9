"""Where a reconciliation's provider records come from, and the report in each format."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import date
from itertools import chain
from pathlib import Path
from typing import Any

from reports.build import build_report, period
from reports.reconcile import Progress
from reports.records import Discrepancy, DiscrepancyKind, ProviderRecord
from service.bootstrap import Container
from service.config import Merchant

FORMATS = ("csv", "json", "html")
PROVIDERS = ("stripe", "paypal")


def provider_records(merchant: Merchant, start: date, end: date,
                     exports: Iterable[Path] = (), providers: Collection[str] = PROVIDERS
                     ) -> Iterator[ProviderRecord]:
    """The finance exports when given, else the API of each of ``providers`` the merchant has
    configured, for the period."""
    from reports import sources

    exports = list(exports)
    if exports:
        return chain.from_iterable(_export(path) for path in exports)
    begin, finish = period(start, end)
    streams: list[Iterable[ProviderRecord]] = []
    chosen = configured(merchant, providers)
    if "stripe" in chosen:
        streams.append(sources.stripe_balance_transactions(merchant.stripe, begin, finish))
    if "paypal" in chosen:
        streams.append(sources.paypal_transactions(merchant.paypal, begin, finish))
    return chain.from_iterable(streams)


def configured(merchant: Merchant, providers: Collection[str] = PROVIDERS) -> list[str]:
    """Those of ``providers`` whose API the merchant has credentials for."""
    return [p for p, has in (("stripe", merchant.stripe.api_key),
                             ("paypal", merchant.paypal.client_id)) if has and p in providers]


def _export(path: Path) -> Iterable[ProviderRecord]:
    from reports import sources

    kind = sources.detect_export(path)
    return (sources.stripe_balance_csv(path) if kind == "stripe_balance_csv"
            else sources.paypal_activity_csv(path))


def reconcile(container: Container, merchant: Merchant, start: date, end: date,
              exports: Iterable[Path] = (), progress: Progress | None = None,
              base_url: str | None = None, providers: Collection[str] = PROVIDERS
              ) -> dict[str, Any]:
    """The report for ``merchant`` over [start, end), against the records of ``providers``
    (from their APIs, or the ``exports`` given); its rows link to their events under
    ``base_url``, by default the gateway's public address (GATEWAY_PUBLIC_URL), if any."""
    exports = list(exports)
    records = provider_records(merchant, start, end, exports, providers)
    report = build_report(container, merchant.name, start, end, records, progress,
                          base_url=base_url or container.settings.public_url)
    if not exports:  # the providers' event listings are at hand: name what never arrived
        report["discrepancies"].extend(missed(container, merchant, start, end, providers))
    return report


def missed(container: Container, merchant: Merchant, start: date, end: date,
           providers: Collection[str] = PROVIDERS) -> Iterator[Discrepancy]:
    """Events a provider sent in the period that the inbox never received."""
    from reports.backfill import missed_events

    begin, finish = period(start, end)
    for provider in configured(merchant, providers):
        for event in missed_events(container, merchant, provider, begin, finish):
            yield Discrepancy(DiscrepancyKind.MISSED_EVENT, provider, event["event_id"], "",
                              None, None, f"{event['event_type']} was sent but never reached "
                              f"the inbox; `gateway backfill` fetches and processes it",
                              None, event.get("created_at"))


def render(report: dict[str, Any], fmt: str) -> Iterator[str]:
    """The report as CSV (the discrepancy table), JSON (everything) or an HTML page."""
    from reports.formats import to_csv, to_json

    if fmt == "csv":
        return to_csv(report)
    if fmt == "json":
        return iter([to_json(report)])
    from reports.html import render_html

    return render_html(report)
