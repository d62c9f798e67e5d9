"""Seed 003 (TheOpenHost): the 16-day guarantee, deductions, exclusions, non-refundable funds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from policy import Outcome

from .builders import T0, case, decide, failed, money, order

DAY = timedelta(days=1)


def hosting_refund(at_day: float = 3, account: dict[str, Any] | None = None,
                   **order_extra: Any) -> dict[str, Any]:
    data = case("refund", T0 + at_day * DAY, order=order(**order_extra))
    data["account"] = account or {}
    return data


def test_a_web_hosting_refund_within_16_days_is_full() -> None:
    """A new web hosting account without add-ons gets everything back."""
    d = decide("theopenhost", hosting_refund())
    assert d.outcome is Outcome.FULL_REFUND and d.refund.amount == 12000


@pytest.mark.parametrize(("day", "outcome"), [(15, Outcome.FULL_REFUND), (16, Outcome.DENY)],
                         ids=["day 15", "day 16"])
def test_the_guarantee_ends_once_16_days_have_passed(day: int, outcome: Outcome) -> None:
    """On calendar day 16 after sign-up, 16 days have passed and the guarantee is gone."""
    d = decide("theopenhost", hosting_refund(at_day=day))
    assert d.outcome is outcome
    if outcome is Outcome.DENY:
        assert failed(d) == {"003 §1.1f", "003 §1.1e"}


@pytest.mark.parametrize(("addons", "deducted"), [
    (["ssl_certificate"], 1000),
    (["domain_reseller"], 100),
    (["knowledgebase_articles"], 1000),
    (["end_user_support"], 500),
    (["legal_document_templates"], 1000),
    (["website_templates"], 1000),
    (["ssl_certificate", "end_user_support", "unlisted_addon"], 1500),
], ids=["SSL", "domain reseller", "knowledgebase", "end user support", "legal templates",
        "website templates", "several plus an unlisted one"])
def test_requested_add_ons_are_deducted_from_the_refund(addons: list[str], deducted: int) -> None:
    """Each add-on requested or used costs its listed deduction (1.1a)."""
    d = decide("theopenhost", hosting_refund(addons=addons))
    assert d.outcome is Outcome.PARTIAL_REFUND
    assert d.refund.amount == 12000 - deducted
    assert d.retained.amount == deducted
    assert sum(i.amount.amount for i in d.line_items) == deducted


def test_deductions_never_push_the_refund_below_zero() -> None:
    """A tiny order with many add-ons refunds nothing and retains what was paid."""
    d = decide("theopenhost", hosting_refund(amount=money(700),
                                             addons=["ssl_certificate", "website_templates"]))
    assert d.refund.amount == 0 and d.retained.amount == 700


def test_a_deduction_in_a_currency_the_pack_does_not_list_goes_to_review() -> None:
    """The $10 deduction is not converted to EUR: a person decides."""
    d = decide("theopenhost", hosting_refund(amount=money(12000, "EUR"),
                                             addons=["ssl_certificate"]))
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert any("EUR" in r.detail for r in d.reasons if not r.holds)


@pytest.mark.parametrize("category", ["vps", "license", "dedicated_server", "dedicated_ip",
                                      "cloud_server", "management", "custom_administration",
                                      "late_fee", "administration_fee", "out_of_scope_support"])
def test_excluded_products_get_no_money_back(category: str) -> None:
    """Everything listed in 1.1b is outside the guarantee."""
    d = decide("theopenhost", hosting_refund(product_category=category))
    assert d.outcome is Outcome.DENY and failed(d) == {"003 §1.1b"}


def test_an_unknown_product_category_goes_to_review() -> None:
    """A category the pack does not know is classified by a person, not guessed."""
    assert decide("theopenhost", hosting_refund(product_category="email")).outcome \
        is Outcome.NEEDS_REVIEW


@pytest.mark.parametrize(("account", "clause"), [
    ({"prior_guarantee_refunds": 1}, "003 §1.1c"),
    ({"violations": 1}, "003 §1.1d"),
], ids=["returning customer who used it", "violated the agreement"])
def test_returning_customers_and_violators_lose_the_guarantee(account: dict[str, Any],
                                                              clause: str) -> None:
    """1.1c and 1.1d each deny the guarantee."""
    d = decide("theopenhost", hosting_refund(account=account))
    assert d.outcome is Outcome.DENY and failed(d) == {clause}


def test_a_renewal_is_not_a_sign_up_and_has_no_guarantee() -> None:
    """The 16 days run from sign-up; a renewal order is denied under 1.1f."""
    d = decide("theopenhost", hosting_refund(type="renewal"))
    assert d.outcome is Outcome.DENY and failed(d) == {"003 §1.1f"}


@pytest.mark.parametrize(("category", "clause"), [("account_credit", "003 §1.8"),
                                                  ("domain_reseller_funds", "003 §1.8a")])
def test_account_credit_and_domain_reseller_funds_are_never_refunded(category: str,
                                                                     clause: str) -> None:
    """Funds added as credit or to the domain reseller are not refundable."""
    d = decide("theopenhost", hosting_refund(product_category=category))
    assert d.outcome is Outcome.DENY and failed(d) == {clause}
