"""The Case's own questions, at their edges: an invoice due at exactly ``now`` is due, and an
identity detail of blanks was not given. (Behaviour the mutation run found unpinned.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from policy import case_from_json
from policy.case import Identity

from .builders import T0, case, invoices, order


def test_an_unpaid_invoice_is_due_from_the_instant_of_its_due_date() -> None:
    data = case("cancellation", T0, order=order())
    data["account"] = {"invoices": invoices(("AT", T0, False), ("LATER", T0 + timedelta(
        seconds=1), False), ("PAID", T0 - timedelta(days=1), True))}
    due = case_from_json(data).due_invoices(T0)
    assert [i.number for i in due] == ["AT"]


@pytest.mark.parametrize(("value", "given"), [("jdoe", True), (" jdoe ", True), ("", False),
                                              ("   ", False), (None, False)])
def test_an_identity_detail_counts_only_when_it_is_not_blank(value: str | None,
                                                             given: bool) -> None:
    assert Identity(username=value).has("username") is given
