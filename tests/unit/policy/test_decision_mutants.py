"""The readable account of a decision (``explain``, the CLI's --explain): every amount, date,
flag."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from policy import Decision, LineItem, Outcome, Reason, decision_to_json, explain
from policy.money import Money


def usd(amount: int) -> Money:
    return Money(amount, "USD")


def decision(**changes: Any) -> Decision:
    at = datetime(2025, 6, 1, tzinfo=UTC)
    fields: dict[str, Any] = {
        "pack": "theopenhost", "request_kind": "refund", "outcome": Outcome.PARTIAL_REFUND,
        "decided_at": at, "currency": "USD", "at_stake": usd(12000), "refund": usd(9000),
        "credit": usd(500), "fee": usd(1500), "charge": usd(250), "retained": usd(3000),
        "proposed_refund": usd(9500),
        "line_items": (LineItem("fee", "setup fee", usd(1500), "003 §1.1"),),
        "effective_at": datetime(2025, 6, 2, tzinfo=UTC),
        "access_until": datetime(2025, 6, 3, tzinfo=UTC),
        "balance_due_by": datetime(2025, 6, 4, tzinfo=UTC),
        "notice_by": datetime(2025, 6, 5, tzinfo=UTC),
        "flags": ("manual", "vip"),
        "reasons": (Reason("003 §1.1", "Refunds within 15 days.", True, "day 3"),
                    Reason("003 §1.2", "Details required.", False, "no invoice")),
        "basis": "003 §1.1"}
    fields.update(changes)
    return Decision(**fields)


def test_explain_names_every_amount_date_flag_and_reason():
    """explain writes each non-zero amount, each date, the flags and every reason, in order."""
    assert explain(decision()).splitlines() == [
        "Decision: partial_refund (refund, pack theopenhost, at 2025-06-01T00:00:00Z)",
        "Under: 003 §1.1",
        "Amounts: at stake 120.00 USD, refund 90.00 USD, credit 5.00 USD, fee 15.00 USD, "
        "charge 2.50 USD, retained 30.00 USD, proposed refund 95.00 USD",
        "  - setup fee: 15.00 USD [003 §1.1]",
        "Effective: 2025-06-02T00:00:00Z",
        "Access until: 2025-06-03T00:00:00Z",
        "Balance due by: 2025-06-04T00:00:00Z",
        "Notice by: 2025-06-05T00:00:00Z",
        "Flags: manual, vip",
        "Reasons:",
        "  [holds] 003 §1.1: day 3",
        "      \u201cRefunds within 15 days.\u201d",
        "  [FAILS] 003 §1.2: no invoice",
        "      \u201cDetails required.\u201d",
    ]


def test_explain_leaves_out_zero_amounts_but_always_shows_the_refund():
    """Zero amounts, absent dates, empty flags and no basis are left out; a zero refund is still
    shown."""
    text = explain(decision(outcome=Outcome.DENY, at_stake=None, refund=usd(0), credit=usd(0),
                            fee=usd(0), charge=usd(0), retained=usd(0), proposed_refund=None,
                            line_items=(), effective_at=None, access_until=None,
                            balance_due_by=None, notice_by=None, flags=(), basis=None))
    assert text.splitlines()[:3] == [
        "Decision: deny (refund, pack theopenhost, at 2025-06-01T00:00:00Z)",
        "Amounts: refund 0.00 USD",
        "Reasons:",
    ]


def test_decision_json_writes_every_amount_date_line_item_flag_and_reason():
    """decision_to_json: each field under its own key, the basis beside the outcome, amounts as
    {amount, currency}, dates in ISO 8601 UTC, line items and reasons with every part, flags as
    a list."""
    assert decision_to_json(decision()) == {
        "pack": "theopenhost",
        "request_kind": "refund",
        "outcome": "partial_refund",
        "basis": "003 §1.1",
        "decided_at": "2025-06-01T00:00:00Z",
        "currency": "USD",
        "amounts": {
            "at_stake": {"amount": 12000, "currency": "USD"},
            "refund": {"amount": 9000, "currency": "USD"},
            "credit": {"amount": 500, "currency": "USD"},
            "fee": {"amount": 1500, "currency": "USD"},
            "charge": {"amount": 250, "currency": "USD"},
            "retained": {"amount": 3000, "currency": "USD"},
            "proposed_refund": {"amount": 9500, "currency": "USD"},
        },
        "line_items": [{"kind": "fee", "label": "setup fee",
                        "amount": {"amount": 1500, "currency": "USD"}, "clause": "003 §1.1"}],
        "dates": {
            "effective_at": "2025-06-02T00:00:00Z",
            "access_until": "2025-06-03T00:00:00Z",
            "balance_due_by": "2025-06-04T00:00:00Z",
            "notice_by": "2025-06-05T00:00:00Z",
        },
        "flags": ["manual", "vip"],
        "reasons": [
            {"clause": "003 §1.1", "holds": True, "detail": "day 3",
             "text": "Refunds within 15 days."},
            {"clause": "003 §1.2", "holds": False, "detail": "no invoice",
             "text": "Details required."},
        ],
    }


def test_decision_json_writes_absent_optional_amounts_and_dates_as_null():
    """No basis, no amount at stake, no proposed refund and no dates: each is null, not left
    out."""
    out = decision_to_json(decision(at_stake=None, proposed_refund=None, effective_at=None,
                                    access_until=None, balance_due_by=None, notice_by=None,
                                    line_items=(), flags=(), reasons=(), basis=None))
    assert out["basis"] is None
    assert out["amounts"]["at_stake"] is None
    assert out["amounts"]["proposed_refund"] is None
    assert out["dates"] == {"effective_at": None, "access_until": None,
                            "balance_due_by": None, "notice_by": None}
    assert (out["line_items"], out["flags"], out["reasons"]) == ([], [], [])


def test_failed_lists_only_the_reasons_that_do_not_hold():
    """Decision.failed: the reasons whose clause the case does not satisfy, in order."""
    d = decision()
    assert d.failed == (Reason("003 §1.2", "Details required.", False, "no invoice"),)
    assert decision(reasons=d.reasons[:1]).failed == ()
