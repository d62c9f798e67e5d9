"""`gateway simulate` dates a sample event when asked (now by default): the event and the object
it reports happen at that time, so a refund request filed just after is inside the windows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.envelope import parse_time
from sandbox.simulate import sample_event

AT = datetime(2026, 11, 29, 12, 30, 5, tzinfo=UTC)


@pytest.mark.parametrize("event_type", ["charge.succeeded", "invoice.paid",
                                        "customer.subscription.created"])
def test_a_stripe_sample_happens_at_the_time_given_its_object_just_before(event_type):
    event = sample_event("stripe", event_type, "key", AT)
    assert event["created"] == int(AT.timestamp())
    assert 0 <= int(AT.timestamp()) - event["data"]["object"]["created"] < 120


@pytest.mark.parametrize("event_type", ["PAYMENT.SALE.COMPLETED", "BILLING.SUBSCRIPTION.ACTIVATED"])
def test_a_paypal_sample_happens_at_the_time_given_its_resource_just_before(event_type):
    event = sample_event("paypal", event_type, "key", AT)
    assert parse_time(event["create_time"]) == AT
    resource_at = parse_time(event["resource"]["create_time"])
    assert resource_at is not None and 0 <= (AT - resource_at).total_seconds() < 120


def test_without_a_time_the_samples_keep_their_fixed_calendar():
    event = sample_event("stripe", "charge.succeeded", "key")
    assert datetime.fromtimestamp(event["created"], UTC).date().isoformat() == "2026-01-01"


def test_the_same_key_names_the_same_objects_at_any_time():
    early = sample_event("stripe", "charge.succeeded", "key", AT)
    late = sample_event("stripe", "charge.succeeded", "key", AT.replace(year=2027))
    assert early["data"]["object"]["id"] == late["data"]["object"]["id"]
