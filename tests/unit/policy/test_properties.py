"""Properties that hold for every Case: money is conserved, refunds never exceed what was paid,
fees are never negative, decisions are deterministic, and zero-decimal currencies round."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy import Decision, case_from_json, evaluate

from .builders import GIB, NOW, T0, case, iso, money, order, pack

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD"])
PACKS = st.sampled_from(["oneclick", "digitalcare", "cloudbehind", "theopenhost"])
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    currency = draw(CURRENCIES)
    amount = draw(st.integers(0, 10**9))
    kind = draw(st.sampled_from(["refund", "cancellation", "overpayment", "uptime_credit",
                                 "overdue_invoice"]))
    at = T0 + timedelta(seconds=draw(st.integers(0, 90 * 86400)))
    o = order(
        type=draw(st.sampled_from(["new", "renewal"])),
        product_category=draw(st.sampled_from(["web_hosting", "vps", "vpn", "license",
                                               "account_credit", "technical_support"])),
        amount=money(amount, currency), term_months=draw(st.sampled_from([1, 3, 6, 12])),
        auto_renew=draw(st.booleans()), next_billing_at=iso(T0 + timedelta(days=30)),
        addons=draw(st.lists(st.sampled_from(["ssl_certificate", "domain_reseller",
                                              "end_user_support"]), unique=True)),
        service_state=draw(st.sampled_from(["not_started", "initiated", "completed"])),
        service_date=iso(T0))
    due = T0 + timedelta(hours=draw(st.integers(-2000, 2000)))
    over = draw(st.integers(0, amount))
    data = case(kind, at, order=o,
                request_extra={"reason_code": draw(st.sampled_from(
                    ["other", "provider_fault", "billing_error", "user_error", "non_use"])),
                    "invoice_number": "INV-1", "immediate": draw(st.booleans())},
                usage={"bandwidth_bytes": draw(st.integers(0, 20 * GIB)),
                       "sessions": draw(st.integers(0, 200)),
                       "used_since_renewal": draw(st.booleans())},
                payment={"amount": money(amount, currency), "received_at": iso(T0),
                         "overpaid_amount": money(over, currency), "provider": "paypal",
                         "via_subscription": True},
                uptime={"measured_percent": str(draw(st.decimals(0, 100, places=3))),
                        "incident_at": iso(at - timedelta(hours=draw(st.integers(0, 100))))})
    data["account"] = {
        "prior_guarantee_refunds": draw(st.integers(0, 2)), "violations": draw(st.integers(0, 1)),
        "invoices": [{"number": "INV-1", "amount": money(draw(st.integers(0, 10**7)), currency),
                      "due_at": iso(due), "paid": draw(st.booleans()),
                      "notified_at": iso(due - timedelta(days=10))}]}
    return data


def run(name: str, data: dict[str, Any]) -> Decision:
    return evaluate(pack(name), case_from_json(data), NOW + timedelta(days=100))


@PROPS
@given(name=PACKS, data=cases())
def test_money_at_stake_is_always_accounted_for(name: str, data: dict[str, Any]) -> None:
    """refund + credit + retained == amount at stake, whenever money is at stake."""
    d = run(name, data)
    if d.at_stake is not None:
        assert d.refund.amount + d.credit.amount + d.retained.amount == d.at_stake.amount
        assert min(d.refund.amount, d.credit.amount, d.retained.amount) >= 0


@PROPS
@given(name=PACKS, data=cases())
def test_a_refund_never_exceeds_what_was_paid(name: str, data: dict[str, Any]) -> None:
    """No outcome refunds more than the order (or the overpayment) it concerns."""
    d = run(name, data)
    paid = data["payment"]["overpaid_amount"] if d.request_kind == "overpayment" \
        else data["order"]["amount"]
    assert d.refund.amount <= paid["amount"]
    if d.proposed_refund is not None:
        assert d.proposed_refund.amount <= paid["amount"]


@PROPS
@given(name=PACKS, data=cases())
def test_fees_and_charges_are_never_negative_and_share_the_currency(name: str,
                                                                     data: dict[str, Any]) -> None:
    """Fees, charges and line items are non-negative amounts in the decision's currency."""
    d = run(name, data)
    assert d.fee.amount >= 0 and d.charge.amount >= 0
    amounts = [d.refund, d.credit, d.fee, d.charge, d.retained] + [i.amount for i in d.line_items]
    assert all(m.amount >= 0 and m.currency == d.currency for m in amounts)


@PROPS
@given(name=PACKS, data=cases())
def test_the_same_case_and_time_always_give_the_same_decision(name: str,
                                                              data: dict[str, Any]) -> None:
    """evaluate is deterministic: no clock, no randomness, no hidden state."""
    assert run(name, data) == run(name, data)


@PROPS
@given(amount=st.integers(1, 10**9), over=st.integers(1, 10**6))
def test_zero_decimal_currencies_round_to_whole_yen(amount: int, over: int) -> None:
    """In JPY every amount is whole yen and the 5% fee rounds down."""
    over = min(over, amount)
    data = case("overpayment", T0 + timedelta(days=1), payment={
        "amount": money(amount, "JPY"), "received_at": iso(T0),
        "overpaid_amount": money(over, "JPY"), "provider": "paypal", "via_subscription": True})
    d = evaluate(pack("theopenhost"), case_from_json(data), T0 + timedelta(days=1))
    assert d.fee.amount == over * 5 // 100
    assert d.refund.amount == over - d.fee.amount
    assert isinstance(d.refund.amount, int) and d.currency == "JPY"
