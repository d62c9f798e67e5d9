"""Reconciliation: seeded discrepancies of every kind are found, nothing else is flagged, and the
totals equal an independent sum over the same rows."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Action, ActionStatus, Payment, Refund
from reports.build import build_report
from reports.formats import CSV_COLUMNS, to_csv, to_json
from reports.records import DiscrepancyKind, ProviderRecord, RecordKind
from sandbox import samples
from service.bootstrap import Container
from tests.support import cases
from tests.support import stripe as sig
from tests.support.delivery import run_worker
from workers.decide import decide

DAY = 86400
MERCHANT = "theopenhost"


def _charge(client: FlaskClient, key: str, amount: int, currency: str = "usd") -> samples.Scenario:
    scenario = samples.Scenario(key=key, amount=amount, currency=currency,
                                period_start=int(time.time() - 3 * DAY))
    assert sig.post(client, samples.stripe_event("charge.succeeded", scenario)).status_code == 200
    return scenario


def _record(payment: Payment | Refund, kind: RecordKind, **changes: object) -> ProviderRecord:
    values = {"provider": "stripe", "kind": kind, "provider_id": payment.provider_id,
              "amount": payment.amount, "currency": payment.currency, "status": payment.status,
              "created_at": datetime.now(UTC)}
    values.update(changes)
    return ProviderRecord(**values)  # type: ignore[arg-type]


@responses.activate
def test_every_seeded_discrepancy_is_found_and_nothing_else(client, container):
    """One of each kind, among matched rows; the totals are independent sums."""
    names = ["ok1", "ok2", "missing_at_provider", "amount", "currency", "refund_status"]
    scenarios = {n: _charge(client, f"rec-{n}", 1000 + i * 100) for i, n in enumerate(names)}
    dashboard = samples.stripe_event("refund.created", samples.Scenario(
        key="rec-dashboard", amount=700, period_start=int(time.time() - 2 * DAY)))
    assert sig.post(client, dashboard).status_code == 200
    run_worker(container)
    # a decision whose refund the provider refuses (not executed), and one stuck mid-call
    responses.post("https://api.stripe.com/v1/refunds", status=400, json={"error": {
        "type": "invalid_request_error", "code": "charge_disputed", "message": "disputed"}})
    decide(container, MERCHANT, cases.guarantee_claim(1000), payment_ref=scenarios["ok1"].charge_id,
           account_ref="cus_a")
    run_worker(container)
    decide(container, MERCHANT, cases.guarantee_claim(1100), payment_ref=scenarios["ok2"].charge_id,
           account_ref="cus_b")
    with container.sessions() as s, s.begin():
        stuck = s.scalars(select(Action).where(Action.status == ActionStatus.PENDING)).one()
        stuck.status = ActionStatus.EXECUTING
        stuck.updated_at = datetime.now(UTC) - timedelta(hours=2)
        payments = {p.provider_id: p for p in s.scalars(select(Payment))}
        refund = s.scalars(select(Refund)).one()
    by_name = {n: payments[sc.charge_id] for n, sc in scenarios.items()}
    records = [
        _record(by_name["ok1"], RecordKind.PAYMENT),
        _record(by_name["ok2"], RecordKind.PAYMENT),
        _record(by_name["amount"], RecordKind.PAYMENT, amount=by_name["amount"].amount - 1),
        _record(by_name["currency"], RecordKind.PAYMENT, currency="EUR"),
        _record(by_name["refund_status"], RecordKind.PAYMENT, status="failed"),
        _record(refund, RecordKind.REFUND),  # the dashboard refund: matched, but unsolicited
        ProviderRecord("stripe", RecordKind.PAYMENT, "ch_never_seen", 4200, "USD", "succeeded",
                       datetime.now(UTC)),
        ProviderRecord("stripe", RecordKind.FEE, "ch_x:fee", 59, "USD", "succeeded",
                       datetime.now(UTC)),
    ]
    today = date.today()  # the sample dates its dashboard refund later in the billing cycle
    report = build_report(container, MERCHANT, today - timedelta(days=10),
                          today + timedelta(days=40), records)

    found = sorted((d.kind.value, d.provider_id) for d in report["discrepancies"])
    assert found == sorted([
        (DiscrepancyKind.MISSING_AT_PROVIDER.value, by_name["missing_at_provider"].provider_id),
        (DiscrepancyKind.AMOUNT_MISMATCH.value, by_name["amount"].provider_id),
        (DiscrepancyKind.CURRENCY_MISMATCH.value, by_name["currency"].provider_id),
        (DiscrepancyKind.STATUS_MISMATCH.value, by_name["refund_status"].provider_id),
        (DiscrepancyKind.MISSING_IN_LEDGER.value, "ch_never_seen"),
        (DiscrepancyKind.UNSOLICITED_REFUND.value, refund.provider_id),
        (DiscrepancyKind.ACTION_NOT_EXECUTED.value, _failed_action(container)),
        (DiscrepancyKind.ACTION_STUCK.value, stuck.id),
    ])
    usd = report["currencies"]["USD"]
    assert usd["gross_charges"] == sum(p.amount for p in payments.values())
    assert usd["refunds"] == refund.amount
    assert usd["refunds_by_outcome"] == {"no decision of ours": refund.amount}
    assert usd["provider_fees"] == 59
    assert usd["matched"] == 3  # ok1, ok2 and the dashboard refund
    assert usd["discrepancies"] == len(found)


def _failed_action(container: Container) -> str:
    with container.sessions() as s:
        return s.scalars(select(Action.id).where(Action.status == ActionStatus.FAILED)).one()


def test_the_csv_has_one_header_row_iso_dates_and_major_units(client, container):
    """Finance's spreadsheet: a header, ISO 8601 times, amounts like 12.34 or 1000 (JPY)."""
    _charge(client, "csv-usd", 1234)
    _charge(client, "csv-jpy", 1000, "jpy")
    run_worker(container)
    today = date.today()
    report = build_report(container, MERCHANT, today - timedelta(days=10),
                          today + timedelta(days=1), [])
    lines = "".join(to_csv(report)).splitlines()
    assert lines[0].split(",") == CSV_COLUMNS
    rows = sorted(line.split(",")[3:6] for line in lines[1:])
    assert rows == [["JPY", "1000", ""], ["USD", "12.34", ""]]
    assert all("T" in line.split(",")[7] and line.split(",")[7].endswith("Z")
               for line in lines[1:])
    assert '"missing_at_provider"' in to_json(report)
