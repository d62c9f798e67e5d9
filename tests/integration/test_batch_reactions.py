"""What the drain asks for once per batch on its reactions' behalf (``workers.reactions``
``prepare_batch`` and ``peek_batch``): every lock the reactions will take, taken together
before any event is applied; the sales of the batch's PayPal subscriptions, read once; and the
invoices, charges and subscriptions the reactions look at without a lock, one query per table.
A reaction then answers from what the batch read, without asking again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.models import Invoice, Payment, Subscription
from ledger.objects import Ref, Version, apply_snapshot, peek
from service.bootstrap import Container
from tests.support.locks import named_lock_free, statements
from workers.reactions import _overpayment_lock, _sales_of, peek_batch, prepare_batch

AT = datetime(2026, 11, 1, tzinfo=UTC)


def _selects(sent: list[str]) -> list[str]:
    """The reads among them (a named lock is taken by a SELECT on PostgreSQL: not a read)."""
    return [sql for sql in sent
            if sql.lstrip().upper().startswith("SELECT") and "pg_advisory" not in sql]


def _sale(container: Container, merchant: str, sale: str, sub: str, paid_at: datetime,
          kind: str = "sale") -> None:
    with container.sessions() as session, session.begin():
        assert apply_snapshot(session, Payment, Ref(merchant, "paypal", sale),
                              Version(AT, 0, f"WH-{sale}"), False,
                              {"kind": kind, "status": "completed", "currency": "USD",
                               "amount": 1000, "amount_refunded": 0,
                               "subscription_ref": sub, "paid_at": paid_at})


def _stored(container: Container, model: type, ref: Ref, values: dict[str, Any]) -> None:
    with container.sessions() as session, session.begin():
        assert apply_snapshot(session, model, ref, Version(AT, 0, f"evt-{ref.provider_id}"),
                              False, values)


def _paypal_sale(sale: str, sub: str | None) -> dict[str, Any]:
    resource: dict[str, Any] = {"id": sale}
    if sub is not None:
        resource["billing_agreement_id"] = sub
    return {"resource": resource}


def _stripe(obj: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"object": obj}}


BATCH = [
    ("theopenhost", "paypal", "PAYMENT.SALE.COMPLETED", _paypal_sale("SALE-1", "I-1")),
    ("theopenhost", "paypal", "PAYMENT.SALE.COMPLETED", _paypal_sale("SALE-9", None)),
    ("theopenhost", "paypal", "PAYMENT.SALE.REFUNDED",
     {"resource": {"id": "REF-1", "sale_id": "SALE-1"}}),
    ("theopenhost", "paypal", "BILLING.SUBSCRIPTION.CANCELLED", {"resource": {"id": "I-2"}}),
    ("oneclick", "stripe", "charge.succeeded",
     _stripe({"object": "charge", "id": "ch_1", "invoice": "in_1"})),
    ("oneclick", "stripe", "invoice.paid",
     _stripe({"object": "invoice", "id": "in_2", "charge": "ch_2"})),
    ("oneclick", "stripe", "invoice.finalized",
     _stripe({"object": "invoice", "id": "in_3", "charge": "ch_3"})),
    ("oneclick", "stripe", "customer.created", _stripe({"object": "customer", "id": "cus_1"})),
]


def test_a_batch_names_every_lock_its_reactions_will_take_and_no_other(container):
    """A PayPal sale locks its subscription's periods, a subscription's own event likewise;
    a refund of a sale, a sale of no subscription, and events with no such reaction lock
    nothing. A Stripe charge locks its invoice's overpayment check, a paid invoice its own;
    a finalized one checks no overpayment."""
    with container.sessions() as session, session.begin():
        locks = prepare_batch(session, BATCH)
    assert locks == [("paypal-period", "theopenhost", "I-1"),
                     ("paypal-period", "theopenhost", "I-2"),
                     ("stripe-overpayment", "oneclick", "in_1"),
                     ("stripe-overpayment", "oneclick", "in_2")]


def test_a_batchs_locks_are_held_from_before_its_first_event_to_its_commit(postgres):
    with postgres.sessions() as session, session.begin():
        prepare_batch(session, BATCH)
        assert not named_lock_free(postgres, "paypal-period", "theopenhost", "I-1")
        assert not named_lock_free(postgres, "paypal-period", "theopenhost", "I-2")
        assert not named_lock_free(postgres, "stripe-overpayment", "oneclick", "in_1")
        assert not named_lock_free(postgres, "stripe-overpayment", "oneclick", "in_2")
        assert named_lock_free(postgres, "stripe-overpayment", "oneclick", "in_3")
        assert named_lock_free(postgres, "paypal-period", "oneclick", "I-1")
    assert named_lock_free(postgres, "paypal-period", "theopenhost", "I-1")


def test_a_charge_locks_its_invoices_check_only_when_it_names_one():
    charge = {"object": "charge", "id": "ch_1"}
    assert _overpayment_lock("oneclick", "charge.succeeded",
                             _stripe({**charge, "invoice": "in_1"})) == (
        "stripe-overpayment", "oneclick", "in_1")
    assert _overpayment_lock("oneclick", "charge.succeeded", _stripe(charge)) is None
    assert _overpayment_lock("oneclick", "charge.succeeded",
                             _stripe({**charge, "invoice": {"id": "in_1"}})) is None
    assert _overpayment_lock("oneclick", "invoice.paid",
                             _stripe({"object": "invoice", "id": "in_2"})) == (
        "stripe-overpayment", "oneclick", "in_2")
    # Bodies of the wrong shape (signed, so accepted, and refused by their handlers) lock nothing.
    assert _overpayment_lock("oneclick", "invoice.paid", {"data": "in_2"}) is None
    assert _overpayment_lock("oneclick", "invoice.paid", {"data": {"object": "in_2"}}) is None
    assert _overpayment_lock("oneclick", "invoice.paid", {}) is None


def test_the_sales_of_a_batchs_subscriptions_are_read_once_for_all_its_events(container):
    """Each subscription's sales, this merchant's only (another merchant may use the same
    id), and sales only (a capture is not a subscription's payment); a subscription with no
    sales yet is known to have none. A subscription not in the batch is asked for again."""
    _sale(container, "theopenhost", "SALE-0", "I-1", AT)
    _sale(container, "theopenhost", "SALE-00", "I-1", AT + timedelta(days=30))
    _sale(container, "theopenhost", "CAPTURE-0", "I-1", AT, kind="capture")
    _sale(container, "someoneelse", "SALE-X", "I-1", AT)
    _sale(container, "theopenhost", "SALE-3", "I-3", AT)
    with container.sessions() as session, session.begin():
        with statements(container) as read:
            prepare_batch(session, BATCH)
        assert len(_selects(read)) == 1
        with statements(container) as again:
            one = _sales_of(session, "theopenhost", "I-1")
            two = _sales_of(session, "theopenhost", "I-2")
        assert _selects(again) == []
        assert one == {"SALE-0": AT, "SALE-00": AT + timedelta(days=30)}
        assert two == {}
        with statements(container) as other:
            assert _sales_of(session, "theopenhost", "I-3") == {"SALE-3": AT}
        assert len(_selects(other)) == 1


def test_a_batch_of_subscriptions_at_two_merchants_reads_each_merchants_own(container):
    _sale(container, "theopenhost", "SALE-A", "I-A", AT)
    _sale(container, "someoneelse", "SALE-B", "I-B", AT)
    _sale(container, "someoneelse", "SALE-C", "I-A", AT)
    batch = [("theopenhost", "paypal", "PAYMENT.SALE.COMPLETED", _paypal_sale("SALE-1", "I-A")),
             ("someoneelse", "paypal", "PAYMENT.SALE.COMPLETED", _paypal_sale("SALE-2", "I-B"))]
    with container.sessions() as session, session.begin():
        prepare_batch(session, batch)
        with statements(container) as again:
            assert _sales_of(session, "theopenhost", "I-A") == {"SALE-A": AT}
            assert _sales_of(session, "someoneelse", "I-B") == {"SALE-B": AT}
        assert _selects(again) == []


def test_a_batch_with_no_paypal_subscription_reads_no_sales(container):
    stripe_only = [event for event in BATCH if event[1] == "stripe"]
    with container.sessions() as session, session.begin(), statements(container) as read:
        prepare_batch(session, stripe_only)
    assert _selects(read) == []


def test_what_the_reactions_look_at_unlocked_is_read_once_per_table(container):
    """The invoices of the batch's overpayment checks, the charge a paid invoice names, and
    the subscriptions of its PayPal events: one query per table, then each is answered from
    it, a missing one as missing."""
    _stored(container, Invoice, Ref("oneclick", "stripe", "in_1"),
            {"status": "paid", "currency": "USD", "amount_due": 1000})
    _stored(container, Payment, Ref("oneclick", "stripe", "ch_2"),
            {"kind": "charge", "status": "succeeded", "currency": "USD", "amount": 1200,
             "amount_refunded": 0, "invoice_ref": "in_2"})
    _stored(container, Subscription, Ref("theopenhost", "paypal", "I-1"), {"status": "active"})
    with container.sessions() as session, session.begin():
        locks = prepare_batch(session, BATCH)
        with statements(container) as read:
            peek_batch(session, BATCH, locks)
        assert len(_selects(read)) == 3  # invoices, charges, subscriptions
        with statements(container) as again:
            invoice = peek(session, Invoice, Ref("oneclick", "stripe", "in_1"))
            missing = peek(session, Invoice, Ref("oneclick", "stripe", "in_2"))
            charge = peek(session, Payment, Ref("oneclick", "stripe", "ch_2"))
            sub = peek(session, Subscription, Ref("theopenhost", "paypal", "I-1"))
            gone = peek(session, Subscription, Ref("theopenhost", "paypal", "I-2"))
        assert _selects(again) == []
    assert invoice is not None and invoice.amount_due == 1000
    assert charge is not None and charge.amount == 1200
    assert sub is not None and sub.status == "active"
    assert missing is None and gone is None


def test_a_charge_no_overpayment_check_reads_is_not_read(container):
    """A finalized invoice's charge (its reaction checks no overpayment), a charge's own
    event (its charge is the event's object, held already) and an invoice naming no charge
    read no charge."""
    batch = [("oneclick", "stripe", "invoice.finalized",
              _stripe({"object": "invoice", "id": "in_3", "charge": "ch_3"})),
             ("oneclick", "stripe", "charge.succeeded",
              _stripe({"object": "charge", "id": "ch_1", "invoice": "in_1"})),
             ("oneclick", "stripe", "invoice.paid",
              _stripe({"object": "invoice", "id": "in_4", "charge": None})),
             ("oneclick", "stripe", "invoice.paid",
              _stripe({"object": "invoice", "id": "in_5", "charge": ""}))]
    with container.sessions() as session, session.begin():
        locks = prepare_batch(session, batch)
        with statements(container) as read:
            peek_batch(session, batch, locks)
        assert len(_selects(read)) == 1  # the invoices only
        with statements(container) as again:
            assert peek(session, Invoice, Ref("oneclick", "stripe", "in_1")) is None
            assert peek(session, Invoice, Ref("oneclick", "stripe", "in_5")) is None
        assert _selects(again) == []
        with statements(container) as charge:
            peek(session, Payment, Ref("oneclick", "stripe", "ch_3"))
        assert len(_selects(charge)) == 1


def test_a_batch_with_nothing_to_look_at_reads_nothing(container):
    batch = [("oneclick", "stripe", "customer.created",
              _stripe({"object": "customer", "id": "cus_1"}))]
    with container.sessions() as session, session.begin():
        locks = prepare_batch(session, batch)
        with statements(container) as read:
            peek_batch(session, batch, locks)
    assert locks == [] and read == []
