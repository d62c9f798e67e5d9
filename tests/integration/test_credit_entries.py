"""Account credit's own entries (adapters/ledger_credit.py) read and written directly: what a
voided invoice gives back (its own Stripe-balance uses, of this merchant, once, each naming
its grant, clause and holder), what a use records, and an account's statement (this
merchant's and this account's entries only, oldest first, per currency, a failed refund's use
not counted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from adapters import ledger_credit
from adapters.ledger_credit import LEDGER, STRIPE_BALANCE, give_back, kind, statement
from ledger.models import AccountCredit, Action, ActionStatus, Decision, Refund
from policy.money import Money
from service.bootstrap import Container
from tests.support.ledger import add_in_order, credit_refund_action, provider_refund

MERCHANT, OTHER = "theopenhost", "oneclick"
ACCOUNT = "cus_entries"
T0 = datetime(2026, 9, 1, 8, tzinfo=UTC)



def _grant(amount: int, *, at: datetime = T0, currency: str = "USD", held_by: str = STRIPE_BALANCE,
           merchant: str = MERCHANT, account: str = ACCOUNT) -> AccountCredit:
    return AccountCredit(merchant=merchant, account_ref=account, amount=amount,
                         currency=currency, reason="overpayment", clause="003 §1.7c",
                         created_at=at, held_by=held_by)


def _use(grant: AccountCredit, amount: int, applied_to: str, *, at: datetime = T0,
         action_id: str | None = None) -> AccountCredit:
    return AccountCredit(merchant=grant.merchant, account_ref=grant.account_ref,
                         amount=-amount, currency=grant.currency, reason="paid",
                         clause=grant.clause, created_at=at, held_by=grant.held_by,
                         applies_to=grant.id, applied_to=applied_to, action_id=action_id)


def _entries(container: Container, merchant: str = MERCHANT) -> list[AccountCredit]:
    with container.sessions() as session:
        return list(session.scalars(select(AccountCredit).where(
            AccountCredit.merchant == merchant).order_by(AccountCredit.id)))


def _give_back(container: Container, merchant: str, invoice: str) -> int:
    with container.sessions() as session, session.begin():
        return give_back(session, merchant, invoice, "invoice voided", T0 + timedelta(days=3))


def test_a_voided_invoice_gives_back_its_own_stripe_balance_uses_once(container):
    first, second = _grant(1000), _grant(400, at=T0 + timedelta(hours=1))
    held = _grant(500, held_by=LEDGER)
    theirs = _grant(900, merchant=OTHER)
    add_in_order(container, first, second, held, theirs)
    add_in_order(container, _use(first, 300, "in_A"), _use(second, 150, "in_A"),
                 _use(first, 100, "in_B"),  # another invoice
                 _use(held, 50, "in_A"),  # credit our ledger holds: Stripe returned none of it
                 _use(theirs, 70, "in_A"))  # another merchant's invoice of the same id
    assert _give_back(container, MERCHANT, "in_A") == 450
    returned = [e for e in _entries(container) if e.applied_to == "in_A:voided"]
    assert sorted((e.applies_to, e.amount) for e in returned) == [(first.id, 300),
                                                                   (second.id, 150)]
    for entry in returned:
        assert (entry.account_ref, entry.currency, entry.clause, entry.held_by) == (
            ACCOUNT, "USD", "003 §1.7c", STRIPE_BALANCE)
        assert (entry.decision_id, entry.action_id, entry.reason) == (None, None,
                                                                     "invoice voided")
        assert kind(entry) == "return"
    assert not [e for e in _entries(container, OTHER) if e.applied_to == "in_A:voided"]
    assert _give_back(container, MERCHANT, "in_A") == 0  # once
    assert len([e for e in _entries(container) if e.applied_to == "in_A:voided"]) == 2
    assert _give_back(container, OTHER, "in_A") == 70  # the other merchant's, on its own


def test_a_use_names_its_grant_what_it_paid_and_why(container):
    grant = _grant(800)
    decision = Decision(id="dec_entries", merchant=MERCHANT, account_ref=ACCOUNT, pack="p",
                        request_kind="credit", outcome="partial_refund", case={}, decision={},
                        evaluated_at=T0)
    action = Action(id="act_entries", decision_id=decision.id, merchant=MERCHANT,
                    kind="refund", provider="stripe", amount=300, currency="USD",
                    status=ActionStatus.PENDING, created_at=T0, updated_at=T0)
    add_in_order(container, grant, decision, action)
    with container.sessions() as session, session.begin():
        stored = session.get(AccountCredit, grant.id)
        assert stored is not None
        ledger_credit.use(session, stored, 300, applied_to="in_C", reason="paid in part",
                          decision_id="dec_entries", action_id="act_entries", now=T0)
    (entry,) = [e for e in _entries(container) if e.applies_to is not None]
    assert (entry.amount, entry.applies_to, entry.applied_to, entry.clause) == (
        -300, grant.id, "in_C", "003 §1.7c")
    assert (entry.decision_id, entry.action_id, entry.held_by) == (
        "dec_entries", "act_entries", STRIPE_BALANCE)
    assert kind(entry) == "use" and kind(grant) == "grant"


def test_a_statement_is_this_accounts_credit_oldest_first_per_currency(container):
    later = _grant(300, at=T0 + timedelta(days=1))
    first_of_two = _grant(1000)  # two grants at the same time: the older row first
    second_of_two = _grant(200)
    euros = _grant(700, currency="EUR", at=T0 + timedelta(days=2))
    add_in_order(container, later, first_of_two, second_of_two, euros,
                 _grant(5000, merchant=OTHER),  # another merchant's account of the same id
                 _grant(6000, account="cus_someone_else"))
    decision = Decision(id="dec_failed_refund", merchant=MERCHANT, account_ref=ACCOUNT,
                        pack="p", request_kind="credit", outcome="partial_refund", case={},
                        decision={}, evaluated_at=T0)
    failed = Action(id="act_failed_refund", decision_id=decision.id, merchant=MERCHANT,
                    kind="refund", provider="stripe", amount=100, currency="USD",
                    status=ActionStatus.FAILED, created_at=T0, updated_at=T0)
    add_in_order(container, decision, failed,
                 _use(first_of_two, 250, "in_D", at=T0 + timedelta(days=3)),
                 _use(first_of_two, 100, "in_E", at=T0 + timedelta(days=4),
              action_id=failed.id),  # its refund failed: the credit is back
                 _use(euros, 700, "in_F", at=T0 + timedelta(days=5)))
    _give_back(container, MERCHANT, "in_D")
    with container.sessions() as session:
        account = statement(session, MERCHANT, ACCOUNT)
    assert [e.id for e in account.entries][:4] == [first_of_two.id, second_of_two.id,
                                                    later.id, euros.id]
    assert {e.merchant for e in account.entries} == {MERCHANT}
    assert {e.account_ref for e in account.entries} == {ACCOUNT}
    failed_use = next(e for e in account.entries if e.action_id == failed.id)
    assert failed_use.id not in account.counting
    balances = {b["currency"]: b for b in account.balances}
    # USD: granted 1,500; used 250, given back 250 (voided), 100 not counted (refund failed)
    assert balances["USD"] == {"currency": "USD", "available": 1500, "granted": 1500,
                               "used": 0}
    assert balances["EUR"] == {"currency": "EUR", "available": 0, "granted": 700, "used": 700}


def test_a_second_void_gives_back_only_what_was_used_since(container):
    """Uses already given back are skipped, not a reason to stop: a use made after the first
    void is given back by the second."""
    first, later = _grant(1000), _grant(600, at=T0 + timedelta(hours=2))
    add_in_order(container, first, later)
    add_in_order(container, _use(first, 300, "in_G"))
    assert _give_back(container, MERCHANT, "in_G") == 300
    add_in_order(container, _use(later, 200, "in_G"))
    assert _give_back(container, MERCHANT, "in_G") == 200
    returned = [e for e in _entries(container) if e.applied_to == "in_G:voided"]
    assert sorted((e.applies_to, e.amount) for e in returned) == [(first.id, 300),
                                                                   (later.id, 200)]


def test_credit_questions_see_the_transactions_own_unflushed_entries(container):
    """Asked inside a drain's transaction, which does not flush on every question: a use or a
    grant added but not yet flushed counts."""
    grant = _grant(1000)
    add_in_order(container, grant)
    with container.sessions() as session, session.begin():
        stored = session.get(AccountCredit, grant.id)
        assert stored is not None
        session.add(_use(stored, 400, "in_H"))  # pending, not flushed
        session.add(_grant(250, at=T0 + timedelta(days=1)))  # pending too
        with session.no_autoflush:
            assert give_back(session, MERCHANT, "in_H", "voided", T0) == 400
            grants = ledger_credit.open_grants(session, MERCHANT, ACCOUNT, "USD",
                                               STRIPE_BALANCE)
    assert [g.left for g in grants] == [1000, 250]  # 400 used, 400 given back


def test_open_grants_are_the_oldest_first_by_when_they_were_granted(container):
    """The order credit is used in: by the time of the grant, not by the row's id."""
    newer = _grant(100, at=T0 + timedelta(days=5))  # written first
    older = _grant(200, at=T0)
    add_in_order(container, newer, older)
    with container.sessions() as session:
        grants = ledger_credit.open_grants(session, MERCHANT, ACCOUNT, "USD", STRIPE_BALANCE)
    assert [g.grant.id for g in grants] == [older.id, newer.id]


def test_grants_of_one_instant_are_used_and_listed_in_the_order_they_were_written(container):
    """Two grants at the same instant: the one written first (the lower id) is used first and
    listed first, whatever order the database keeps their rows in (here the later id is
    stored first)."""
    second, first = _grant(200), _grant(100)
    second.id, first.id = 9002, 9001
    add_in_order(container, second, first)
    with container.sessions() as session:
        grants = ledger_credit.open_grants(session, MERCHANT, ACCOUNT, "USD", STRIPE_BALANCE)
        listed = statement(session, MERCHANT, ACCOUNT).entries
    assert [g.grant.id for g in grants] == [9001, 9002]
    assert [e.id for e in listed] == [9001, 9002]


def _refund_action(n: int, status: str) -> tuple[Decision, Action]:
    return credit_refund_action(f"back_{n}", status, merchant=MERCHANT, account=ACCOUNT, at=T0)


def _provider_refund(action_id: str, status: str) -> Refund:
    return provider_refund(action_id, status, merchant=MERCHANT, at=T0)


def test_a_use_is_back_only_when_its_own_refund_failed_and_none_of_it_landed(container):
    """Credit used alongside a refund comes back when that refund's action failed and the
    provider holds no standing refund of that action (a failed one, in any case, is none); a
    use whose own action succeeded stays used, whatever happened to another action's."""
    grant = _grant(1000, held_by=LEDGER)
    rows: list[Any] = [grant]
    actions = {}
    for n, status in enumerate(["failed", "failed", "succeeded", "failed"]):
        decision, action = _refund_action(n, status)
        rows += [decision, action]
        actions[n] = action.id
    add_in_order(container, *rows)
    add_in_order(container,
                 _use(grant, 100, "PAY-back-0", action_id=actions[0]),  # failed, nothing: back
                 _use(grant, 200, "PAY-back-1", action_id=actions[1]),  # failed, but it landed
                 _use(grant, 300, "PAY-back-2", action_id=actions[2]),  # succeeded: used
                 _use(grant, 50, "PAY-back-3", action_id=actions[3]),  # failed; PayPal: FAILED
                 _provider_refund(actions[1], "COMPLETED"),
                 _provider_refund(actions[3], "FAILED"))
    with container.sessions() as session:
        account = statement(session, MERCHANT, ACCOUNT)
        (open_grant,) = ledger_credit.open_grants(session, MERCHANT, ACCOUNT, "USD", LEDGER)
    counted = {e.applied_to for e in account.entries if e.id in account.counting}
    assert counted == {None, "PAY-back-1", "PAY-back-2"}
    assert open_grant.left == 1000 - 200 - 300
    assert {b["currency"]: b["available"] for b in account.balances} == {"USD": 500}


def _asked_before_any_flush(container: Container, grant: AccountCredit, ask: Any) -> Any:
    """``ask(session)`` first thing in a transaction holding an unflushed use of ``grant``
    against in_J and an unflushed grant to cus_new_account, with no autoflush."""
    with container.sessions() as session, session.begin():
        stored = session.get(AccountCredit, grant.id)
        assert stored is not None
        session.add(_use(stored, 100, "in_J"))
        session.add(_grant(300, account="cus_new_account", held_by=LEDGER))
        with session.no_autoflush:
            answer = ask(session)
        session.rollback()
    return answer


def test_the_lookups_see_the_transactions_unflushed_entries(container):
    """Whether credit was applied to a payment, ever granted, or reduced a payment: asked in
    the transaction that wrote it and has not flushed, each answers as after a flush; another
    merchant's use of the same payment id is not this merchant's."""
    grant, theirs = _grant(1000), _grant(900, merchant=OTHER)
    add_in_order(container, grant, theirs)
    add_in_order(container, _use(theirs, 100, "in_K"))
    assert _asked_before_any_flush(
        container, grant, lambda s: ledger_credit.applied(s, MERCHANT, "in_J"))
    assert not _asked_before_any_flush(
        container, grant, lambda s: ledger_credit.applied(s, MERCHANT, "in_K"))
    assert _asked_before_any_flush(container, grant, lambda s: ledger_credit.ever_granted(
        s, MERCHANT, ["cus_new_account"], LEDGER))
    assert _asked_before_any_flush(container, grant, lambda s: ledger_credit.reduced(
        s, MERCHANT, ["in_J", "in_K"])) == {"in_J"}


def test_a_grant_keeps_who_holds_it(container):
    decision, action = _refund_action(9, "pending")
    add_in_order(container, decision, action)
    with container.sessions() as session, session.begin():
        assert ledger_credit.grant(session, merchant=MERCHANT, account_ref=ACCOUNT,
                                   amount=Money(700, "USD"), reason="overpayment",
                                   clause="003 §1.7c", decision_id=decision.id,
                                   action_id=action.id, now=T0, held_by=STRIPE_BALANCE)
    (entry,) = _entries(container)
    assert (entry.held_by, entry.amount, entry.currency, entry.clause) == (
        STRIPE_BALANCE, 700, "USD", "003 §1.7c")


def test_open_grants_are_this_merchants_in_this_currency_and_holder_up_to_the_time(container):
    """Only this merchant's grants, in the currency asked, held by the holder asked, granted by
    the time given (a grant at exactly that time counts); a grant of one cent, or with one cent
    left, is open."""
    cent = _grant(1, at=T0)
    nearly_used = _grant(500, at=T0 + timedelta(hours=1))
    at_the_limit = _grant(300, at=T0 + timedelta(days=1))
    add_in_order(container, cent, nearly_used, at_the_limit,
                 _grant(900, merchant=OTHER), _grant(800, currency="EUR"),
                 _grant(700, held_by=LEDGER), _grant(600, at=T0 + timedelta(days=2)))
    add_in_order(container, _use(nearly_used, 499, "in_L"))
    with container.sessions() as session:
        grants = ledger_credit.open_grants(session, MERCHANT, ACCOUNT, "usd", STRIPE_BALANCE,
                                           granted_by=T0 + timedelta(days=1))
    assert [(g.grant.id, g.left) for g in grants] == [(cent.id, 1), (nearly_used.id, 1),
                                                      (at_the_limit.id, 300)]


def test_a_plan_takes_the_last_cent_from_the_next_grant(container):
    first, second = _grant(5), _grant(5, at=T0 + timedelta(hours=1))
    add_in_order(container, first, second)
    with container.sessions() as session:
        grants = ledger_credit.open_grants(session, MERCHANT, ACCOUNT, "USD", STRIPE_BALANCE)
        plan = ledger_credit.plan_uses(grants, 6)
    assert [(g.id, take) for g, take in plan] == [(first.id, 5), (second.id, 1)]
