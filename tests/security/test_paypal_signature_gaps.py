"""A PayPal delivery whose body gained whitespace after it was signed is refused at the door."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ledger.models import InboxEvent
from sandbox import samples
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID
from tests.support.paypal import shared_signer


@pytest.mark.parametrize(("before", "after"), [(b"", b"\n"), (b" ", b"")],
                         ids=["trailing newline", "leading space"])
def test_whitespace_added_after_signing_gets_400_bad_signature(client, container, before, after):
    """A correctly signed sale, padded with whitespace on the way, is refused and not stored."""
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED",
                                 samples.Scenario(key="padded", payment_method="paypal"))
    raw = json.dumps(event, separators=(",", ":")).encode()
    headers = shared_signer().headers(raw, PAYPAL_WEBHOOK_ID)
    resp = client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=before + raw + after,
                       headers=headers, content_type="application/json")
    assert resp.status_code == 400 and resp.json["error"]["code"] == "bad_signature"
    with container.sessions() as s:
        assert s.scalars(select(InboxEvent)).all() == []
