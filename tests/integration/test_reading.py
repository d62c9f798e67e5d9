"""``ledger.db.reading``: a query answered without autoflush gives autoflush's answer.

The drain asks many questions of one transaction and lets its writes wait; ``reading`` flushes
only when a pending change touches the rows a question reads. These tests hold it to the one
promise that matters: the same answer as a plain autoflushed query, whatever is pending.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ledger.db import reading
from ledger.models import Payment

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


# A pending change: add a payment to a subscription, move one to another, or re-date one.
_change = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(SUBS)),
    st.tuples(st.just("move"), st.integers(0, 5), st.sampled_from(SUBS)),
    st.tuples(st.just("redate"), st.integers(0, 5), st.integers(-30, 30)),
)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(committed=st.lists(st.sampled_from(SUBS), min_size=1, max_size=6),
       changes=st.lists(_change, max_size=6), asked=st.sampled_from(SUBS[:3]))
def test_the_answer_is_autoflushs_whatever_is_pending(
        container: Any, committed: list[str | None], changes: list[tuple[Any, ...]],
        asked: str) -> None:
    with container.sessions() as session, session.begin():
        session.execute(delete(Payment).where(Payment.merchant == MERCHANT))
        stored = [_payment(i, sub) for i, sub in enumerate(committed)]
        session.add_all(stored)
        session.flush()
        added = 100
        for change in changes:
            if change[0] == "add":
                session.add(_payment(added, change[1]))
                added += 1
            elif change[0] == "move":
                stored[change[1] % len(stored)].subscription_ref = change[2]
            else:
                target = stored[change[1] % len(stored)]
                target.paid_at = T0 + timedelta(days=change[2])
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


def test_a_model_named_whole_flushes_on_any_change_to_it(container: Any) -> None:
    with container.sessions() as session, session.begin():
        pending = _payment(3, None)
        session.add(pending)
        with reading(session, Payment):
            pass
        assert pending not in session.new
        session.rollback()
