"""``ledger.db.reading`` and ``current_rows``: a question answered without autoflush gives
autoflush's answer.

The drain asks many questions of one transaction and lets its writes wait; ``reading`` flushes
only when a pending change touches the rows a question reads, and ``current_rows`` never
flushes (it adds what is pending to what the database answers). These tests hold both to the one
promise that matters: the same answer as a plain autoflushed query, whatever is pending.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ledger.db import Rows, current_rows, one_of, reading
from ledger.models import Decision, Payment

MERCHANT = "reading-test"
SUBS = ("sub_a", "sub_b", "sub_c", None)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _payment(n: int, sub: str | None) -> Payment:
    return Payment(merchant=MERCHANT, provider="stripe", provider_id=f"ch_{n}", version_at=T0,
                   version_rank=0, version_event=f"evt_{n}", livemode=False, kind="charge",
                   subscription_ref=sub, status="succeeded", amount=100 + n, currency="USD",
                   paid_at=T0 + timedelta(days=n))


def _latest(session: Session, sub: str) -> list[str]:
    return list(session.scalars(select(Payment.provider_id).where(
        Payment.merchant == MERCHANT, Payment.subscription_ref == sub)
        .order_by(Payment.paid_at.desc(), Payment.provider_id)))


# A pending change: add a payment to a subscription, move one to another, re-date one, change
# its kind, or delete one.
_change = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(SUBS)),
    st.tuples(st.just("move"), st.integers(0, 5), st.sampled_from(SUBS)),
    st.tuples(st.just("redate"), st.integers(0, 5), st.integers(-30, 30)),
    st.tuples(st.just("kind"), st.integers(0, 5), st.sampled_from(("charge", "sale"))),
    st.tuples(st.just("delete"), st.integers(0, 5)),
)


def _stored_then_changed(session: Session, committed: list[str | None],
                         changes: list[tuple[Any, ...]]) -> None:
    """Payments of ``committed``'s subscriptions written (flushed), then ``changes`` pending."""
    session.execute(delete(Payment).where(Payment.merchant == MERCHANT))
    stored = [_payment(i, sub) for i, sub in enumerate(committed)]
    session.add_all(stored)
    session.flush()
    added = 100
    for change in changes:
        target = stored[change[1] % len(stored)] if change[0] != "add" else None
        if change[0] == "add":
            session.add(_payment(added, change[1]))
            added += 1
        elif change[0] == "move":
            target.subscription_ref = change[2]  # type: ignore[union-attr]
        elif change[0] == "redate":
            target.paid_at = T0 + timedelta(days=change[2])  # type: ignore[union-attr]
        elif change[0] == "kind":
            target.kind = change[2]  # type: ignore[union-attr]
        elif target in session and target not in session.deleted:
            session.delete(target)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(committed=st.lists(st.sampled_from(SUBS), min_size=1, max_size=6),
       changes=st.lists(_change, max_size=6), asked=st.sampled_from(SUBS[:3]))
def test_the_answer_is_autoflushs_whatever_is_pending(
        container: Any, committed: list[str | None], changes: list[tuple[Any, ...]],
        asked: str) -> None:
    with container.sessions() as session, session.begin():
        _stored_then_changed(session, committed, changes)
        with reading(session, (Payment.subscription_ref, asked)):
            answered = _latest(session, asked)
        assert answered == _latest(session, asked)  # this one autoflushes everything
        session.rollback()


def test_a_change_elsewhere_waits_and_a_change_here_is_flushed(container: Any) -> None:
    with container.sessions() as session, session.begin():
        session.execute(delete(Payment).where(Payment.merchant == MERCHANT))
        session.add(_payment(1, "sub_a"))
        session.flush()
        elsewhere = _payment(2, "sub_b")
        session.add(elsewhere)
        with reading(session, (Payment.subscription_ref, "sub_a")):
            assert _latest(session, "sub_a") == ["ch_1"]
        assert elsewhere in session.new  # not flushed: nothing it could change was asked
        with reading(session, (Payment.subscription_ref, "sub_b")):
            assert _latest(session, "sub_b") == ["ch_2"]
        assert elsewhere not in session.new
        # Moved away from sub_a: its old value counts too, so sub_a's answer loses it.
        moved = session.scalars(select(Payment).where(Payment.provider_id == "ch_1")).one()
        moved.subscription_ref = "sub_c"
        with reading(session, (Payment.subscription_ref, "sub_a")):
            assert _latest(session, "sub_a") == []
        session.rollback()


def test_a_row_not_inserted_yet_is_not_the_row_with_a_given_id(container: Any) -> None:
    """Reading one stored payment by its id (``refundable.lock``) leaves the batch's new
    payments unflushed: a row not inserted has no id yet, so it cannot be that row. A change
    to the stored row itself is still flushed first."""
    with container.sessions() as session, session.begin():
        stored = _payment(4, None)
        session.add(stored)
        session.flush()
        pending = _payment(5, None)
        session.add(pending)
        with reading(session, (Payment.id, stored.id)):
            assert session.scalars(select(Payment.provider_id).where(
                Payment.id == stored.id)).one() == "ch_4"
        assert pending in session.new
        stored.amount = 999
        with reading(session, (Payment.id, stored.id)):
            assert session.scalars(select(Payment.amount).where(
                Payment.id == stored.id)).one() == 999
        assert pending not in session.new  # that flush wrote everything pending
        session.rollback()


def test_a_model_named_whole_flushes_on_any_change_to_it(container: Any) -> None:
    with container.sessions() as session, session.begin():
        pending = _payment(3, None)
        session.add(pending)
        with reading(session, Payment):
            pass
        assert pending not in session.new
        session.rollback()


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(committed=st.lists(st.sampled_from(SUBS), min_size=1, max_size=6),
       changes=st.lists(_change, max_size=8), asked=st.sampled_from(SUBS[:3]),
       kinds=st.sampled_from((("charge",), ("sale",), ("charge", "sale"))))
def test_current_rows_are_the_flushed_answer_without_a_flush(
        container: Any, committed: list[str | None], changes: list[tuple[Any, ...]],
        asked: str, kinds: tuple[str, ...]) -> None:
    """Whatever is added, moved out of or into the question, changed or deleted, and not yet
    flushed: the rows current_rows finds are those a flush and a query find, and nothing is
    flushed to find them."""
    with container.sessions() as session, session.begin():
        _stored_then_changed(session, committed, changes)
        pending = (set(session.new), set(session.dirty), set(session.deleted))
        found = current_rows(session, Payment, merchant=MERCHANT, subscription_ref=asked,
                             kind=kinds)
        assert (set(session.new), set(session.dirty), set(session.deleted)) == pending
        flushed = session.scalars(select(Payment.provider_id).where(  # autoflushes
            Payment.merchant == MERCHANT, Payment.subscription_ref == asked,
            Payment.kind.in_(kinds))).all()
        assert sorted(p.provider_id for p in found) == sorted(flushed)
        assert len(found) == len(set(map(id, found)))  # each row once
        session.rollback()


def test_current_rows_refuses_none(container: Any) -> None:
    """SQL's = NULL matches nothing where Python's == would: None is refused, not answered."""
    with container.sessions() as session, session.begin(), \
            pytest.raises(ValueError, match="None"):
        current_rows(session, Payment, merchant=MERCHANT, subscription_ref=None)


def _decision(n: int, account: str, kind: str) -> Decision:
    return Decision(id=f"dec_reading_{n}", merchant=MERCHANT, account_ref=account,
                    pack="p", request_kind=kind, outcome="full_refund", case={}, decision={},
                    evaluated_at=T0)


def test_rows_of_several_columns_flush_only_for_a_row_that_may_match_them_all(
        container: Any) -> None:
    """A pending decision of the account that is not a refund cannot change a question about
    the account's refunds: no flush. One that is, or was before its pending change, does."""
    with container.sessions() as session, session.begin():
        session.execute(delete(Decision).where(Decision.merchant == MERCHANT))
        other = _decision(1, "cus_a", "overpayment")
        session.add(other)
        read = Rows.where(Decision, account_ref="cus_a", request_kind="refund")
        with reading(session, read):
            pass
        assert other in session.new
        refund = _decision(2, "cus_a", "refund")
        session.add(refund)
        with reading(session, read):
            pass
        assert refund not in session.new and other not in session.new
        refund.request_kind = "cancellation"  # it was a refund: the question must see it leave
        with reading(session, read):
            pass
        assert refund not in session.dirty
        session.rollback()


def test_one_of_matches_whole_values_only(container: Any) -> None:
    """A list of ids sent as one array (PostgreSQL) is compared as text: an id longer than the
    column allows never matches the stored one it begins with (a cast to the column's
    VARCHAR(255) would cut it to that)."""
    stored = "ch_" + "x" * 252
    with container.sessions() as session, session.begin():
        row = _payment(6, None)
        row.provider_id = stored
        session.add(row)
        session.flush()
        postgres = session.get_bind().dialect.name == "postgresql"
        query = select(Payment.provider_id).where(one_of(Payment.provider_id, "ids", postgres))
        assert session.scalars(query, {"ids": [stored + "y"]}).all() == []
        assert session.scalars(query, {"ids": [stored, "ch_other"]}).all() == [stored]
        session.rollback()
