"""Seed 002 (CloudBehind VPN): the 7-day guarantee for new orders, renewals, auto-renewal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policy import Outcome

from .builders import GIB, T0, case, decide, failed, order

DAY = timedelta(days=1)


def vpn_refund(at_day: float = 2, usage: dict[str, Any] | None = None,
               request_extra: dict[str, Any] | None = None, account: dict[str, Any] | None = None,
               **order_extra: Any) -> dict[str, Any]:
    data = case("refund", T0 + at_day * DAY, request_extra=request_extra,
                order=order(product_category="vpn", amount={"amount": 5999, "currency": "USD"},
                            **order_extra),
                usage=usage or {"bandwidth_bytes": GIB, "sessions": 10})
    data["account"] = account or {}
    return data


def test_a_clean_new_order_claim_gets_a_full_refund() -> None:
    """All six new-order conditions hold, so the whole order is refunded."""
    d = decide("cloudbehind", vpn_refund())
    assert d.outcome is Outcome.FULL_REFUND
    assert d.refund.amount == 5999 and d.retained.amount == 0
    assert {r.clause for r in d.reasons} >= {f"002 §new.{i}" for i in range(1, 7)}


@pytest.mark.parametrize(("received", "outcome"), [
    (T0.replace(hour=23, minute=59) + 7 * DAY, Outcome.FULL_REFUND),
    (T0.replace(hour=0, minute=0) + 8 * DAY, Outcome.DENY),
], ids=["day 7 late evening is within", "day 8 at midnight is outside"])
def test_the_new_order_window_keeps_calendar_day_7_and_drops_day_8(received: Any,
                                                                   outcome: Outcome) -> None:
    """Day 7 after the order date (UTC) is still within 7 days; day 8 is not."""
    data = vpn_refund()
    data["request"]["received_at"] = received.isoformat()
    d = decide("cloudbehind", data)
    assert d.outcome is outcome
    assert ("002 §new.1" in failed(d)) is (outcome is Outcome.DENY)


@pytest.mark.parametrize(("used", "sessions", "term", "outcome", "failing"), [
    (10 * GIB - 1, 100, 1, Outcome.FULL_REFUND, set()),
    (10 * GIB, 100, 1, Outcome.DENY, {"002 §new.4"}),
    (10 * GIB - 1, 101, 1, Outcome.DENY, {"002 §new.5"}),
    (10 * GIB, 101, 1, Outcome.DENY, {"002 §new.4", "002 §new.5"}),
    (10 * GIB, 50, 12, Outcome.NEEDS_REVIEW, {"002 §new.4"}),
    (10 * GIB, 101, 12, Outcome.DENY, {"002 §new.4", "002 §new.5"}),
], ids=["just under 10GB and 100 sessions", "exactly 10GB", "101 sessions", "both over",
        "over 10GB on a 12-month order goes to review", "over 10GB and sessions on 12 months"])
def test_bandwidth_and_session_limits_sit_on_their_boundaries(used: int, sessions: int, term: int,
                                                               outcome: Outcome,
                                                               failing: set[str]) -> None:
    """Below 10 GiB and at most 100 sessions pass; every failed limit is listed."""
    d = decide("cloudbehind", vpn_refund(usage={"bandwidth_bytes": used, "sessions": sessions},
                                         term_months=term))
    assert d.outcome is outcome
    assert failed(d) == failing


def test_over_the_bandwidth_limit_on_a_long_order_proposes_charging_the_months_begun() -> None:
    """A 12-month order over 10GB gets a proposed refund of 11/12, for a person to approve."""
    d = decide("cloudbehind", vpn_refund(usage={"bandwidth_bytes": 11 * GIB, "sessions": 3},
                                         term_months=12))
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert d.refund.amount == 0
    assert d.proposed_refund is not None and d.proposed_refund.amount == 5999 - 499
    assert any(r.clause == "002 §new.partial" for r in d.reasons)


@pytest.mark.parametrize(("change", "clause"), [
    ({"account": {"suspended_for_breach": True}}, "002 §new.2"),
    ({"request_extra": {"identity": {}}}, "002 §new.3"),
    ({"request_extra": {"reason": ""}}, "002 §new.3"),
    ({"account": {"prior_guarantee_refunds": 1}}, "002 §new.6"),
], ids=["suspended for breach", "no user name", "no reason", "refunded before"])
def test_each_failed_new_order_condition_denies_with_its_clause(change: dict[str, Any],
                                                                 clause: str) -> None:
    """A single failed condition denies and cites exactly that clause."""
    d = decide("cloudbehind", vpn_refund(**change))
    assert d.outcome is Outcome.DENY
    assert failed(d) == {clause}


def test_a_denial_lists_every_failed_new_order_clause() -> None:
    """Late, suspended, anonymous, heavy and repeat: all six clauses are listed."""
    d = decide("cloudbehind", vpn_refund(
        at_day=9, usage={"bandwidth_bytes": 20 * GIB, "sessions": 500},
        request_extra={"identity": {}}, account={"suspended_for_breach": True,
                                                 "prior_guarantee_refunds": 2}))
    assert d.outcome is Outcome.DENY
    assert failed(d) == {f"002 §new.{i}" for i in range(1, 7)}


def renewal(at_day: float = 3, used: bool = False, **order_extra: Any) -> dict[str, Any]:
    order: dict[str, Any] = {"type": "renewal", "auto_renew": True, "term_months": 6}
    return vpn_refund(at_day, usage={"bandwidth_bytes": 0, "sessions": 0,
                                     "used_since_renewal": used},
                      **(order | order_extra))


@pytest.mark.parametrize(("day", "outcome"), [(14, Outcome.FULL_REFUND), (15, Outcome.DENY)],
                         ids=["day 14", "day 15"])
def test_the_renewal_window_keeps_day_14_and_drops_day_15(day: int, outcome: Outcome) -> None:
    """Renewal refunds are claimed within 14 calendar days of the renewal date."""
    assert decide("cloudbehind", renewal(at_day=day)).outcome is outcome


@pytest.mark.parametrize(("change", "clause"), [
    ({"used": True}, "002 §renewal.4"),
    ({"payment_provider": "onebip"}, "002 §renewal.5"),
    ({"payment_method": "onebip"}, "002 §renewal.5"),
], ids=["used since renewal", "paid via OneBip provider", "paid via OneBip method"])
def test_renewals_used_since_renewal_or_paid_via_onebip_are_denied(change: dict[str, Any],
                                                                   clause: str) -> None:
    """Use since the renewal date and OneBip payment each deny a renewal refund."""
    d = decide("cloudbehind", renewal(**change))
    assert d.outcome is Outcome.DENY and failed(d) == {clause}


def test_a_forgotten_auto_renewal_gets_the_renewal_rules_and_shows_the_reminder_date() -> None:
    """Auto-renewed orders cite the forgot-to-turn-off clause and the 5-day reminder."""
    d = decide("cloudbehind", renewal())
    assert d.outcome is Outcome.FULL_REFUND
    assert {"002 §billing.4", "002 §billing.2"} <= {r.clause for r in d.reasons}
    assert d.notice_by == T0 - 5 * DAY


def test_the_reminder_date_counts_calendar_days_across_a_clock_change() -> None:
    """Renewed at local midnight on 10 March 2025 in New York, the day after the clocks went
    forward: 5 days before is 5 March at local midnight (a day of 23 hours is still one day),
    not 5 x 24 hours before (4 March, 23:00)."""
    renewed = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)  # 00:00 EDT
    data = renewal(ordered_at=renewed.isoformat())
    data["request"]["received_at"] = (renewed + 3 * DAY).isoformat()
    data["time_zone"] = "America/New_York"
    d = decide("cloudbehind", data, now=renewed + 3 * DAY)
    assert d.notice_by == datetime(2025, 3, 5, 5, 0, tzinfo=UTC)  # 00:00 EST
    assert any("reminder was due by 2025-03-05" in r.detail for r in d.reasons)


def test_a_renewal_term_other_than_1_6_or_12_months_goes_to_review() -> None:
    """Contracts are 1, 6 or 12 months; anything else is not decided automatically."""
    d = decide("cloudbehind", renewal(term_months=3))
    assert d.outcome is Outcome.NEEDS_REVIEW and failed(d) == {"002 §billing.2"}


def test_a_refund_without_usage_figures_goes_to_review() -> None:
    """The bandwidth and session rules need usage; without it a person decides."""
    data = vpn_refund()
    del data["usage"]
    assert decide("cloudbehind", data).outcome is Outcome.NEEDS_REVIEW


@pytest.mark.parametrize(("offset", "outcome", "charge"), [
    (-timedelta(seconds=1), Outcome.CANCEL_AT_PERIOD_END, 0),
    (timedelta(0), Outcome.CANCEL_NEXT_PERIOD, 5999),
], ids=["a second before billing", "at the billing moment"])
def test_turning_off_auto_renewal_before_the_billing_date_avoids_the_next_period(
        offset: timedelta, outcome: Outcome, charge: int) -> None:
    """Cancelling before the next billing date ends the subscription at the period end."""
    billing = T0 + 30 * DAY
    data = case("cancellation", billing + offset,
                order=order(product_category="vpn", amount={"amount": 5999, "currency": "USD"},
                            auto_renew=True, next_billing_at=billing.isoformat()))
    d = decide("cloudbehind", data)
    assert d.outcome is outcome
    assert d.charge.amount == charge
    assert any(r.clause == "002 §cancel.1" for r in d.reasons)
