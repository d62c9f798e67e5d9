"""A fact the case does not give turns the decision into needs_review, naming the fact and
clause."""

from __future__ import annotations

from policy import Outcome

from .builders import T0, case, decide, order


def test_a_missing_fact_is_named_with_the_clause_that_needs_it():
    """A cancellation without next_billing_at goes to review citing that field and its clause."""
    d = decide("cloudbehind", case("cancellation", T0, order=order()))
    assert d.outcome is Outcome.NEEDS_REVIEW
    missing = [r for r in d.reasons if not r.holds]
    assert [(r.clause, r.detail) for r in missing] == [
        ("002 §billing.3",
         "the case does not give order.next_billing_at, which this clause needs")]
    assert missing[0].text
