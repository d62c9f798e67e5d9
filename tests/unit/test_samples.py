"""Sample provider events (sandbox.samples) and their signed delivery (sandbox.simulator)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import stripe
from hypothesis import given
from hypothesis import strategies as st

from policy.money import Money, from_decimal_string, to_decimal_string
from sandbox import samples, simulator
from sandbox.samples import (
    PAYPAL_EVENT_TYPES,
    STRIPE_EVENT_TYPES,
    Scenario,
    paypal_event,
    paypal_lifecycle,
    stripe_event,
    stripe_lifecycle,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# The scenario the checked-in fixtures were generated from; regenerate them with
#   json.dumps(stripe_event(t, FIXTURE_SCENARIO), indent=2, ensure_ascii=False) + "\n"
FIXTURE_SCENARIO = Scenario("fixture", metadata={"account_id": "1042"})
WEBHOOK_URL = "http://127.0.0.1:8000/webhooks/theopenhost/stripe"
PAYPAL_URL = "http://127.0.0.1:8000/webhooks/theopenhost/paypal"
SECRET = "whsec_test_secret"

STRIPE_OBJECT_OF = {
    "customer.subscription": "subscription",
    "invoice": "invoice",
    "charge.dispute": "dispute",
    "charge": "charge",
    "refund": "refund",
}
PAYPAL_RESOURCE_OF = {
    "BILLING.SUBSCRIPTION": "subscription",
    "PAYMENT.SALE.COMPLETED": "sale",
    "PAYMENT.CAPTURE.COMPLETED": "capture",
    "PAYMENT.SALE.REFUNDED": "refund",
    "PAYMENT.SALE.REVERSED": "refund",
    "PAYMENT.CAPTURE.REFUNDED": "refund",
    "PAYMENT.CAPTURE.REVERSED": "refund",
}
ISO_EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def scenario() -> Scenario:
    return Scenario("demo-1")


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) pair in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def _stripe_object_kind(event_type: str) -> str:
    prefix = next(p for p in STRIPE_OBJECT_OF if event_type.startswith(p + "."))
    return STRIPE_OBJECT_OF[prefix]


def _paypal_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- every type builds --------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", STRIPE_EVENT_TYPES)
def test_every_stripe_type_builds_an_event_envelope_stripe_would_send(event_type, scenario):
    """Each Stripe type gives an Event with the envelope fields and the right object inside."""
    event = stripe_event(event_type, scenario)
    assert set(event) == {"id", "object", "api_version", "created", "data", "livemode",
                          "pending_webhooks", "request", "type"}
    assert event["id"].startswith("evt_") and len(event["id"]) == 28
    assert (event["object"], event["type"]) == ("event", event_type)
    assert isinstance(event["created"], int) and not isinstance(event["created"], bool)
    assert event["livemode"] is False
    assert set(event["request"]) == {"id", "idempotency_key"}
    assert event["data"]["object"]["object"] == _stripe_object_kind(event_type)


@pytest.mark.parametrize("event_type", PAYPAL_EVENT_TYPES)
def test_every_paypal_type_builds_an_event_envelope_paypal_would_send(event_type, scenario):
    """Each PayPal type gives a webhook event with WH- id, ISO time, resource and links."""
    event = paypal_event(event_type, scenario)
    assert re.fullmatch(r"WH-[0-9A-Z]{17}-[0-9A-Z]{17}", event["id"])
    assert event["event_version"] == "1.0"
    assert ISO_EVENT_TIME.match(event["create_time"])
    assert event["event_type"] == event_type and event["summary"]
    prefix = next(p for p in PAYPAL_RESOURCE_OF if event_type.startswith(p))
    assert event["resource_type"] == PAYPAL_RESOURCE_OF[prefix]
    assert [link["rel"] for link in event["links"]] == ["self", "resend"]
    assert event["links"][0]["href"].endswith(f"/v1/notifications/webhooks-events/{event['id']}")
    assert ISO_TIME.match(event["resource"]["create_time"])


@pytest.mark.parametrize("event_type", PAYPAL_EVENT_TYPES)
def test_paypal_resource_version_is_sent_only_for_v2_resources(event_type, scenario):
    """Subscriptions and v2 captures and refunds carry resource_version 2.0; v1 sales none."""
    event = paypal_event(event_type, scenario)
    expected = None if event_type.startswith("PAYMENT.SALE.") else "2.0"
    assert event.get("resource_version") == expected


def test_unknown_event_types_are_refused(scenario):
    """A misspelt event type raises instead of building something vague."""
    with pytest.raises(ValueError, match="unknown Stripe"):
        stripe_event("invoice.payed", scenario)
    with pytest.raises(ValueError, match="unknown PayPal"):
        paypal_event("PAYMENT.SALE.DONE", scenario)


# -- ids --------------------------------------------------------------------------------------


def test_stripe_ids_carry_real_prefixes(scenario):
    """Scenario ids look like Stripe's: cus_, sub_, in_, ch_, pi_, re_, dp_, price_, prod_."""
    shapes = {
        "customer_id": r"cus_[0-9A-Za-z]{14}",
        "subscription_id": r"sub_1[0-9A-Za-z]{23}",
        "invoice_id": r"in_1[0-9A-Za-z]{23}",
        "charge_id": r"ch_3[0-9A-Za-z]{23}",
        "payment_intent_id": r"pi_3[0-9A-Za-z]{23}",
        "refund_id": r"re_3[0-9A-Za-z]{23}",
        "dispute_id": r"dp_1[0-9A-Za-z]{23}",
        "price_id": r"price_1[0-9A-Za-z]{23}",
        "product_id": r"prod_[0-9A-Za-z]{14}",
    }
    for name, pattern in shapes.items():
        assert re.fullmatch(pattern, getattr(scenario, name)), name


def test_paypal_ids_carry_real_prefixes(scenario):
    """PayPal ids: I- subscriptions, P- plans, 17-character transactions, 13-character payers."""
    assert re.fullmatch(r"I-[0-9A-Z]{12}", scenario.paypal_subscription_id)
    assert re.fullmatch(r"P-[0-9A-Z]{24}", scenario.paypal_plan_id)
    assert re.fullmatch(r"[0-9A-Z]{13}", scenario.paypal_payer_id)
    for name in ("paypal_sale_id", "paypal_capture_id", "paypal_refund_id", "paypal_order_id"):
        assert re.fullmatch(r"[0-9A-Z]{17}", getattr(scenario, name)), name


def test_the_same_key_always_gives_the_same_events():
    """Builders are deterministic: equal scenarios give equal events."""
    assert stripe_lifecycle(Scenario("k")) == stripe_lifecycle(Scenario("k"))
    assert paypal_lifecycle(Scenario("k")) == paypal_lifecycle(Scenario("k"))


def test_different_keys_never_share_ids():
    """Two scenarios with different keys have disjoint ids."""
    first, second = Scenario("a"), Scenario("b")
    names = ("customer_id", "subscription_id", "invoice_id", "charge_id", "refund_id",
             "paypal_subscription_id", "paypal_sale_id")
    assert not {getattr(first, n) for n in names} & {getattr(second, n) for n in names}


def test_event_ids_are_unique_within_a_lifecycle(scenario):
    """No two events of a life cycle share an id (an inbox dedupes on it)."""
    for events in (stripe_lifecycle(scenario), paypal_lifecycle(scenario)):
        ids = [event["id"] for event in events]
        assert len(ids) == len(set(ids))


def test_stripe_lifecycle_events_agree_on_customer_subscription_invoice_and_charge(scenario):
    """Every reference between objects in the Stripe life cycle points at the right id."""
    for event in stripe_lifecycle(scenario):
        obj = event["data"]["object"]
        kind = obj["object"]
        if kind in ("subscription", "invoice", "charge"):
            assert obj["customer"] == scenario.customer_id
        if kind == "invoice":
            assert obj["subscription"] == scenario.subscription_id
        if kind == "charge":
            invoice = obj["invoice"]
            paid = [e["data"]["object"] for e in stripe_lifecycle(scenario)
                    if e["type"] == "invoice.paid" and e["data"]["object"]["id"] == invoice]
            assert paid and paid[0]["charge"] == obj["id"]
            assert paid[0]["payment_intent"] == obj["payment_intent"]
        if kind == "refund":
            charges = {e["data"]["object"]["id"]: e["data"]["object"]
                       for e in stripe_lifecycle(scenario) if e["type"] == "charge.refunded"}
            assert obj["charge"] in charges
            assert obj["payment_intent"] == charges[obj["charge"]]["payment_intent"]


def test_first_cycle_events_use_the_scenario_ids(scenario):
    """Cycle 1's invoice, charge, payment intent, refund and dispute are the scenario's ids."""
    charge = stripe_event("charge.succeeded", scenario)["data"]["object"]
    assert (charge["id"], charge["invoice"], charge["payment_intent"]) == (
        scenario.charge_id, scenario.invoice_id, scenario.payment_intent_id)
    refund = stripe_event("refund.created", scenario)["data"]["object"]
    assert (refund["id"], refund["charge"]) == (scenario.refund_id, scenario.charge_id)
    dispute = stripe_event("charge.dispute.created", scenario)["data"]["object"]
    assert (dispute["id"], dispute["charge"]) == (scenario.dispute_id, scenario.charge_id)
    price = stripe_event("customer.subscription.created", scenario)["data"]["object"]["items"][
        "data"][0]["price"]
    assert (price["id"], price["product"]) == (scenario.price_id, scenario.product_id)


def test_renewal_cycles_get_their_own_invoice_and_charge(scenario):
    """Cycle 2's invoice and charge differ from cycle 1's and point at each other."""
    first = stripe_event("invoice.paid", scenario, cycle=1)["data"]["object"]
    second = stripe_event("invoice.paid", scenario, cycle=2)["data"]["object"]
    assert first["id"] != second["id"] and first["charge"] != second["charge"]
    charge = stripe_event("charge.succeeded", scenario, cycle=2)["data"]["object"]
    assert charge["invoice"] == second["id"] and charge["id"] == second["charge"]


def test_paypal_lifecycle_events_agree_on_subscription_sale_and_refund(scenario):
    """Sales name the subscription; the refund names the renewal sale it returns."""
    events = paypal_lifecycle(scenario)
    sales = [e["resource"] for e in events if e["event_type"] == "PAYMENT.SALE.COMPLETED"]
    assert all(sale["billing_agreement_id"] == scenario.paypal_subscription_id for sale in sales)
    assert sales[0]["id"] == scenario.paypal_sale_id != sales[1]["id"]
    refund = next(e["resource"] for e in events if e["event_type"] == "PAYMENT.SALE.REFUNDED")
    assert refund["sale_id"] == sales[1]["id"]
    assert any(link["rel"] == "sale" and link["href"].endswith(sales[1]["id"])
               for link in refund["links"])
    for event in events:
        if event["resource_type"] == "subscription":
            assert event["resource"]["id"] == scenario.paypal_subscription_id
            assert event["resource"]["plan_id"] == scenario.paypal_plan_id
            assert event["resource"]["subscriber"]["payer_id"] == scenario.paypal_payer_id


def test_capture_refund_links_up_to_the_capture(scenario):
    """A v2 capture refund's `up` link is the capture; the capture's `up` is its order."""
    capture = paypal_event("PAYMENT.CAPTURE.COMPLETED", scenario)["resource"]
    assert capture["id"] == scenario.paypal_capture_id
    order_id = capture["supplementary_data"]["related_ids"]["order_id"]
    assert {link["rel"]: link["href"] for link in capture["links"]}["up"].endswith(order_id)
    for kind in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
        links = {link["rel"]: link["href"] for link in paypal_event(kind, scenario)["resource"]
                 ["links"]}
        assert links["up"].endswith(f"/v2/payments/captures/{scenario.paypal_capture_id}")


# -- Stripe object details -----------------------------------------------------------------------


def test_invoice_names_its_subscription_where_old_and_new_api_versions_do(scenario):
    """`invoice.subscription` and `invoice.parent.subscription_details.subscription` agree."""
    invoice = stripe_event("invoice.paid", scenario)["data"]["object"]
    assert invoice["subscription"] == scenario.subscription_id
    assert invoice["parent"]["subscription_details"]["subscription"] == scenario.subscription_id


def test_subscription_periods_appear_on_the_subscription_and_its_first_item(scenario):
    """current_period_start/end sit on the subscription and on items.data[0], equal."""
    subscription = stripe_event("customer.subscription.created", scenario)["data"]["object"]
    item = subscription["items"]["data"][0]
    assert (subscription["current_period_start"], subscription["current_period_end"]) == (
        item["current_period_start"], item["current_period_end"]) == scenario.period(1)
    assert item["price"]["unit_amount"] == scenario.amount
    assert item["price"]["recurring"]["interval"] == "month"
    assert item["price"]["recurring"]["interval_count"] == 1


def test_monthly_periods_keep_the_anchor_day_clamped_to_month_end():
    """A subscription anchored on 31 January renews on 28 February, then 31 March."""
    january_31 = int(datetime.fromisoformat("2026-01-31T00:00:00+00:00").timestamp())
    s = Scenario("anchor", period_start=january_31)
    ends = [datetime.fromtimestamp(s.period(n)[1]).day for n in (1, 2)]
    assert ends == [28, 31]


def test_invoice_status_moves_from_draft_to_open_to_paid(scenario):
    """invoice.created is draft, invoice.finalized open with a number, invoice.paid paid."""
    created, finalized, paid = (stripe_event(t, scenario)["data"]["object"]
                                for t in ("invoice.created", "invoice.finalized", "invoice.paid"))
    assert [created["status"], finalized["status"], paid["status"]] == ["draft", "open", "paid"]
    assert created["number"] is None and finalized["number"] == paid["number"]
    assert (paid["amount_due"], paid["amount_paid"], paid["amount_remaining"]) == (1999, 1999, 0)
    assert finalized["amount_paid"] == 0
    assert paid["status_transitions"]["paid_at"] > paid["status_transitions"]["finalized_at"]


def test_failed_invoice_stays_open_with_a_next_attempt(scenario):
    """invoice.payment_failed leaves the invoice open, unpaid, with a retry scheduled."""
    invoice = stripe_event("invoice.payment_failed", scenario, cycle=2)["data"]["object"]
    assert (invoice["status"], invoice["amount_paid"], invoice["attempted"]) == ("open", 0, True)
    assert invoice["next_payment_attempt"] > invoice["created"]


def test_billing_reason_distinguishes_the_first_invoice_from_renewals(scenario):
    """The first invoice is subscription_create; later ones subscription_cycle."""
    assert stripe_event("invoice.paid", scenario)["data"]["object"]["billing_reason"] == (
        "subscription_create")
    renewal = stripe_event("invoice.paid", scenario, cycle=3)["data"]["object"]
    assert renewal["billing_reason"] == "subscription_cycle"
    assert renewal["number"].endswith("-0003")


def test_renewal_invoice_bills_the_new_period_in_its_line(scenario):
    """A renewal invoice's own period is the cycle just ended; its line bills the new one."""
    invoice = stripe_event("invoice.paid", scenario, cycle=2)["data"]["object"]
    assert (invoice["period_start"], invoice["period_end"]) == scenario.period(1)
    line = invoice["lines"]["data"][0]["period"]
    assert (line["start"], line["end"]) == scenario.period(2)


def test_upcoming_invoice_has_no_id_and_previews_the_next_cycle(scenario):
    """invoice.upcoming carries no `id` key, as Stripe sends it, and bills the next cycle."""
    invoice = stripe_event("invoice.upcoming", scenario)["data"]["object"]
    assert "id" not in invoice
    assert invoice["billing_reason"] == "upcoming"
    assert invoice["created"] == scenario.period(2)[0]
    assert invoice["lines"]["data"][0]["period"]["start"] == scenario.period(2)[0]


def test_charge_refunded_carries_the_refunded_amount_and_flag(scenario):
    """A full refund sets refunded; previous_attributes shows what it was."""
    event = stripe_event("charge.refunded", scenario)
    charge = event["data"]["object"]
    assert (charge["amount_refunded"], charge["refunded"]) == (1999, True)
    assert event["data"]["previous_attributes"] == {"amount_refunded": 0, "refunded": False}


def test_partial_refund_leaves_the_charge_not_fully_refunded():
    """With refund_amount below the charge, `refunded` stays false and refunds agree."""
    s = Scenario("partial", refund_amount=500)
    charge = stripe_event("charge.refunded", s)["data"]["object"]
    assert (charge["amount_refunded"], charge["refunded"]) == (500, False)
    assert stripe_event("refund.created", s)["data"]["object"]["amount"] == 500


@pytest.mark.parametrize(
    ("event_type", "status", "failure_reason"),
    [("refund.created", "pending", None), ("refund.updated", "succeeded", None),
     ("refund.failed", "failed", "expired_or_canceled_card")],
)
def test_refund_events_carry_status_and_failure_reason(scenario, event_type, status,
                                                       failure_reason):
    """refund.* events carry the refund with its status, and a failure_reason when failed."""
    refund = stripe_event(event_type, scenario)["data"]["object"]
    assert (refund["status"], refund["failure_reason"]) == (status, failure_reason)
    assert refund["payment_intent"] == scenario.payment_intent_id


def test_dispute_names_the_charge_amount_reason_and_status(scenario):
    """charge.dispute.created carries a dispute needing a response for the whole charge."""
    dispute = stripe_event("charge.dispute.created", scenario)["data"]["object"]
    assert (dispute["charge"], dispute["amount"]) == (scenario.charge_id, scenario.amount)
    assert (dispute["reason"], dispute["status"]) == ("fraudulent", "needs_response")


def test_subscription_updated_reports_a_renewal_with_the_old_period(scenario):
    """A renewal update moves the period and says where it was in previous_attributes."""
    event = stripe_event("customer.subscription.updated", scenario, cycle=2)
    assert event["data"]["object"]["current_period_start"] == scenario.period(2)[0]
    assert event["data"]["previous_attributes"]["current_period_start"] == scenario.period(1)[0]


def test_subscription_updated_reports_a_cancel_at_period_end(scenario):
    """A cancel request sets cancel_at_period_end and canceled_at, status still active."""
    event = stripe_event("customer.subscription.updated", scenario, change="cancel_at_period_end")
    subscription = event["data"]["object"]
    assert subscription["cancel_at_period_end"] is True and subscription["status"] == "active"
    assert subscription["cancel_at"] == scenario.period(1)[1]
    assert subscription["canceled_at"] == event["created"]
    assert event["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert event["request"]["id"].startswith("req_")


def test_subscription_deleted_is_canceled_and_ended_at_period_end(scenario):
    """customer.subscription.deleted is canceled, ended at period end, and automatic."""
    event = stripe_event("customer.subscription.deleted", scenario)
    subscription = event["data"]["object"]
    assert subscription["status"] == "canceled"
    assert subscription["ended_at"] == scenario.period(1)[1] == event["created"]
    assert subscription["canceled_at"] < subscription["ended_at"]
    assert event["request"] == {"id": None, "idempotency_key": None}


def test_scenario_metadata_reaches_the_subscription_and_invoice():
    """Metadata set on the scenario appears where merchants read it back."""
    s = Scenario("meta", metadata={"account_id": "1042"})
    assert stripe_event("customer.subscription.created", s)["data"]["object"]["metadata"] == {
        "account_id": "1042"}
    invoice = stripe_event("invoice.paid", s)["data"]["object"]
    assert invoice["parent"]["subscription_details"]["metadata"] == {"account_id": "1042"}


def test_stripe_overrides_are_deep_merged_into_the_object(scenario):
    """Overrides replace scalars and merge nested dicts inside data.object."""
    event = stripe_event("charge.succeeded", scenario, amount_refunded=500,
                         outcome={"risk_level": "elevated"})
    charge = event["data"]["object"]
    assert charge["amount_refunded"] == 500
    assert charge["outcome"]["risk_level"] == "elevated"
    assert charge["outcome"]["type"] == "authorized"


def test_created_and_event_id_can_be_set(scenario):
    """`created` and `event_id` set the envelope only."""
    event = stripe_event("invoice.paid", scenario, created=1_800_000_000, event_id="evt_fixed")
    assert (event["id"], event["created"]) == ("evt_fixed", 1_800_000_000)


# -- PayPal object details -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "status"),
    [("BILLING.SUBSCRIPTION.CREATED", "APPROVAL_PENDING"),
     ("BILLING.SUBSCRIPTION.ACTIVATED", "ACTIVE"), ("BILLING.SUBSCRIPTION.UPDATED", "ACTIVE"),
     ("BILLING.SUBSCRIPTION.CANCELLED", "CANCELLED"),
     ("BILLING.SUBSCRIPTION.SUSPENDED", "SUSPENDED"), ("BILLING.SUBSCRIPTION.EXPIRED", "EXPIRED"),
     ("BILLING.SUBSCRIPTION.PAYMENT.FAILED", "ACTIVE")],
)
def test_paypal_subscription_events_carry_the_subscription_status(scenario, event_type, status):
    """Each BILLING.SUBSCRIPTION.* event carries the subscription in the status it names."""
    resource = paypal_event(event_type, scenario)["resource"]
    assert resource["status"] == status
    assert resource["subscriber"]["email_address"] == scenario.customer_email
    assert resource["subscriber"]["name"] == {"given_name": "Jenny", "surname": "Rosen"}
    assert ISO_TIME.match(resource["status_update_time"])


def test_activated_subscription_reports_last_payment_and_next_billing(scenario):
    """An active subscription's billing_info has the last payment and the next billing time."""
    info = paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario)["resource"]["billing_info"]
    assert info["last_payment"]["amount"] == {"currency_code": "USD", "value": "19.99"}
    assert _paypal_time(info["next_billing_time"]).timestamp() == scenario.period(1)[1]


def test_pending_subscription_has_no_billing_info_and_an_approve_link(scenario):
    """BILLING.SUBSCRIPTION.CREATED is APPROVAL_PENDING: no billing_info, an approve link."""
    resource = paypal_event("BILLING.SUBSCRIPTION.CREATED", scenario)["resource"]
    assert "billing_info" not in resource
    assert "approve" in {link["rel"] for link in resource["links"]}


def test_failed_subscription_payment_reports_the_failure(scenario):
    """BILLING.SUBSCRIPTION.PAYMENT.FAILED counts the failure and the outstanding balance."""
    info = paypal_event("BILLING.SUBSCRIPTION.PAYMENT.FAILED", scenario, cycle=2)["resource"][
        "billing_info"]
    assert info["failed_payments_count"] == 1
    assert info["outstanding_balance"]["value"] == "19.99"
    assert info["last_failed_payment"]["amount"]["value"] == "19.99"
    assert info["cycle_executions"][0]["cycles_completed"] == 1


def test_sale_reversal_carries_a_negative_total(scenario):
    """PAYMENT.SALE.REVERSED carries a refund-shaped resource whose total is negative."""
    resource = paypal_event("PAYMENT.SALE.REVERSED", scenario)["resource"]
    assert resource["amount"] == {"total": "-19.99", "currency": "USD"}
    assert resource["sale_id"] == scenario.paypal_sale_id


def test_paypal_overrides_and_create_time_are_applied(scenario):
    """Overrides merge into resource; a naive datetime create_time is taken as UTC."""
    event = paypal_event("PAYMENT.SALE.COMPLETED", scenario, create_time=datetime(2026, 3, 1),
                         event_id="WH-FIXED", state="pending", amount={"currency": "EUR"})
    assert (event["id"], event["create_time"]) == ("WH-FIXED", "2026-03-01T00:00:00.000Z")
    assert event["resource"]["state"] == "pending"
    assert event["resource"]["amount"]["currency"] == "EUR"
    assert event["resource"]["amount"]["total"] == "19.99"


# -- amounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", STRIPE_EVENT_TYPES)
def test_stripe_amounts_are_integers_in_minor_units(scenario, event_type):
    """Every Stripe amount field is an int (never a float or a string)."""
    event = stripe_event(event_type, scenario)
    for path, key, value in _walk(event["data"]):
        if (key == "amount" or key.startswith("amount_") or key == "unit_amount") and \
                not key.endswith("_decimal") and value is not None:
            assert type(value) is int, f"{path}.{key}={value!r}"


@pytest.mark.parametrize(("currency", "amount", "expected"), [
    ("usd", 1999, "19.99"), ("jpy", 1999, "1999"), ("kwd", 19999, "19.999"),
    ("huf", 199900, "1999"), ("eur", 5, "0.05"),
])
@pytest.mark.parametrize("event_type", PAYPAL_EVENT_TYPES)
def test_paypal_amounts_are_decimal_strings_in_the_currency_exponent(event_type, currency,
                                                                    amount, expected):
    """Every PayPal amount is a string with PayPal's decimals for the currency (JPY "1999")."""
    s = Scenario("amounts", currency=currency, amount=amount)
    event = paypal_event(event_type, s)
    found = 0
    for path, key, value in _walk(event["resource"]):
        if isinstance(value, dict) and ({"value", "currency_code"} <= set(value)
                                        or {"total", "currency"} <= set(value)
                                        or {"value", "currency"} <= set(value)):
            number = value.get("value", value.get("total"))
            code = value.get("currency_code", value.get("currency"))
            assert isinstance(number, str) and code == currency.upper(), f"{path}.{key}"
            assert to_decimal_string("paypal", from_decimal_string("paypal", number.lstrip("-"),
                                                                   code)) == number.lstrip("-")
            found += 1
    if not event_type.endswith(("CREATED", "CANCELLED", "EXPIRED", "UPDATED", "SUSPENDED")):
        assert found, "expected at least one amount"
    headline = _headline_amount(event)
    if headline is not None:
        assert headline.lstrip("-") == expected


def _headline_amount(event: dict[str, Any]) -> str | None:
    amount = event["resource"].get("amount")
    if amount is None:
        return None
    value: str | None = amount.get("value", amount.get("total"))
    return value


@given(amount=st.integers(min_value=1, max_value=10**9),
       currency=st.sampled_from(["usd", "eur", "jpy", "gbp", "kwd", "huf", "twd", "isk"]))
def test_paypal_sale_amount_parses_back_to_the_scenario_money(amount, currency):
    """For any amount and currency PayPal accepts, the sale total round-trips to Money."""
    if currency in ("huf", "twd") and amount % 100:
        return  # PayPal takes HUF and TWD in whole units only
    s = Scenario("roundtrip", amount=amount, currency=currency)
    sale = paypal_event("PAYMENT.SALE.COMPLETED", s)["resource"]
    assert from_decimal_string("paypal", sale["amount"]["total"], currency) == Money(amount,
                                                                                     currency)


def test_stripe_amounts_follow_stripe_exponents_for_isk():
    """ISK is zero-decimal in ISO but Stripe sends it with two (always-zero) decimals."""
    s = Scenario("isk", currency="isk", amount=1999)
    assert stripe_event("charge.succeeded", s)["data"]["object"]["amount"] == 199900


# -- ordering ------------------------------------------------------------------------------------


def test_stripe_lifecycle_is_strictly_ordered_in_time(scenario):
    """Each Stripe event of the life cycle is created after the one before."""
    events = stripe_lifecycle(scenario)
    times = [event["created"] for event in events]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert [e["type"] for e in events][0] == "customer.subscription.created"
    assert [e["type"] for e in events][-1] == "customer.subscription.deleted"


def test_stripe_lifecycle_covers_signup_renewal_cancel_and_refund(scenario):
    """The life cycle holds the brief's steps in order."""
    types = [event["type"] for event in stripe_lifecycle(scenario)]
    milestones = ["customer.subscription.created", "invoice.created", "invoice.finalized",
                  "charge.succeeded", "invoice.paid", "customer.subscription.updated",
                  "charge.refunded", "refund.created", "refund.updated",
                  "customer.subscription.deleted"]
    positions = [types.index(m) for m in milestones]
    assert positions == sorted(positions)


@pytest.mark.parametrize("interval", ["day", "week", "month", "year"])
def test_lifecycles_stay_ordered_for_every_interval(interval):
    """Short and long billing intervals both give strictly increasing event times."""
    s = Scenario("interval", interval=interval)
    stripe_times = [event["created"] for event in stripe_lifecycle(s)]
    paypal_times = [_paypal_time(event["create_time"]) for event in paypal_lifecycle(s)]
    assert all(a < b for a, b in zip(stripe_times, stripe_times[1:], strict=False))
    assert all(a < b for a, b in zip(paypal_times, paypal_times[1:], strict=False))


def test_paypal_lifecycle_is_strictly_ordered_in_time(scenario):
    """Each PayPal event of the life cycle is created after the one before."""
    events = paypal_lifecycle(scenario)
    times = [_paypal_time(event["create_time"]) for event in events]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    assert [e["event_type"] for e in events] == [
        "BILLING.SUBSCRIPTION.CREATED", "BILLING.SUBSCRIPTION.ACTIVATED", "PAYMENT.SALE.COMPLETED",
        "PAYMENT.SALE.COMPLETED", "PAYMENT.SALE.REFUNDED", "BILLING.SUBSCRIPTION.CANCELLED"]


def test_paypal_events_follow_the_resource_change(scenario):
    """A PayPal event is created after its resource's update_time, as PayPal emits them."""
    for event in paypal_lifecycle(scenario):
        assert _paypal_time(event["create_time"]) > _paypal_time(event["resource"]["update_time"])


def test_invalid_scenarios_are_refused():
    """A scenario with a float amount, bad interval or oversize refund is refused."""
    with pytest.raises(TypeError):
        Scenario("bad", amount=19.99)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Scenario("bad", interval="fortnight")
    with pytest.raises(ValueError):
        Scenario("bad", refund_amount=5000)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", STRIPE_EVENT_TYPES)
def test_stripe_fixture_matches_the_builder(event_type):
    """tests/fixtures/stripe/<type>.json is what stripe_event builds for FIXTURE_SCENARIO."""
    fixture = json.loads((FIXTURES / "stripe" / f"{event_type}.json").read_text("utf-8"))
    assert fixture == stripe_event(event_type, FIXTURE_SCENARIO)


@pytest.mark.parametrize("event_type", PAYPAL_EVENT_TYPES)
def test_paypal_fixture_matches_the_builder(event_type):
    """tests/fixtures/paypal/<type>.json is what paypal_event builds for FIXTURE_SCENARIO."""
    fixture = json.loads((FIXTURES / "paypal" / f"{event_type}.json").read_text("utf-8"))
    assert fixture == paypal_event(event_type, FIXTURE_SCENARIO)


# -- signing and sending -------------------------------------------------------------------------


class StubSigner:
    """Stands in for sandbox.devcerts: fixed transmission headers, and a record of each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []

    def headers(self, raw_body: bytes, webhook_id: str) -> dict[str, str]:
        self.calls.append((raw_body, webhook_id))
        return {
            "PAYPAL-TRANSMISSION-ID": "d4e7a4d0-0000-11f0-8000-000000000001",
            "PAYPAL-TRANSMISSION-TIME": "2026-01-01T00:00:05Z",
            "PAYPAL-TRANSMISSION-SIG": "c2lnbmF0dXJl",
            "PAYPAL-CERT-URL": "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }


def test_stripe_signature_header_verifies_with_the_stripe_library():
    """The header we make is accepted by stripe.WebhookSignature.verify_header."""
    body = simulator.encode(stripe_event("invoice.paid", Scenario("sig")))
    header = simulator.stripe_signature_header(body, SECRET, timestamp=1_767_225_600)
    assert re.fullmatch(r"t=1767225600,v1=[0-9a-f]{64}", header)
    assert stripe.WebhookSignature.verify_header(body, header, SECRET)


def test_stripe_signature_header_fails_with_another_secret_or_body():
    """The signature binds the secret and the exact bytes."""
    body = simulator.encode(stripe_event("invoice.paid", Scenario("sig")))
    header = simulator.stripe_signature_header(body, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, header, "whsec_other")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body + b" ", header, SECRET)


def test_encode_pretty_prints_stripe_and_compacts_paypal(scenario):
    """Stripe bodies are two-space indented JSON, PayPal's compact; both UTF-8 round-trip."""
    stripe_body = simulator.encode(stripe_event("invoice.paid", scenario))
    paypal_body = simulator.encode(paypal_event("PAYMENT.SALE.COMPLETED", scenario))
    assert stripe_body.startswith(b'{\n  "id": "evt_')
    assert b"\n" not in paypal_body and paypal_body.startswith(b'{"id":"WH-')
    assert "×".encode() in stripe_body  # the line description, sent as UTF-8, not \u00d7
    assert json.loads(stripe_body) == stripe_event("invoice.paid", scenario)


@responses.activate
def test_send_stripe_posts_the_exact_signed_bytes(scenario):
    """send_stripe POSTs encode(event) with a Stripe-Signature that verifies over those bytes."""
    responses.post(WEBHOOK_URL, json={"received": True}, status=200)
    event = stripe_event("charge.succeeded", scenario)
    result = simulator.send_stripe(WEBHOOK_URL, event, SECRET)
    assert result == simulator.SendResult(200, {"received": True}, event["id"])
    request = responses.calls[0].request
    assert request.body == simulator.encode(event)
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    header = request.headers["Stripe-Signature"]
    assert isinstance(header, str)
    assert stripe.WebhookSignature.verify_header(request.body, header, SECRET, tolerance=300)


@responses.activate
def test_send_paypal_posts_the_exact_bytes_with_the_signer_headers(scenario):
    """send_paypal asks the signer about the exact body and sends its headers with it."""
    responses.post(PAYPAL_URL, json={"status": "queued"}, status=202)
    event = paypal_event("PAYMENT.SALE.COMPLETED", scenario)
    signer = StubSigner()
    result = simulator.send_paypal(PAYPAL_URL, event, signer, "WH-ID-1")
    assert result == simulator.SendResult(202, {"status": "queued"}, event["id"])
    request = responses.calls[0].request
    assert signer.calls == [(simulator.encode(event), "WH-ID-1")]
    assert request.body == simulator.encode(event)
    for name, value in signer.headers(b"", "").items():
        assert request.headers[name] == value
    assert request.headers["Content-Type"] == "application/json"


@responses.activate
def test_send_returns_a_text_body_when_the_answer_is_not_json(scenario):
    """A non-JSON answer (a proxy's error page) comes back as text with its status."""
    responses.post(WEBHOOK_URL, body="Bad Gateway", status=502)
    result = simulator.send_stripe(WEBHOOK_URL, stripe_event("invoice.paid", scenario), SECRET)
    assert (result.status, result.body) == (502, "Bad Gateway")


@responses.activate
def test_send_uses_the_given_session(scenario):
    """A caller's requests.Session carries the delivery (the seam for retries and proxies)."""
    responses.post(WEBHOOK_URL, json={}, status=200)
    session = requests.Session()
    session.headers["X-Test-Session"] = "yes"
    simulator.send_stripe(WEBHOOK_URL, stripe_event("invoice.paid", scenario), SECRET,
                          session=session)
    assert responses.calls[0].request.headers["X-Test-Session"] == "yes"


@responses.activate
def test_an_unreachable_gateway_raises_a_delivery_error(scenario):
    """A refused connection becomes DeliveryError naming the URL and the event."""
    responses.post(WEBHOOK_URL, body=requests.ConnectionError("refused"))
    event = stripe_event("invoice.paid", scenario)
    with pytest.raises(simulator.DeliveryError) as caught:
        simulator.send_stripe(WEBHOOK_URL, event, SECRET)
    assert (caught.value.url, caught.value.event_id) == (WEBHOOK_URL, event["id"])


def test_samples_module_does_no_io():
    """samples imports nothing that talks to the network or the clock."""
    source = Path(samples.__file__).read_text("utf-8")
    forbidden_names = ("import requests", "import stripe", "time.time", "datetime.now",
                       "import random")
    for forbidden in forbidden_names:
        assert forbidden not in source
