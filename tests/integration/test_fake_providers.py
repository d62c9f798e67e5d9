"""The local fake of Stripe and PayPal, over real HTTP, through our adapters where they reach and
raw requests where they do not: it keeps books and refuses what the real providers refuse."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import stripe

from adapters.base import ErrorCode, PaymentTarget, ProviderResult
from adapters.paypal_adapter import PayPalAdapter
from adapters.stripe_adapter import StripeAdapter
from policy.money import Money
from sandbox import fake_providers, samples
from sandbox.fake_providers import FakeProviders
from service.config import STRIPE_API_VERSION, PayPalSettings, StripeSettings
from service.errors import ProviderError
from tests.support.providers import assert_books_balanced


@contextmanager
def _serving(lenient: bool = False) -> Iterator[tuple[FakeProviders, str]]:
    fake, server = fake_providers.start(lenient=lenient)
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def provider() -> Iterator[tuple[FakeProviders, str]]:
    with _serving() as served:
        yield served


def _stripe(base: str) -> StripeAdapter:
    return StripeAdapter(StripeSettings(api_key="sk_test_fake", api_base=base), timeout=5)


def _paypal(base: str) -> PayPalAdapter:
    return PayPalAdapter(PayPalSettings(client_id="id", client_secret="secret", api_base=base),
                         timeout=5)


def _refund(base: str, kind: str, payment: str, cents: int, key: str,
            currency: str = "USD") -> ProviderResult:
    """A refund through the adapter of ``kind``'s provider (charge, payment_intent, sale,
    capture), as the action executor makes it."""
    provider = _provider_of(kind)
    adapter = _paypal(base) if provider == "paypal" else _stripe(base)
    return adapter.refund(PaymentTarget(provider, kind, payment), Money(cents, currency),
                          "test refund", key, {"decision_id": "dec_1"})


def _refused(call: Callable[[], Any]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def _provider_of(kind: str) -> str:
    return "paypal" if kind in ("sale", "capture") else "stripe"


# -- refusals, each mapped to our error code ------------------------------------------------------

_UNKNOWN, _TOO_LARGE, _REFUNDED, _DISPUTED = "unknown", "too_large", "refunded", "disputed"


def _set_up(fake: FakeProviders, base: str, kind: str, case: str) -> None:
    if case == _UNKNOWN:
        return
    fake.add_payment("pay_1", 6000, "USD", provider=_provider_of(kind))
    if case == _REFUNDED:
        _refund(base, kind, "pay_1", 6000, "first")
    if case == _DISPUTED:
        fake.dispute("pay_1")


@pytest.mark.parametrize(("kind", "case", "code", "status"), [
    ("charge", _UNKNOWN, ErrorCode.NOT_FOUND, 404),
    ("charge", _TOO_LARGE, ErrorCode.AMOUNT_TOO_LARGE, 400),
    ("charge", _REFUNDED, ErrorCode.ALREADY_REFUNDED, 400),
    ("charge", _DISPUTED, ErrorCode.DISPUTED, 400),
    ("sale", _UNKNOWN, ErrorCode.NOT_FOUND, 404),
    ("sale", _TOO_LARGE, ErrorCode.AMOUNT_TOO_LARGE, 400),
    ("sale", _REFUNDED, ErrorCode.ALREADY_REFUNDED, 400),
    ("sale", _DISPUTED, ErrorCode.TRANSACTION_REFUSED, 400),
    ("capture", _UNKNOWN, ErrorCode.NOT_FOUND, 404),
    ("capture", _TOO_LARGE, ErrorCode.AMOUNT_TOO_LARGE, 422),
    ("capture", _REFUNDED, ErrorCode.ALREADY_REFUNDED, 422),
    ("capture", _DISPUTED, ErrorCode.DISPUTED, 422),
])
def test_each_refusal_maps_to_our_error_code_and_is_not_retried(provider, kind, case, code,
                                                                  status):
    """Unknown, too large, already refunded, disputed: our code, the provider's status, final."""
    fake, base = provider
    _set_up(fake, base, kind, case)
    error = _refused(lambda: _refund(base, kind, "pay_1", 7000, "second"))
    assert (error.code, error.http_status, error.retryable) == (code, status, False)
    assert fake.books().get("pay_1", (0, 0, ""))[1] == (6000 if case == _REFUNDED else 0)


def test_stripe_refusal_bodies_are_stripes(provider):
    """The error objects carry Stripe's type, code, param and message."""
    fake, base = provider
    fake.add_payment("ch_1", 6000, "usd")
    too_large = requests.post(f"{base}/v1/refunds", data={"charge": "ch_1", "amount": 7000})
    unknown = requests.post(f"{base}/v1/refunds", data={"charge": "ch_x"})
    assert too_large.status_code == 400 and too_large.json()["error"] == {
        "type": "invalid_request_error", "code": "amount_too_large", "param": "charge",
        "message": "Refund amount ($70.00) is greater than unrefunded amount on charge ($60.00)"}
    assert unknown.status_code == 404 and unknown.json()["error"] == {
        "type": "invalid_request_error", "code": "resource_missing", "param": "charge",
        "message": "No such charge: 'ch_x'"}


def test_paypal_refusal_bodies_are_paypals(provider):
    """v1 names the error; v2 names its class and gives the issue in details."""
    fake, base = provider
    fake.add_payment("PAY1", 1000, "USD", provider="paypal")
    v1 = requests.post(f"{base}/v1/payments/sale/NOPE/refund", json={})
    v2 = requests.post(f"{base}/v2/payments/captures/PAY1/refund",
                       json={"amount": {"value": "10.01", "currency_code": "USD"}})
    assert (v1.status_code, v1.json()["name"]) == (404, "INVALID_RESOURCE_ID")
    assert (v2.status_code, v2.json()["name"]) == (422, "UNPROCESSABLE_ENTITY")
    assert v2.json()["details"] == [{"issue": "REFUND_AMOUNT_EXCEEDED"}]


# -- books ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["charge", "sale", "capture"])
def test_partial_refunds_add_up_exactly_to_the_capture(provider, kind):
    """Three partial refunds refund the whole capture; a fourth of one cent is refused."""
    fake, base = provider
    fake.add_payment("pay_1", 10000, "USD", provider=_provider_of(kind))
    made = [_refund(base, kind, "pay_1", cents, f"part-{n}")
            for n, cents in enumerate((2500, 7000, 500))]
    assert [r.amount.amount for r in made] == [2500, 7000, 500]
    assert all(r.settled for r in made) and len({r.provider_ref for r in made}) == 3
    assert _refused(lambda: _refund(base, kind, "pay_1", 1, "more")).code == (
        ErrorCode.ALREADY_REFUNDED)
    assert fake.books() == {"pay_1": (10000, 10000, "USD")}
    assert_books_balanced(fake, {"pay_1": 10000})


def test_stripe_refund_objects_look_like_stripes(provider):
    """created increases; currency is the charge's, lower-cased; metadata and charge kept."""
    fake, base = provider
    fake.add_payment("ch_1", 3000, "EUR")
    refunds = [requests.post(f"{base}/v1/refunds", headers={"Idempotency-Key": f"k{n}"},
                             data={"charge": "ch_1", "amount": 1000,
                                   "metadata[action_id]": f"k{n}"}).json() for n in range(3)]
    assert [r["created"] for r in refunds] == sorted({r["created"] for r in refunds})
    assert {(r["object"], r["currency"], r["status"], r["charge"], r["amount"])
            for r in refunds} == {("refund", "eur", "succeeded", "ch_1", 1000)}
    assert [r["metadata"] for r in refunds] == [{"action_id": f"k{n}"} for n in range(3)]


@pytest.mark.parametrize(("kind", "path", "body"), [
    ("charge", "/v1/refunds", {"charge": "pay_1"}),
    ("sale", "/v1/payments/sale/pay_1/refund", {}),
    ("capture", "/v2/payments/captures/pay_1/refund", {"custom_id": "x"}),
])
def test_a_refund_without_an_amount_refunds_what_is_left(provider, kind, path, body):
    """After a partial refund, a request with no amount refunds the rest, then nothing more."""
    fake, base = provider
    fake.add_payment("pay_1", 5000, "USD", provider=_provider_of(kind))
    _refund(base, kind, "pay_1", 1200, "partial")
    form, json_body = (body, None) if kind == "charge" else (None, body)
    rest = requests.post(f"{base}{path}", data=form, json=json_body)
    assert rest.status_code in (200, 201), rest.text
    assert rest.json()["amount"] in (3800, {"total": "38.00", "currency": "USD"},
                                     {"value": "38.00", "currency_code": "USD"})
    again = requests.post(f"{base}{path}", data=form, json=json_body)
    assert again.status_code in (400, 422)  # nothing is left
    assert fake.books() == {"pay_1": (5000, 5000, "USD")}


def test_amounts_are_booked_in_iso_minor_units(provider):
    """ISK is whole krónur in our ledger but two decimals on Stripe; JPY has none on PayPal."""
    fake, base = provider
    fake.add_payment("ch_isk", 5000, "ISK")
    fake.add_payment("SALEJPY", 3000, "JPY", provider="paypal")
    assert _refund(base, "charge", "ch_isk", 5000, "isk", "ISK").amount == Money(5000, "ISK")
    assert _refund(base, "sale", "SALEJPY", 1000, "jpy", "JPY").amount == Money(1000, "JPY")
    assert fake.books() == {"ch_isk": (5000, 5000, "ISK"), "SALEJPY": (3000, 1000, "JPY")}


# -- idempotency ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["charge", "sale", "capture"])
def test_a_repeated_key_gets_the_same_refund_and_books_it_once(provider, kind):
    """Same key, same request: the first refund again, and one refund in the books."""
    fake, base = provider
    fake.add_payment("pay_1", 6000, "USD", provider=_provider_of(kind))
    first = _refund(base, kind, "pay_1", 4000, "act_1")
    again = _refund(base, kind, "pay_1", 4000, "act_1")
    assert again == first and fake.posts_with_key("act_1") == 2
    assert fake.books()["pay_1"] == (6000, 4000, "USD") and len(fake.refunds) == 1


def test_a_stripe_key_reused_with_other_parameters_is_an_idempotency_error(provider):
    """Stripe refuses a key sent again with another amount, and refunds nothing for it."""
    fake, base = provider
    fake.add_payment("ch_1", 6000, "USD")
    _refund(base, "charge", "ch_1", 1000, "act_1")
    error = _refused(lambda: _refund(base, "charge", "ch_1", 2000, "act_1"))
    assert (error.code, error.retryable) == (ErrorCode.IDEMPOTENCY_CONFLICT, False)
    assert "same parameters" in str(error)
    assert fake.books()["ch_1"] == (6000, 1000, "USD")


@pytest.mark.parametrize("kind", ["charge", "sale", "capture"])
def test_a_refusal_is_replayed_under_its_key(provider, kind):
    """A key first refused (unknown payment) is refused again, even once the payment is known."""
    fake, base = provider
    assert _refused(lambda: _refund(base, kind, "pay_1", 100, "act_1")).code == (
        ErrorCode.NOT_FOUND)
    fake.add_payment("pay_1", 6000, "USD", provider=_provider_of(kind))
    assert _refused(lambda: _refund(base, kind, "pay_1", 100, "act_1")).code == (
        ErrorCode.NOT_FOUND)
    assert _refund(base, kind, "pay_1", 100, "act_2").settled  # a new key is a new request
    assert fake.books()["pay_1"] == (6000, 100, "USD")


def test_an_outage_answer_is_not_kept_under_the_key(provider):
    """A 500 (refunds_down) is retryable, and the retry under the same key refunds."""
    fake, base = provider
    fake.add_payment("ch_1", 6000, "USD")
    fake.refunds_down = True
    assert _refused(lambda: _refund(base, "charge", "ch_1", 1000, "act_1")).retryable
    fake.refunds_down = False
    assert _refund(base, "charge", "ch_1", 1000, "act_1").settled
    assert fake.books()["ch_1"] == (6000, 1000, "USD") and fake.posts_with_key("act_1") == 2


# -- Stripe subscriptions ------------------------------------------------------------------------

_LATER = datetime(2030, 1, 1, tzinfo=UTC)


def _subscription(base: str, subscription_id: str) -> dict[str, Any]:
    answer = requests.get(f"{base}/v1/subscriptions/{subscription_id}", timeout=5,
                          headers={"Authorization": "Bearer sk_test_fake"})
    assert answer.status_code == 200
    return dict(answer.json())


def _stripe_client(base: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_fake", base_addresses={"api": base},
                               max_network_retries=0)


def test_stripe_keeps_a_cancelled_subscription_and_refuses_to_cancel_it_again(provider):
    """As Stripe answers: the first cancel ends it; another is "No such subscription" (a key
    has no effect on a DELETE: the same one changes nothing); a cancel_at for it is refused;
    it is still shown, cancelled."""
    fake, base = provider
    fake.add_subscription("sub_1")
    subscriptions = _stripe_client(base).v1.subscriptions
    assert subscriptions.cancel("sub_1", options={"idempotency_key": "k1"}).status == "canceled"
    for key in ("k1", "k2"):
        with pytest.raises(stripe.InvalidRequestError) as again:
            subscriptions.cancel("sub_1", options={"idempotency_key": key})
        assert (again.value.http_status, again.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as dated:
        subscriptions.update("sub_1", params={"cancel_at": 1900000000},
                             options={"idempotency_key": "k3"})
    assert "can only update its cancellation_details and metadata" in str(dated.value)
    assert _subscription(base, "sub_1")["status"] == "canceled"


@pytest.mark.parametrize("lenient", [False, True])
def test_a_subscription_stripe_never_had_is_refused_unless_lenient(lenient):
    """A wrong id (a PayPal one, another account's, a typo) is "No such subscription", for a
    read, a cancel_at and a cancel alike; a lenient fake takes it for an active one."""
    with _serving(lenient=lenient) as (fake, base):
        fake.add_subscription("sub_known")
        answers = [requests.request(method, f"{base}/v1/subscriptions/sub_unknown", timeout=5,
                                    data=data, headers={"Authorization": "Bearer sk_test_fake"})
                   for method, data in [("GET", None), ("POST", {"cancel_at": "1900000000"}),
                                        ("DELETE", None)]]
        if lenient:
            assert [a.status_code for a in answers] == [200, 200, 200]
            assert answers[-1].json()["status"] == "canceled"
        else:
            assert [a.status_code for a in answers] == [404, 404, 404]
            assert {a.json()["error"]["code"] for a in answers} == {"resource_missing"}
        assert _subscription(base, "sub_known")["status"] == "active"


def test_it_learns_stripe_subscriptions_from_events_and_a_cancellation_is_final(provider):
    """customer.subscription.* events tell the fake what Stripe holds; a cancelled one stays
    cancelled whatever event comes after it (events arrive in any order)."""
    fake, base = provider
    scenario = samples.Scenario(key="subs")
    fake.observe(samples.stripe_event("customer.subscription.created", scenario))
    assert _subscription(base, scenario.subscription_id)["status"] == "active"
    fake.observe(samples.stripe_event("customer.subscription.deleted", scenario))
    assert _subscription(base, scenario.subscription_id)["status"] == "canceled"
    fake.observe(samples.stripe_event("customer.subscription.updated", scenario))
    assert _subscription(base, scenario.subscription_id)["status"] == "canceled"


def test_stripe_refuses_to_cancel_a_subscription_that_expired_unpaid(provider):
    """incomplete_expired never bills again; Stripe answers it as a cancelled one, and the
    adapter counts the cancellation done."""
    fake, base = provider
    fake.add_subscription("sub_1", status="incomplete_expired")
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _stripe_client(base).v1.subscriptions.cancel("sub_1")
    assert (refused.value.http_status, refused.value.code) == (404, "resource_missing")
    result = _stripe(base).cancel_subscription("sub_1", None, "test", "act_1")
    assert (result.status, result.raw_status) == ("succeeded", "already_canceled")


def test_stripe_carries_out_a_subscriptions_cancel_at_when_it_comes(provider):
    fake, base = provider
    fake.add_subscription("sub_1")
    _stripe_client(base).v1.subscriptions.update(
        "sub_1", params={"cancel_at": int(_LATER.timestamp())},
        options={"idempotency_key": "act_1"})
    assert _subscription(base, "sub_1")["status"] == "active"
    fake.now = lambda: _LATER.timestamp()
    shown = _subscription(base, "sub_1")
    assert (shown["status"], shown["canceled_at"]) == ("canceled", int(_LATER.timestamp()))


def test_a_cancellation_retried_after_its_cancel_at_took_effect_is_done(provider):
    """An action's first attempt set cancel_at (its answer lost, say); retried after the date,
    it cancels now. Stripe has carried out the cancel_at by then and refuses the cancel ("No
    such subscription"): the adapter reads the subscription, finds it cancelled, and the
    action is done instead of going to review."""
    fake, base = provider
    fake.add_subscription("sub_1")
    adapter = _stripe(base)
    adapter.cancel_subscription("sub_1", _LATER, "late cancellation", "act_1")
    fake.now = lambda: _LATER.timestamp() + 60
    result = adapter.cancel_subscription("sub_1", None, "late cancellation", "act_1")
    assert (result.status, result.provider_ref, result.raw_status) == (
        "succeeded", "sub_1", "already_canceled")
    assert [r.method for r in fake.requests] == ["POST", "DELETE", "GET"]


@pytest.mark.parametrize("at", [None, _LATER], ids=["now", "at a date"])
def test_a_subscription_stripe_shows_cancelled_counts_as_cancelled(provider, at):
    """Cancelled already (by Stripe at its cancel_at, by the merchant, or by an attempt whose
    answer was lost): Stripe refuses the request, the adapter reads the subscription and
    counts it done."""
    fake, base = provider
    fake.add_subscription("sub_1")
    adapter = _stripe(base)
    first = adapter.cancel_subscription("sub_1", None, "first", "act_1")
    assert (first.status, first.raw_status) == ("succeeded", "canceled")
    again = adapter.cancel_subscription("sub_1", at, "again", "act_2")
    assert (again.status, again.raw_status) == ("succeeded", "already_canceled")


def test_a_stripe_refusal_of_a_live_subscription_still_stands(provider):
    """Refused for a subscription that is not cancelled (here a key reused with other
    parameters): the refusal is the answer, not success."""
    fake, base = provider
    fake.add_subscription("sub_1")
    adapter = _stripe(base)
    adapter.cancel_subscription("sub_1", _LATER, "first", "act_1")
    error = _refused(lambda: adapter.cancel_subscription("sub_1", _LATER + timedelta(days=1),
                                                         "other date", "act_1"))
    assert error.code == ErrorCode.IDEMPOTENCY_CONFLICT


# -- PayPal subscriptions ------------------------------------------------------------------------


def _paypal_subscription(base: str, subscription_id: str, action: str = "") -> requests.Response:
    url = f"{base}/v1/billing/subscriptions/{subscription_id}{action}"
    headers = {"Authorization": "Bearer A21-fake.id"}
    if action:
        return requests.post(url, json={"reason": "test"}, headers=headers, timeout=5)
    return requests.get(url, headers=headers, timeout=5)


def test_paypal_cancels_an_active_subscription_once_and_refuses_the_rest(provider):
    """As PayPal answers: 204, then SUBSCRIPTION_STATUS_INVALID for a second cancel (and for
    one not yet active); an unknown id is RESOURCE_NOT_FOUND."""
    fake, base = provider
    fake.add_subscription("I-ACTIVE", provider="paypal")
    fake.add_subscription("I-PENDING", provider="paypal", status="APPROVAL_PENDING")
    assert _paypal_subscription(base, "I-ACTIVE", "/cancel").status_code == 204
    assert _paypal_subscription(base, "I-ACTIVE").json()["status"] == "CANCELLED"
    for subscription in ("I-ACTIVE", "I-PENDING"):
        again = _paypal_subscription(base, subscription, "/cancel")
        assert again.status_code == 422
        assert again.json()["details"] == [{"issue": "SUBSCRIPTION_STATUS_INVALID"}]
    unknown = _paypal_subscription(base, "I-UNKNOWN", "/cancel")
    assert (unknown.status_code, unknown.json()["name"]) == (404, "RESOURCE_NOT_FOUND")


def test_it_learns_paypal_subscriptions_from_events_and_an_end_is_final(provider):
    fake, base = provider
    scenario = samples.Scenario(key="pp-subs", payment_method="paypal")
    subscription = scenario.paypal_subscription_id
    fake.observe(samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario))
    assert _paypal_subscription(base, subscription).json()["status"] == "ACTIVE"
    fake.observe(samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario))
    fake.observe(samples.paypal_event("BILLING.SUBSCRIPTION.UPDATED", scenario))
    assert _paypal_subscription(base, subscription).json()["status"] == "CANCELLED"


def test_a_late_paypal_event_does_not_take_a_subscription_back_a_stage(provider):
    """Events come in any order: CREATED after ACTIVATED leaves it active (PayPal would
    cancel it), SUSPENDED and ACTIVE take turns."""
    fake, base = provider
    for status in ("ACTIVE", "APPROVAL_PENDING", "APPROVED"):
        fake.add_subscription("I-1", provider="paypal", status=status)
    assert _paypal_subscription(base, "I-1").json()["status"] == "ACTIVE"
    fake.add_subscription("I-1", provider="paypal", status="SUSPENDED")
    assert _paypal_subscription(base, "I-1").json()["status"] == "SUSPENDED"
    fake.add_subscription("I-1", provider="paypal", status="ACTIVE")
    assert _paypal_subscription(base, "I-1", "/cancel").status_code == 204


def test_a_paypal_subscription_cancelled_already_counts_as_cancelled(provider):
    """The attempt whose answer was lost cancelled it: the retry is refused, the adapter reads
    the subscription back and counts it done."""
    fake, base = provider
    fake.add_subscription("I-1", provider="paypal")
    adapter = _paypal(base)
    first = adapter.cancel_subscription("I-1", None, "first", "act_1")
    again = adapter.cancel_subscription("I-1", None, "first", "act_1")
    assert (first.status, first.raw_status) == ("succeeded", "CANCELLED")
    assert (again.status, again.raw_status) == ("succeeded", "already_cancelled")


def test_a_paypal_subscription_not_yet_active_is_not_counted_cancelled(provider):
    """PayPal refuses to cancel one awaiting approval too; it could still start billing, so
    the refusal stands (the action goes to review) instead of a cancellation that did not
    happen."""
    fake, base = provider
    fake.add_subscription("I-1", provider="paypal", status="APPROVAL_PENDING")
    error = _refused(lambda: _paypal(base).cancel_subscription("I-1", None, "test", "act_1"))
    assert (error.code, error.retryable) == (ErrorCode.INVALID_REQUEST, False)
    assert "SUBSCRIPTION_STATUS_INVALID" in str(error)


# -- Stripe's listing ----------------------------------------------------------------------------


def test_stripe_python_walks_every_page_of_25_refunds_newest_first(provider):
    """auto_paging_iter follows has_more and starting_after through three pages of ten."""
    fake, base = provider
    fake.add_payment("ch_1", 2500, "USD")
    fake.add_payment("ch_2", 100, "USD")
    made = [_refund(base, "charge", "ch_1", 100, f"act_{n}").provider_ref for n in range(25)]
    _refund(base, "charge", "ch_2", 100, "other")
    client = stripe.StripeClient("sk_test_fake", base_addresses={"api": base},
                                 max_network_retries=0)
    listing = client.v1.refunds.list(params={"charge": "ch_1", "limit": 10})
    assert [r.id for r in listing.auto_paging_iter()] == made[::-1]
    pages = [r.path for r in fake.requests if r.method == "GET"]
    assert len(pages) == 3 and "starting_after=" in pages[-1]
    assert fake.books()["ch_1"] == (2500, 2500, "USD")


def test_stripe_listing_pages_and_limits(provider):
    """limit defaults to 10 and may not pass 100; an unknown starting_after is a 404."""
    fake, base = provider
    fake.add_payment("ch_1", 1200, "USD")
    for n in range(12):
        _refund(base, "charge", "ch_1", 100, f"act_{n}")
    page = requests.get(f"{base}/v1/refunds", params={"charge": "ch_1"}).json()
    assert len(page["data"]) == 10 and page["has_more"] is True
    last = requests.get(f"{base}/v1/refunds", params={
        "charge": "ch_1", "starting_after": page["data"][-1]["id"]}).json()
    assert len(last["data"]) == 2 and last["has_more"] is False
    assert requests.get(f"{base}/v1/refunds", params={"limit": 101}).status_code == 400
    assert requests.get(f"{base}/v1/refunds", params={"starting_after": "re_x"}
                        ).status_code == 404


def test_the_adapter_finds_a_landed_refund_by_its_key(provider):
    """find_refund lists the charge's refunds and takes the one carrying the action id."""
    fake, base = provider
    fake.add_payment("ch_1", 6000, "USD")
    made = _refund(base, "charge", "ch_1", 1000, "act_1")
    target = PaymentTarget("stripe", "charge", "ch_1")
    assert _stripe(base).find_refund(target, "act_1") == made
    assert _stripe(base).find_refund(target, "act_2") is None


def test_the_adapter_finds_a_landed_refund_past_the_first_page(provider):
    """A refund older than the newest 100 of its charge is still found by its key."""
    fake, base = provider
    fake.add_payment("ch_1", 200, "USD")
    with requests.Session() as http:
        for n in range(105):
            http.post(f"{base}/v1/refunds", headers={"Idempotency-Key": f"act_{n}"},
                      data={"charge": "ch_1", "amount": 1, "metadata[action_id]": f"act_{n}"})
    found = _stripe(base).find_refund(PaymentTarget("stripe", "charge", "ch_1"), "act_0")
    assert found is not None and found.provider_ref == fake.refunds["act_0"]["id"]


def test_every_stripe_call_names_the_pinned_api_version(provider):
    """Stripe-Version on every call is ours, not stripe-python's default, and it is the version
    the sample events carry: a new SDK cannot change the shapes Stripe answers with."""
    fake, base = provider
    fake.add_payment("ch_1", 6000, "USD")
    adapter = _stripe(base)
    adapter.refund(PaymentTarget("stripe", "charge", "ch_1"), Money(1000, "USD"), "test", "act_1",
                   {})
    adapter.find_refund(PaymentTarget("stripe", "charge", "ch_1"), "act_1")
    adapter.credit_customer_balance("cus_1", Money(500, "USD"), "credit", "act_2")
    fake.add_subscription("sub_1")
    adapter.cancel_subscription("sub_1", datetime(2030, 1, 1, tzinfo=UTC), "test", "act_3")
    assert len(fake.requests) == 4
    assert {r.headers.get("Stripe-Version") for r in fake.requests} == {STRIPE_API_VERSION}
    event = samples.stripe_event("charge.succeeded", samples.Scenario(key="version"))
    assert event["api_version"] == STRIPE_API_VERSION


# -- learning from webhooks ----------------------------------------------------------------------


def test_it_learns_stripe_charges_and_disputes_from_events(provider):
    """charge.succeeded books the capture and its intent; a dispute stops refunds until won."""
    fake, base = provider
    scenario = samples.Scenario(key="observe", amount=4200, currency="gbp")
    fake.observe(samples.stripe_event("charge.succeeded", scenario))
    assert fake.books() == {scenario.charge_id: (4200, 0, "GBP")}
    dispute = samples.stripe_event("charge.dispute.created", scenario)
    fake.observe(dispute)
    assert _refused(lambda: _refund(base, "charge", scenario.charge_id, 100, "a", "GBP")
                    ).code == ErrorCode.DISPUTED
    dispute["data"]["object"]["status"] = "lost"
    fake.observe(dispute)
    assert _refused(lambda: _refund(base, "charge", scenario.charge_id, 100, "a2", "GBP")
                    ).code == ErrorCode.DISPUTED
    dispute["data"]["object"]["status"] = "won"
    fake.observe(dispute)
    intent = scenario.stripe_id("payment_intent")
    assert _refund(base, "payment_intent", intent, 4200, "b", "GBP").settled
    assert fake.books() == {scenario.charge_id: (4200, 4200, "GBP")}


def _paypal_dispute(event_type: str, transaction: str, outcome: str | None = None
                    ) -> dict[str, Any]:
    resource: dict[str, Any] = {"dispute_id": "PP-D-1", "status": "OPEN",
                                "disputed_transactions": [{"seller_transaction_id": transaction}]}
    if outcome is not None:
        resource |= {"status": "RESOLVED", "dispute_outcome": {"outcome_code": outcome}}
    return {"id": "WH-1", "event_type": event_type, "resource_type": "dispute",
            "resource": resource}


def test_it_learns_paypal_sales_captures_and_disputes_from_events(provider):
    """Sales and captures book their amounts; a dispute refuses refunds until the seller wins."""
    fake, base = provider
    scenario = samples.Scenario(key="observe", amount=2000, payment_method="paypal")
    sale = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario)
    capture = samples.paypal_event("PAYMENT.CAPTURE.COMPLETED", scenario)
    fake.observe(sale)
    fake.observe(capture)
    sale_id, capture_id = sale["resource"]["id"], capture["resource"]["id"]
    assert fake.books() == {sale_id: (2000, 0, "USD"), capture_id: (2000, 0, "USD")}
    fake.observe(_paypal_dispute("CUSTOMER.DISPUTE.CREATED", capture_id))
    assert _refused(lambda: _refund(base, "capture", capture_id, 100, "a")).code == (
        ErrorCode.DISPUTED)
    fake.observe(_paypal_dispute("CUSTOMER.DISPUTE.RESOLVED", capture_id, "RESOLVED_BUYER_FAVOUR"))
    assert _refused(lambda: _refund(base, "capture", capture_id, 100, "b")).code == (
        ErrorCode.DISPUTED)
    fake.observe(_paypal_dispute("CUSTOMER.DISPUTE.RESOLVED", capture_id,
                                 "RESOLVED_SELLER_FAVOUR"))
    assert _refund(base, "capture", capture_id, 100, "c").settled
    assert _refund(base, "sale", sale_id, 2000, "d").settled


def test_it_ignores_payloads_it_cannot_read(provider):
    """Other events, a sale with no amount and a failed charge leave the books empty."""
    fake, _ = provider
    scenario = samples.Scenario(key="ignored", payment_method="paypal")
    broken = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario)
    del broken["resource"]["amount"]
    failed = samples.stripe_event("charge.succeeded", scenario, status="failed")
    for payload in ({}, {"object": "event"}, broken, failed,
                    samples.stripe_event("invoice.paid", scenario),
                    samples.paypal_event("BILLING.SUBSCRIPTION.CREATED", scenario)):
        fake.observe(payload)
    assert fake.books() == {}


# -- leniency ------------------------------------------------------------------------------------


def test_lenient_refunds_unknown_payments_as_captured_for_what_is_refunded():
    """Unknown payments are refunded once per key, booked as captured for that; known checked."""
    with _serving(lenient=True) as (fake, base):
        fake.add_payment("ch_known", 1000, "USD")
        first = _refund(base, "charge", "ch_unknown", 700, "act_1")
        assert _refund(base, "charge", "ch_unknown", 700, "act_1") == first
        assert _refund(base, "sale", "SALE9", 300, "act_2").settled
        assert _refund(base, "sale", "SALE9", 200, "act_3").settled
        assert _refused(lambda: _refund(base, "charge", "ch_known", 1500, "act_4")).code == (
            ErrorCode.AMOUNT_TOO_LARGE)
        assert fake.books() == {"ch_known": (1000, 0, "USD"), "ch_unknown": (700, 700, "USD"),
                                "SALE9": (500, 500, "USD")}
        assert_books_balanced(fake)


def test_strict_is_the_default(provider):
    """Without leniency a payment it was never told about is unknown."""
    fake, base = provider
    assert not fake.lenient
    assert _refused(lambda: _refund(base, "charge", "ch_1", 100, "a")).code == ErrorCode.NOT_FOUND


# -- the reporting reads: what the reports and backfill list, per account ------------------------

_WINDOW = (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


def _this_hour() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=30), now + timedelta(minutes=30)


def _observe_paid(fake: FakeProviders, key: str, account: str, provider: str = "stripe"
                  ) -> samples.Scenario:
    if provider == "stripe":
        scenario = samples.Scenario(key=key, amount=5000)
        for kind in ("invoice.paid", "charge.succeeded"):
            fake.observe(samples.stripe_event(kind, scenario), account=account)
    else:
        scenario = samples.Scenario(key=key, amount=3000, payment_method="paypal")
        fake.observe(samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario), account=account)
    return scenario


def test_stripe_reads_list_each_accounts_captures_refunds_and_events(provider):
    """Balance transactions (source expanded) and events, through our reporting adapter, each
    key seeing its own account only."""
    from adapters.stripe_reports import StripeReports

    fake, base = provider
    mine = _observe_paid(fake, "reads-mine", "sk_test_mine")
    _observe_paid(fake, "reads-other", "sk_test_other")
    reports = StripeReports(StripeSettings(api_key="sk_test_mine", api_base=base), timeout=5)
    charge = mine.stripe_id("charge")
    refunded = StripeAdapter(StripeSettings(api_key="sk_test_mine", api_base=base),
                             timeout=5).refund(PaymentTarget("stripe", "charge", charge),
                                               Money(1200, "USD"), "test", "key-r", {})

    txns = list(reports.balance_transactions(*_WINDOW))
    assert [(t["type"], t["amount"], t["source"]["id"]) for t in txns] == [
        ("charge", 5000, charge)]  # the refund is dated now, outside the window
    recent = list(reports.balance_transactions(*_this_hour()))
    assert [(t["type"], t["amount"], t["source"].get("charge")) for t in recent] == [
        ("refund", -1200, charge)]
    assert recent[0]["source"]["id"] == refunded.provider_ref
    events = list(reports.events(*_WINDOW))
    assert sorted(e["type"] for e in events) == ["charge.succeeded", "invoice.paid"]
    assert all(e["data"]["object"].get("customer") == mine.customer_id for e in events)


def test_paypal_reads_list_each_clients_sales_refunds_and_events(provider):
    """Transaction Search (T0002 sales, T1107 refunds naming their sale) and the webhook-event
    listing, through our reporting adapter, each client id seeing its own."""
    from adapters.paypal_reports import PayPalReports

    fake, base = provider
    mine = _observe_paid(fake, "reads-mine", "client-mine", "paypal")
    _observe_paid(fake, "reads-other", "client-other", "paypal")
    settings = PayPalSettings(client_id="client-mine", client_secret="s", api_base=base)
    sale = mine.paypal_id("sale")
    PayPalAdapter(settings, timeout=5).refund(PaymentTarget("paypal", "sale", sale),
                                              Money(1000, "USD"), "test", "key-p", {})
    reports = PayPalReports(settings, timeout=5)

    infos = list(reports.transactions(*_WINDOW))
    assert [(i["transaction_event_code"], i["transaction_amount"]["value"],
             i["transaction_id"]) for i in infos] == [("T0002", "30.00", sale)]
    refunds = list(reports.transactions(*_this_hour()))
    assert [(i["transaction_event_code"], i["transaction_amount"]["value"],
             i["paypal_reference_id"]) for i in refunds] == [("T1107", "-10.00", sale)]
    events = list(reports.webhook_events(*_WINDOW))
    assert [e["event_type"] for e in events] == ["PAYMENT.SALE.COMPLETED"]
    assert events[0]["resource"]["id"] == sale
