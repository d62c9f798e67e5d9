"""Seed 003 §1.1a: the amount each requested add-on takes off a guarantee refund, as the seed
states it, asserted line by line."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from policy import Outcome
from policy.money import Money

from .builders import T0, case, decide, order

SEED_003 = next((Path(__file__).resolve().parents[3] / "docs" / "seeds").glob("003_*.txt"))

# 003 §1.1a, transcribed: add-on, the label the seed gives it, and its deduction in US cents.
DEDUCTIONS = {
    "ssl_certificate": ("SSL Certificate", 1000),
    "domain_reseller": ("Domain Reseller", 100),
    "knowledgebase_articles": ("Knowledgebase Articles", 1000),
    "end_user_support": ("End User Support", 500),
    "legal_document_templates": ("Legal document templates", 1000),
    "website_templates": ("Website templates", 1000),
}


def claim(*addons: str, amount: int = 12000) -> dict[str, Any]:
    """A day-3 guarantee claim on a new 120.00 web-hosting order with ``addons`` requested."""
    return case("refund", T0 + timedelta(days=3),
                order=order(addons=list(addons), amount={"amount": amount, "currency": "USD"}))


def test_the_table_is_the_seed_list_of_deductions() -> None:
    """Each "<item>: $N deduction" line of seed 003 is in the table, in cents, and nothing else."""
    seed = SEED_003.read_text(encoding="utf-8")
    listed = {label: int(dollars) * 100
              for label, dollars in re.findall(r"^(.+): \$(\d+) deduction$", seed, re.M)}
    assert listed == dict(DEDUCTIONS.values())


@pytest.mark.parametrize(("addon", "label", "cents"),
                         [(addon, *item) for addon, item in DEDUCTIONS.items()],
                         ids=list(DEDUCTIONS))
def test_each_add_on_deducts_exactly_its_seed_amount(addon: str, label: str, cents: int) -> None:
    """One add-on: one deduction line of its seed amount, citing its 1.1a item; the rest back."""
    d = decide("theopenhost", claim(addon))
    assert d.outcome is Outcome.PARTIAL_REFUND
    assert [(i.kind, i.label, i.amount, i.clause) for i in d.line_items] == [
        ("deduction", label, Money(cents, "USD"), f"003 §1.1a {label}")]
    assert (d.refund, d.retained) == (Money(12000 - cents, "USD"), Money(cents, "USD"))


def test_every_add_on_together_deducts_the_sum_of_the_seed_amounts() -> None:
    """All six requested: 10 + 1 + 10 + 5 + 10 + 10 = 46 dollars kept, 74 dollars refunded."""
    d = decide("theopenhost", claim(*DEDUCTIONS))
    assert sorted((i.label, i.amount.amount) for i in d.line_items) == sorted(
        DEDUCTIONS.values())
    assert (d.refund, d.retained) == (Money(7400, "USD"), Money(4600, "USD"))
