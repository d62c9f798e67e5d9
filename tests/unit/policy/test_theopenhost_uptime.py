"""Seed 003 (TheOpenHost) §1.11-1.13: uptime guarantee credits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from policy import Outcome

from .builders import T0, case, decide, failed, identity, iso, money, order

HOUR = timedelta(hours=1)


def claim(measured: str, category: str = "web_hosting", after: timedelta = HOUR,
          amount: int = 10000, ident: dict[str, Any] | None = None,
          **uptime_extra: Any) -> dict[str, Any]:
    extra = {"identity": identity(**(ident or {}))}
    return case("uptime_credit", T0 + after, request_extra=extra,
                order=order(product_category=category, amount=money(amount)),
                uptime={"measured_percent": measured, "incident_at": iso(T0)} | uptime_extra)


WEB = [("99.9", None), ("99.89", 70), ("99.895", 70), ("99.5", 70), ("99.49", 80),
       ("99.495", 80), ("99.0", 80), ("98.99", 90), ("98", 90), ("97.995", 100),
       ("97.99", 100), ("95", 100), ("94.99", 100), ("50", 100)]
VPS = [("99.9", None), ("99.89", 10), ("99.5", 10), ("99.49", 20), ("99.0", 20), ("98.99", 30),
       ("98", 30), ("97.99", 40), ("95", 40)]


@pytest.mark.parametrize(("measured", "percent"), WEB, ids=[m for m, _ in WEB])
def test_web_hosting_credit_follows_the_schedule_at_every_band_edge(measured: str,
                                                                    percent: int | None) -> None:
    """1.12a with half-open bands: gaps go to the lower band, 99.0 earns 80%."""
    d = decide("theopenhost", claim(measured), now=T0 + HOUR)
    if percent is None:
        assert d.outcome is Outcome.NO_ACTION and d.credit.amount == 0
    else:
        assert d.outcome is Outcome.SERVICE_CREDIT and d.credit.amount == 100 * percent


@pytest.mark.parametrize(("measured", "percent"), VPS, ids=[m for m, _ in VPS])
def test_vps_credit_follows_the_network_schedule(measured: str, percent: int | None) -> None:
    """1.12b bands for VPS and dedicated servers."""
    d = decide("theopenhost", claim(measured, "vps"), now=T0 + HOUR)
    assert d.credit.amount == (0 if percent is None else 100 * percent)


@pytest.mark.parametrize(("measured", "credit"), [
    ("94.99", 4000 + 300), ("91.7", 4000 + 300), ("91.6", 4000 + 600), ("80", 4000 + 1500),
    ("20", 10000),
], ids=["0.003 days counts as one", "0.99 days counts as one", "1.02 days counts as two",
        "4.5 days counts as five", "capped at 100%"])
def test_vps_downtime_beyond_95_percent_adds_90_percent_of_a_day_per_further_day(
        measured: str, credit: int) -> None:
    """40% plus 90% of the daily equivalent per started day below 95%, capped by 1.12c."""
    d = decide("theopenhost", claim(measured, "vps", amount=10000), now=T0 + HOUR)
    assert d.credit.amount == credit
    assert d.credit.amount + d.retained.amount == 10000


@pytest.mark.parametrize(("after", "outcome"), [
    (72 * HOUR, Outcome.SERVICE_CREDIT), (72 * HOUR + timedelta(seconds=1), Outcome.DENY),
], ids=["exactly 72 hours", "72 hours and a second"])
def test_uptime_claims_are_void_after_72_hours(after: timedelta, outcome: Outcome) -> None:
    """1.13: claims within 72 hours of the incident count."""
    d = decide("theopenhost", claim("99.0", after=after), now=T0 + after)
    assert d.outcome is outcome


@pytest.mark.parametrize(("change", "clause"), [
    ({"cause": "denial_of_service"}, "003 §1.12d"),
    ({"ident": {"username": None}}, "003 §1.13"),
    ({"ident": {"paypal_subscription_id": None, "order_number": None}}, "003 §1.13"),
    ({"category": "license"}, "003 §1.12c"),
    ({"category": "dedicated_ip"}, "003 §1.12c"),
    ({"category": "cloud_server"}, "003 §1.11"),
], ids=["denial of service", "no username", "no subscription id or order number", "license",
        "dedicated IP", "no guarantee for cloud servers"])
def test_invalid_uptime_claims_are_denied_with_the_clause(change: dict[str, Any],
                                                          clause: str) -> None:
    """Excluded causes, products and incomplete claims get no credit."""
    d = decide("theopenhost", claim("99.0", **change), now=T0 + HOUR)
    assert d.outcome is Outcome.DENY and clause in failed(d)


def test_third_party_monitoring_figures_go_to_review() -> None:
    """1.11b: the merchant's own monitoring decides, not the customer's tool."""
    d = decide("theopenhost", claim("99.0", source="third_party"), now=T0 + HOUR)
    assert d.outcome is Outcome.NEEDS_REVIEW and failed(d) == {"003 §1.11b"}


def test_a_yearly_payment_is_credited_on_its_monthly_equivalent() -> None:
    """Credit is a share of the equivalent monthly payment (12000 a year is 1000 a month)."""
    data = claim("99.0")
    data["order"]["term_months"] = 12
    data["order"]["amount"] = money(12000)
    d = decide("theopenhost", data, now=T0 + HOUR)
    assert d.at_stake is not None and d.at_stake.amount == 1000 and d.credit.amount == 800


def test_a_claim_against_a_met_guarantee_owes_nothing_and_is_not_a_denial() -> None:
    """1.11/1.12: 99.95% against 99.9% is no failure, so no credit; the claim was not wrong
    either, so the outcome is no_action with the comparison as its reason."""
    d = decide("theopenhost", claim("99.95"), now=T0 + HOUR)
    assert d.outcome is Outcome.NO_ACTION and d.credit.amount == 0
    (reason,) = [r for r in d.reasons if r.clause == "003 §1.11"]
    assert not reason.holds and "99.95% against the 99.9% guarantee" in reason.detail
    assert "no credit is owed" in reason.detail


def test_a_met_guarantee_claimed_too_late_is_still_denied_for_the_lateness() -> None:
    """An invalid claim stays a denial whatever it measured (1.13's 72 hours)."""
    d = decide("theopenhost", claim("99.95", after=73 * HOUR), now=T0 + 73 * HOUR)
    assert d.outcome is Outcome.DENY and "003 §1.13" in failed(d)
