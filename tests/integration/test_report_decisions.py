"""The report's figures that come from our decisions, not from the providers: fees and
deductions kept, late fees charged, service credits granted, overpayments refunded or credited,
per currency, for the decisions evaluated in the period [--from, --to) and no others."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from ledger.models import Decision
from reports.build import build_report
from service.bootstrap import Container

MERCHANT = "theopenhost"
_ids = itertools.count()


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def _body(currency: str | None, *, fee: int = 0, refund: int = 0, credit: int = 0,
          items: tuple[tuple[str, int], ...] = ()) -> dict[str, Any]:
    """A decision as ``policy.decision_to_json`` writes it (the parts the report reads)."""
    cur = currency or "USD"
    body: dict[str, Any] = {
        "amounts": {"at_stake": None, "refund": _money(refund, cur),
                    "credit": _money(credit, cur), "fee": _money(fee, cur),
                    "charge": _money(0, cur), "retained": _money(0, cur),
                    "proposed_refund": None},
        "line_items": [{"kind": kind, "label": kind, "amount": _money(amount, cur),
                        "clause": "003 §1.1a"} for kind, amount in items],
    }
    if currency is not None:
        body["currency"] = currency
    return body


def _decided(container: Container, at: datetime, kind: str, outcome: str,
             body: dict[str, Any], merchant: str = MERCHANT) -> None:
    with container.sessions() as session, session.begin():
        session.add(Decision(
            id=f"dec_report_{next(_ids)}", merchant=merchant, account_ref="cus_report",
            pack="003", request_kind=kind, outcome=outcome, case={}, decision=body,
            evaluated_at=at))


def _totals(container: Container, currency: str) -> dict[str, Any]:
    report = build_report(container, MERCHANT, date(2026, 5, 1), date(2026, 6, 1), [])
    totals: dict[str, Any] = report["currencies"][currency]
    return totals


IN_MAY = datetime(2026, 5, 10, 12, tzinfo=UTC)


def test_each_kind_of_decision_adds_to_its_own_figure(container):
    """A refund's administration fee is a fee retained and its deductions are deductions
    retained; a late fee is a late fee (not a fee retained); a service credit's credit is a
    service credit; an overpayment's refund and credit are the overpayments refunded and
    credited. Nothing is counted twice or in another figure."""
    _decided(container, IN_MAY, "refund", "partial_refund",
             _body("USD", fee=250, refund=4000, items=(("deduction", 1500), ("deduction", 300),
                                                       ("fee", 250), ("refund", 4000))))
    _decided(container, IN_MAY, "invoice", "late_fee", _body("USD", fee=500))
    _decided(container, IN_MAY, "invoice", "late_fee", _body("USD", fee=350))
    _decided(container, IN_MAY, "uptime_credit", "service_credit", _body("USD", credit=700))
    _decided(container, IN_MAY, "uptime_credit", "service_credit", _body("USD", credit=90))
    _decided(container, IN_MAY, "overpayment", "full_refund",
             _body("USD", fee=50, refund=950))
    _decided(container, IN_MAY, "overpayment", "account_credit", _body("USD", credit=2000))
    _decided(container, IN_MAY, "overpayment", "account_credit", _body("USD", credit=150))
    _decided(container, IN_MAY, "overpayment", "full_refund", _body("USD", refund=60))
    # A refund decision's refund is money out, counted from the provider's refunds: not here.
    _decided(container, IN_MAY, "refund", "full_refund", _body("USD", refund=9000))

    usd = _totals(container, "USD")
    assert usd["fees_retained"] == 250 + 50
    assert usd["deductions_retained"] == 1500 + 300
    assert usd["late_fees"] == 500 + 350
    assert usd["service_credits"] == 700 + 90
    assert usd["overpayments_refunded"] == 950 + 60
    assert usd["overpayments_credited"] == 2000 + 150


def test_a_service_credit_counts_only_as_the_outcome_says(container):
    """Credit in a decision that is not a service credit (an overpayment credited, a goodwill
    credit) is not a service credit; an overpayment's figures come from overpayments only."""
    _decided(container, IN_MAY, "refund", "account_credit", _body("USD", credit=1200))
    _decided(container, IN_MAY, "uptime_credit", "service_credit", _body("USD", credit=300,
                                                                          refund=80))
    usd = _totals(container, "USD")
    assert usd["service_credits"] == 300
    assert usd["overpayments_credited"] == 0
    assert usd["overpayments_refunded"] == 0


def test_figures_are_kept_per_currency_and_usd_when_a_decision_names_none(container):
    """Each decision counts in its own currency; one without a currency (older records) counts
    in USD."""
    _decided(container, IN_MAY, "invoice", "late_fee", _body("EUR", fee=600))
    _decided(container, IN_MAY, "invoice", "late_fee", _body(None, fee=500))
    _decided(container, IN_MAY, "overpayment", "full_refund", _body("EUR", fee=5, refund=95))
    report = build_report(container, MERCHANT, date(2026, 5, 1), date(2026, 6, 1), [])
    assert report["currencies"]["EUR"]["late_fees"] == 600
    assert report["currencies"]["EUR"]["overpayments_refunded"] == 95
    assert report["currencies"]["EUR"]["fees_retained"] == 5
    assert report["currencies"]["USD"]["late_fees"] == 500
    assert report["currencies"]["USD"]["overpayments_refunded"] == 0


def test_only_decisions_evaluated_in_the_period_count(container):
    """[--from, --to): a decision at exactly --from counts, one at exactly --to does not (it is
    the next period's), nor one before, nor another merchant's; in the totals and in the
    chart's fees alike."""
    _decided(container, datetime(2026, 5, 1, tzinfo=UTC), "invoice", "late_fee",
             _body("USD", fee=100))
    _decided(container, datetime(2026, 6, 1, tzinfo=UTC), "invoice", "late_fee",
             _body("USD", fee=10_000))
    _decided(container, datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC), "invoice", "late_fee",
             _body("USD", fee=20_000))
    _decided(container, IN_MAY, "invoice", "late_fee", _body("USD", fee=40_000),
             merchant="cloudbehind")  # another merchant's
    report = build_report(container, MERCHANT, date(2026, 5, 1), date(2026, 6, 1), [])
    assert report["currencies"]["USD"]["late_fees"] == 100
    assert [(d["date"], d["fees"]) for d in report["daily"]] == [("2026-05-01", 100)]


def test_a_decision_without_amounts_or_line_items_adds_nothing(container):
    """A denial carries no amounts (or empty ones): it is counted in no figure, and a late fee
    still counts beside it."""
    _decided(container, IN_MAY, "refund", "deny", {"currency": "USD"})
    _decided(container, IN_MAY, "refund", "deny",
             {"currency": "USD", "amounts": {"fee": None}, "line_items": None})
    _decided(container, IN_MAY, "invoice", "late_fee", _body("USD", fee=700))
    usd = _totals(container, "USD")
    assert usd["late_fees"] == 700
    assert usd["fees_retained"] == 0 and usd["deductions_retained"] == 0


def test_the_daily_series_counts_fees_by_day_and_currency(container):
    """The chart's fees per day: a fee in the currency the decision names, in USD when it names
    none, on the day it was evaluated; a decision without a fee adds no day, and days come in
    order, then currencies."""
    _decided(container, datetime(2026, 5, 12, 23, 59, tzinfo=UTC), "invoice", "late_fee",
             _body("USD", fee=70))
    _decided(container, IN_MAY, "refund", "partial_refund", _body("EUR", fee=40, refund=760))
    _decided(container, IN_MAY, "invoice", "late_fee", _body(None, fee=500))
    _decided(container, IN_MAY, "invoice", "late_fee", _body("USD", fee=25))
    _decided(container, datetime(2026, 5, 11, tzinfo=UTC), "refund", "deny", _body("USD"))
    report = build_report(container, MERCHANT, date(2026, 5, 1), date(2026, 6, 1), [])
    assert report["daily"] == [
        {"date": "2026-05-10", "currency": "EUR", "refunds": 0, "credits": 0, "fees": 40},
        {"date": "2026-05-10", "currency": "USD", "refunds": 0, "credits": 0, "fees": 525},
        {"date": "2026-05-12", "currency": "USD", "refunds": 0, "credits": 0, "fees": 70}]


def test_a_fee_of_a_decision_with_a_null_currency_is_charted_in_usd(container):
    """A decision whose currency is null (not merely absent) counts in USD in the chart, as in
    the totals."""
    _decided(container, IN_MAY, "invoice", "late_fee", {**_body("USD", fee=25), "currency": None})
    report = build_report(container, MERCHANT, date(2026, 5, 1), date(2026, 6, 1), [])
    assert [(d["date"], d["currency"], d["fees"]) for d in report["daily"]] == [
        ("2026-05-10", "USD", 25)]
    assert report["currencies"]["USD"]["late_fees"] == 25


def test_each_currencys_figures_are_exactly_these(container):
    """The report's figures per currency, as JSON and CSV readers rely on them: these keys and
    no others, the breakdowns as plain objects."""
    _decided(container, IN_MAY, "invoice", "late_fee", _body("USD", fee=500))
    usd = _totals(container, "USD")
    assert set(usd) == {
        "gross_charges", "refunds", "refunds_by_outcome", "refunds_by_clause",
        "credit_granted", "credit_used", "fees_retained", "deductions_retained", "late_fees",
        "service_credits", "overpayments_refunded", "overpayments_credited", "provider_fees",
        "matched", "discrepancies"}
    assert type(usd["refunds_by_outcome"]) is dict and type(usd["refunds_by_clause"]) is dict
