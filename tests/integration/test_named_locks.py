"""Named locks (``ledger.locks``) on PostgreSQL: held until the transaction ends, asked for once
per transaction, and asked for again after a savepoint that took them is rolled back (which
gives them back). Another connection tells whether a lock is held: it cannot take it."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from ledger.locks import serialize, serialize_all
from service.bootstrap import Container
from tests.support.locks import named_lock_free


@pytest.fixture
def pg(container: Container) -> Container:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: it needs no named locks")
    return container


def test_a_lock_is_held_until_the_transaction_ends(pg: Container) -> None:
    with pg.sessions() as session, session.begin():
        serialize_all(session, [("test", "a"), ("test", "b")])
        assert not named_lock_free(pg, "test", "a") and not named_lock_free(pg, "test", "b")
    assert named_lock_free(pg, "test", "a") and named_lock_free(pg, "test", "b")


def test_a_lock_given_back_by_a_rolled_back_savepoint_is_taken_again(pg: Container) -> None:
    with pg.sessions() as session, session.begin():
        serialize(session, "test", "outer")
        savepoint = session.begin_nested()
        serialize(session, "test", "inner")
        savepoint.rollback()
        assert named_lock_free(pg, "test", "inner")  # PostgreSQL gave it back with the savepoint
        assert not named_lock_free(pg, "test", "outer")
        serialize(session, "test", "inner")
        assert not named_lock_free(pg, "test", "inner")


def test_a_lock_is_asked_for_once_per_transaction(pg: Container) -> None:
    asked: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "pg_advisory_xact_lock" in statement:
            asked.append(statement)

    event.listen(pg.engine, "before_cursor_execute", count)
    try:
        with pg.sessions() as session, session.begin():
            serialize(session, "test", "once")
            serialize_all(session, [("test", "once"), ("test", "twice")])
            serialize(session, "test", "twice")
            assert len(asked) == 2  # "once", then "twice" alone
        with pg.sessions() as session, session.begin():
            serialize(session, "test", "once")  # a new transaction asks again
            assert len(asked) == 3 and not named_lock_free(pg, "test", "once")
    finally:
        event.remove(pg.engine, "before_cursor_execute", count)


def test_a_paypal_sales_period_check_holds_its_subscriptions_lock(pg: Container) -> None:
    """Sales of one subscription are applied by the workers of different partitions: the check
    for a second payment in a period takes the subscription's lock (merchant and id) first and
    holds it to the end of the transaction, so two sales of one period are compared once."""
    from datetime import UTC, datetime

    from workers.context import EventContext
    from workers.reactions import paypal_period_paid_twice

    now = datetime(2026, 11, 1, tzinfo=UTC)
    ctx = EventContext(merchant="theopenhost", provider="paypal", event_id="WH-LOCKED",
                       event_type="PAYMENT.SALE.COMPLETED", created_at=now, livemode=False,
                       payload={"resource": {"id": "SALE-LOCKED",
                                             "billing_agreement_id": "I-LOCKED"}})
    with pg.sessions() as session, session.begin():
        assert paypal_period_paid_twice(session, pg, ctx, 0, now) == []
        assert not named_lock_free(pg, "paypal-period", "theopenhost", "I-LOCKED")
        assert named_lock_free(pg, "paypal-period", "someoneelse", "I-LOCKED")
    assert named_lock_free(pg, "paypal-period", "theopenhost", "I-LOCKED")


def test_a_stripe_charges_overpayment_check_holds_its_invoices_lock(pg: Container) -> None:
    """An invoice and its charge are applied by the workers of two partitions (and, when a
    batch is redone event by event, without the batch's locks): the check for an overpaid
    invoice takes the invoice's lock first and holds it to the end of the transaction."""
    from datetime import UTC, datetime

    from workers.context import EventContext
    from workers.reactions import stripe_overpaid_invoice

    now = datetime(2026, 11, 1, tzinfo=UTC)
    ctx = EventContext(merchant="oneclick", provider="stripe", event_id="evt_locked",
                       event_type="charge.succeeded", created_at=now, livemode=False,
                       payload={"data": {"object": {"object": "charge", "id": "ch_locked",
                                                    "invoice": "in_locked"}}})
    with pg.sessions() as session, session.begin():
        assert stripe_overpaid_invoice(session, pg, ctx, 0, now) == []
        assert not named_lock_free(pg, "stripe-overpayment", "oneclick", "in_locked")
    assert named_lock_free(pg, "stripe-overpayment", "oneclick", "in_locked")
