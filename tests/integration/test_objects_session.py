"""``ledger.objects`` inside a transaction: an object is one merchant's and one provider's (ids
are unique only per merchant and provider), the object an event changes is locked until the
transaction ends and one only looked at is not (PostgreSQL), and what a transaction learnt is
forgotten when it ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import OperationalError

from ledger.bounds import OutOfRange
from ledger.db import is_postgres
from ledger.models import Customer, Payment
from ledger.objects import (
    Ref,
    Version,
    all_or_nothing,
    apply_snapshot,
    ensure_customer,
    find,
    peek,
    peek_all,
    prefetch,
    transaction_memo,
)
from policy.timing import LATEST
from service.bootstrap import Container
from tests.support.locks import statements

AT = datetime(2026, 11, 1, tzinfo=UTC)
VALUES = {"kind": "charge", "status": "succeeded", "currency": "USD", "amount_refunded": 0}


def _apply(container: Container, ref: Ref, amount: int, event: str) -> None:
    with container.sessions() as session, session.begin():
        assert apply_snapshot(session, Payment, ref, Version(AT, 0, event), False,
                              {**VALUES, "amount": amount})


def _amounts(container: Container) -> dict[tuple[str, str], int]:
    with container.sessions() as session:
        return {(p.merchant, p.provider): p.amount
                for p in session.scalars(select(Payment).where(Payment.provider_id == "X-1"))}


def _customer(container: Container) -> tuple[str | None, str | None, str]:
    """The one customer's email, name and the event its version is from."""
    with container.sessions() as session:
        customer = session.scalars(select(Customer)).one()
    return customer.email, customer.name, customer.version_event


def test_the_same_id_at_two_merchants_is_two_objects(container):
    _apply(container, Ref("merchant-a", "stripe", "X-1"), 1000, "evt_a")
    _apply(container, Ref("merchant-b", "stripe", "X-1"), 2000, "evt_b")
    assert _amounts(container) == {("merchant-a", "stripe"): 1000,
                                   ("merchant-b", "stripe"): 2000}


def test_the_same_id_at_two_providers_is_two_objects(container):
    _apply(container, Ref("merchant-a", "stripe", "X-1"), 1000, "evt_a")
    _apply(container, Ref("merchant-a", "paypal", "X-1"), 3000, "evt_b")
    assert _amounts(container) == {("merchant-a", "stripe"): 1000,
                                   ("merchant-a", "paypal"): 3000}


def test_a_customer_named_again_keeps_its_first_details_and_its_livemode(container):
    ref = Ref("merchant-a", "stripe", "cus_1")
    with container.sessions() as session, session.begin():
        ensure_customer(session, ref, Version(AT, 0, "evt_1"), True, email="ann@example.com")
    with container.sessions() as session, session.begin():
        all_or_nothing(session)  # as the drain: an insert here would fail only at the flush
        ensure_customer(session, ref, Version(AT + timedelta(hours=1), 0, "evt_2"), True,
                        email="other@example.com", name="Ann")
        session.flush()
    with container.sessions() as session:
        customer = session.scalars(select(Customer)).one()
    assert (customer.email, customer.name, customer.livemode) == (
        "ann@example.com", "Ann", True)


def test_an_earlier_event_named_later_gives_the_customer_its_details(container):
    """Details from the earliest event win whatever the arrival order; a later event only
    fills what the earlier ones left empty."""
    ref = Ref("merchant-a", "stripe", "cus_1")
    with container.sessions() as session, session.begin():
        ensure_customer(session, ref, Version(AT + timedelta(hours=1), 0, "evt_2"), False,
                        email="late@example.com", name="Late")
    with container.sessions() as session, session.begin():
        ensure_customer(session, ref, Version(AT, 0, "evt_1"), False,
                        email="early@example.com", name="Early")
    with container.sessions() as session, session.begin():
        ensure_customer(session, ref, Version(AT + timedelta(hours=2), 0, "evt_3"), False,
                        email="latest@example.com", name="Latest")
    assert _customer(container) == ("early@example.com", "Early", "evt_1")


def test_an_object_applied_again_in_one_all_or_nothing_transaction_is_updated_in_place(
        container):
    """The drain's transactions insert without a savepoint: an object that exists must be
    found and updated, not inserted again (which would fail the whole batch at its flush)."""
    ref = Ref("merchant-a", "stripe", "X-1")
    with container.sessions() as session, session.begin():
        assert apply_snapshot(session, Payment, ref, Version(AT, 0, "evt_a"), True,
                              {**VALUES, "amount": 1000})
    with container.sessions() as session, session.begin():
        all_or_nothing(session)
        assert apply_snapshot(session, Payment, ref, Version(AT + timedelta(seconds=1), 0,
                                                             "evt_b"), True,
                              {**VALUES, "amount": 1500})
        session.flush()
    with container.sessions() as session:
        payment = session.scalars(select(Payment)).one()
    assert (payment.amount, payment.livemode, payment.version_event) == (1500, True, "evt_b")


def test_an_older_version_writes_nothing_and_says_so_the_same_one_applies_again(container):
    """False tells the caller not to react to a stale snapshot; the same version again (a
    replay) is applied again."""
    ref = Ref("merchant-a", "stripe", "X-1")
    _apply(container, ref, 1000, "evt_b")
    with container.sessions() as session, session.begin():
        assert not apply_snapshot(session, Payment, ref, Version(AT, 0, "evt_a"), False,
                                  {**VALUES, "amount": 9999})
        assert apply_snapshot(session, Payment, ref, Version(AT, 0, "evt_b"), False,
                              {**VALUES, "amount": 1000})
    assert _amounts(container) == {("merchant-a", "stripe"): 1000}


def test_an_object_created_and_changed_by_one_batch_is_one_row(container):
    """In the drain's transaction an inserted object is not flushed until the end: the second
    event of the batch must find it (not insert it again and fail the batch)."""
    ref = Ref("merchant-a", "stripe", "X-1")
    with container.sessions() as session, session.begin():
        all_or_nothing(session)
        assert apply_snapshot(session, Payment, ref, Version(AT, 0, "evt_a"), False,
                              {**VALUES, "amount": 1000})
        assert apply_snapshot(session, Payment, ref, Version(AT, 1, "evt_b"), False,
                              {**VALUES, "amount": 1200})
        session.flush()
    assert _amounts(container) == {("merchant-a", "stripe"): 1200}


def test_an_object_is_looked_up_afresh_in_the_next_transaction(container):
    """What a transaction locked is not trusted after it ends: another may have changed it."""
    ref = Ref("merchant-a", "stripe", "X-1")
    _apply(container, ref, 1000, "evt_a")
    with container.sessions() as session:
        with session.begin():
            assert find(session, Payment, ref) is not None
        with container.sessions() as other, other.begin():
            other.scalars(select(Payment)).one().amount = 1700
        with session.begin():
            found = find(session, Payment, ref)
            assert found is not None and found.amount == 1700


@pytest.mark.parametrize("at", [LATEST, LATEST + timedelta(days=1)])
def test_an_event_dated_2100_or_later_is_refused_before_anything_is_written(container, at):
    """Such a version would outrank every real event about the object, for good."""
    with container.sessions() as session, session.begin(), \
            pytest.raises(OutOfRange, match="after 2100"):
        apply_snapshot(session, Payment, Ref("merchant-a", "stripe", "X-1"),
                       Version(at, 0, "evt_a"), False, {**VALUES, "amount": 1000})
    assert _amounts(container) == {}


def test_an_id_too_long_is_refused_naming_the_objects_kind(container):
    with container.sessions() as session, session.begin(), \
            pytest.raises(OutOfRange, match="payments id"):
        apply_snapshot(session, Payment, Ref("merchant-a", "stripe", "X" * 300),
                       Version(AT, 0, "evt_a"), False, {**VALUES, "amount": 1000})


def test_a_prefetched_batch_is_answered_without_another_query(container):
    """The drain loads a batch's objects in one query per model: found ones are then taken
    from the transaction's cache, missing ones are known to be missing."""
    there, missing = Ref("merchant-a", "stripe", "X-1"), Ref("merchant-a", "stripe", "X-2")
    _apply(container, there, 1000, "evt_a")
    with container.sessions() as session, session.begin():
        all_or_nothing(session)
        prefetch(session, [Payment], {there, missing})
        with statements(container) as sent_now:
            found, absent = find(session, Payment, there), find(session, Payment, missing)
    assert found is not None and found.amount == 1000
    assert absent is None
    assert sent_now == []


def test_a_batchs_new_objects_of_one_kind_are_one_insert_whatever_columns_they_set(container):
    """A PayPal sale leaves ``amount_refunded`` to its default and a Stripe charge sets it: new
    rows that set different columns were written one INSERT per run of alike rows. Each new
    row now sets every column that has a default, so the batch's payments are one INSERT, and
    the stored values are the defaults as before (PostgreSQL; SQLite inserts row by row)."""
    sale = {"kind": "sale", "status": "completed", "currency": "USD", "amount": 500}
    rows = [(Ref("merchant-a", "paypal", "S-1"), sale), (Ref("merchant-a", "stripe", "ch_1"),
            {**VALUES, "amount": 700, "amount_refunded": 200}),
            (Ref("merchant-a", "paypal", "S-2"), sale)]
    inserts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO PAYMENTS"):
            inserts.append(statement)

    with container.sessions() as session, session.begin():
        all_or_nothing(session)  # as the drain: the new rows are written at the flush
        for i, (ref, values) in enumerate(rows):
            assert apply_snapshot(session, Payment, ref, Version(AT, 0, f"evt_{i}"), False,
                                  values)
        event.listen(container.engine, "before_cursor_execute", count)
        try:
            session.flush()
        finally:
            event.remove(container.engine, "before_cursor_execute", count)
    # SQLite does not promise the order of RETURNING's rows, so the ORM inserts one row a
    # statement there, whatever the columns.
    assert len(inserts) == (1 if is_postgres(container.engine) else len(rows))
    with container.sessions() as session:
        stored = {p.provider_id: (p.amount, p.amount_refunded, p.version_rank, p.livemode)
                  for p in session.scalars(select(Payment))}
    assert stored == {"S-1": (500, 0, 0, False), "ch_1": (700, 200, 0, False),
                      "S-2": (500, 0, 0, False)}


def test_an_object_found_once_is_not_looked_up_again_in_the_transaction(container):
    """Its row stays locked (or the database has one writer) until the transaction ends: the
    second ``find`` of a batch answers from the session."""
    ref = Ref("merchant-a", "stripe", "X-1")
    _apply(container, ref, 1000, "evt_a")
    with container.sessions() as session, session.begin():
        first = find(session, Payment, ref)
        with statements(container) as sent:
            again = find(session, Payment, ref)
    assert first is not None and again is first
    assert sent == []


def test_a_prefetch_is_only_for_an_all_or_nothing_transaction(container):
    """Objects it finds absent are inserted without looking again, which is safe only where a
    unique-key failure redoes the whole attempt (see ``all_or_nothing``)."""
    refused = pytest.raises(AssertionError,
                            match="^prefetch is for all-or-nothing transactions$")
    with container.sessions() as session, session.begin(), refused:
        prefetch(session, [Payment], {Ref("merchant-a", "stripe", "X-1")})


def test_a_prefetch_reads_and_locks_rows_in_id_order(container):
    """Every worker locks a batch's rows in one order (their ids), so two batches naming the
    same objects never wait for each other in a circle."""
    # Provider ids in another order than their rows' ids.
    refs = [Ref("merchant-a", "stripe", f"X-{n}") for n in (3, 1, 2)]
    for n, ref in enumerate(refs):
        _apply(container, ref, 1000, f"evt_{n}")
    with container.sessions() as session, session.begin():
        all_or_nothing(session)
        with statements(container) as sent:
            prefetch(session, [Payment], set(refs))
    (query,) = [sql for sql in sent if sql.startswith("SELECT")]
    assert query.rstrip().endswith(("ORDER BY payments.id", "ORDER BY payments.id FOR UPDATE"))


def test_a_prefetch_goes_on_to_the_next_model_when_one_is_all_cached(container):
    ref = Ref("merchant-a", "stripe", "X-1")
    _apply(container, ref, 1000, "evt_a")
    with container.sessions() as session, session.begin():
        ensure_customer(session, ref, Version(AT, 0, "evt_c"), False)
    with container.sessions() as session, session.begin():
        all_or_nothing(session)
        assert find(session, Customer, ref) is not None  # the customer is cached already
        prefetch(session, [Customer, Payment], {ref})
        with statements(container) as sent_now:
            assert find(session, Payment, ref) is not None
    assert sent_now == []


def test_objects_peeked_at_together_are_answered_without_another_query(container):
    """A batch's objects of other partitions are read in one query (``peek_all``): each is
    then answered from it, an absent one as absent, an object of another merchant or
    provider with the same id as itself."""
    refs = [Ref("merchant-a", "stripe", "X-1"), Ref("merchant-b", "stripe", "X-1"),
            Ref("merchant-a", "paypal", "X-1")]
    for n, ref in enumerate(refs):
        _apply(container, ref, 1000 + n, f"evt_{n}")
    missing = Ref("merchant-a", "stripe", "X-2")
    with container.sessions() as session, session.begin():
        with statements(container) as read:
            peek_all(session, Payment, {*refs, missing})
        assert len([sql for sql in read if sql.startswith("SELECT")]) == 1
        with statements(container) as again:
            found = [peek(session, Payment, ref) for ref in refs]
            absent = peek(session, Payment, missing)
        assert again == []
    assert [(p.merchant, p.provider, p.amount) for p in found if p is not None] == [
        ("merchant-a", "stripe", 1000), ("merchant-b", "stripe", 1001),
        ("merchant-a", "paypal", 1002)]
    assert absent is None


def test_objects_the_transaction_holds_are_not_peeked_at_again(container):
    """Held (found, locked or inserted by this transaction): ``peek`` answers from the
    transaction, so ``peek_all`` asks the database nothing for them."""
    ref = Ref("merchant-a", "stripe", "X-1")
    _apply(container, ref, 1000, "evt_a")
    with container.sessions() as session, session.begin():
        held_one = find(session, Payment, ref)
        with statements(container) as read:
            peek_all(session, Payment, {ref})
            assert peek(session, Payment, ref) is held_one
        assert read == []


def test_objects_peeked_at_together_are_not_locked(pg):
    """Like ``peek``: they belong to another partition, whose drain may be working on them."""
    ref = Ref("merchant-a", "stripe", "X-1")
    _apply(pg, ref, 1000, "evt_a")
    with pg.sessions() as session, session.begin():
        peek_all(session, Payment, {ref})
        assert _row_free(pg, ref)


def test_what_a_transaction_learnt_is_forgotten_when_it_ends(container):
    with container.sessions() as session:
        with session.begin():
            transaction_memo(session)["lock"] = "held"
            assert transaction_memo(session) == {"lock": "held"}
        with session.begin():
            assert transaction_memo(session) == {}


def test_what_a_transaction_learnt_is_forgotten_after_a_savepoint_rolls_back(container):
    with container.sessions() as session, session.begin():
        transaction_memo(session)["lock"] = "held"
        savepoint = session.begin_nested()
        savepoint.rollback()
        assert transaction_memo(session) == {}


@pytest.fixture
def pg(container: Container) -> Container:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: it takes no row locks")
    return container


def _row_free(container: Container, ref: Ref) -> bool:
    """Whether another transaction could lock the payment's row now (it lets go at once)."""
    with container.engine.begin() as conn:
        try:
            conn.execute(text("SELECT 1 FROM payments WHERE merchant = :m AND provider = :p "
                              "AND provider_id = :i FOR UPDATE NOWAIT"),
                         {"m": ref.merchant, "p": ref.provider, "i": ref.provider_id})
        except OperationalError:
            return False
    return True


def test_an_object_found_to_be_changed_is_locked_until_the_transaction_ends(pg):
    ref = Ref("merchant-a", "stripe", "X-1")
    _apply(pg, ref, 1000, "evt_a")
    with pg.sessions() as session, session.begin():
        assert find(session, Payment, ref) is not None
        assert not _row_free(pg, ref)
    assert _row_free(pg, ref)


def test_an_object_only_looked_at_is_not_locked(pg):
    """peek is for objects of another partition: locking them could deadlock two drains."""
    ref = Ref("merchant-a", "stripe", "X-1")
    _apply(pg, ref, 1000, "evt_a")
    with pg.sessions() as session, session.begin():
        assert peek(session, Payment, ref) is not None
        assert _row_free(pg, ref)


@contextmanager
def _inserted_by_another_first(container: Container, model: type[Customer] | type[Payment],
                               row: dict[str, Any]) -> Iterator[None]:
    """Just before this process next inserts a ``model`` row, another transaction inserts
    ``row`` and commits: the race two drains run when one event names an object new to both."""
    raced: list[bool] = []

    def first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not raced and statement.startswith(f"INSERT INTO {model.__tablename__} "):
            raced.append(True)
            with container.engine.begin() as other:
                other.execute(insert(model), row)

    event.listen(container.engine, "before_cursor_execute", first)
    try:
        yield
    finally:
        event.remove(container.engine, "before_cursor_execute", first)
    assert raced


def test_a_customer_inserted_by_another_meanwhile_takes_the_details_it_lacks(pg):
    ref = Ref("merchant-a", "stripe", "cus_1")
    theirs = {"merchant": "merchant-a", "provider": "stripe", "provider_id": "cus_1",
              "version_at": AT, "version_rank": 0, "version_event": "evt_1", "livemode": False,
              "email": "ann@example.com", "name": None}
    with _inserted_by_another_first(pg, Customer, theirs), pg.sessions() as session, \
            session.begin():
        ensure_customer(session, ref, Version(AT + timedelta(hours=1), 0, "evt_2"), False,
                        email="other@example.com", name="Ann")
    assert _customer(pg) == ("ann@example.com", "Ann", "evt_1")


@pytest.mark.parametrize(("later", "amount"), [(True, 2000), (False, 1000)])
def test_an_object_inserted_by_another_meanwhile_is_updated_only_by_a_newer_version(
        pg, later, amount):
    ref = Ref("merchant-a", "stripe", "X-1")
    theirs = {"merchant": "merchant-a", "provider": "stripe", "provider_id": "X-1",
              "version_at": AT, "version_rank": 0, "version_event": "evt_1", "livemode": False,
              **VALUES, "amount": 1000}
    at = AT + timedelta(seconds=1 if later else -1)
    with _inserted_by_another_first(pg, Payment, theirs), pg.sessions() as session, \
            session.begin():
        written = apply_snapshot(session, Payment, ref, Version(at, 0, "evt_2"), False,
                                 {**VALUES, "amount": 2000})
    assert written is later
    assert _amounts(pg) == {("merchant-a", "stripe"): amount}


def test_a_prefetch_locks_the_batchs_objects_and_no_others(pg):
    """Not another merchant's object with the same id, nor another provider's, nor another
    object of the same merchant: a drain of another partition may be working on those."""
    ours = Ref("merchant-a", "stripe", "X-1")
    others = [Ref("merchant-b", "stripe", "X-1"), Ref("merchant-a", "paypal", "X-1"),
              Ref("merchant-a", "stripe", "X-2")]
    for n, ref in enumerate([ours, *others]):
        _apply(pg, ref, 1000, f"evt_{n}")
    with pg.sessions() as session, session.begin():
        all_or_nothing(session)
        prefetch(session, [Payment], {ours})
        assert not _row_free(pg, ours)
        assert [ref for ref in others if not _row_free(pg, ref)] == []
