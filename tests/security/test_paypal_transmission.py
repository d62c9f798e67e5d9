"""A captured PayPal delivery cannot carry a forged body.

PayPal signs ``transmission_id|time|webhook_id|crc32(body)``, and a CRC32 is no hash: anyone
holding one delivery can write a different body with the same CRC32 and send it under the
captured headers, and the signature still verifies. The gateway binds each transmission to the
event it first carried; a second event under it is refused. Redeliveries of the same event, under
the same transmission or a new one, stay harmless duplicates.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from ledger.models import InboxEvent
from sandbox import samples
from service.bootstrap import Container
from tests.support import stripe as sig
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID, settle
from tests.support.paypal import shared_signer

PAD = 48  # pad characters, each 'a' or 'c': one free bit apiece, 32 needed


def forge_same_crc(original: bytes, event: dict[str, Any]) -> bytes:
    """``event`` serialised with a pad field chosen so its CRC32 equals ``original``'s.

    CRC32 is affine over GF(2): flipping one pad character from 'a' to 'c' XORs a fixed
    32-bit difference into the checksum, so solving 32 linear equations picks the flips.
    """
    base = sig.body_of({**event, "pad": "a" * PAD})
    start = base.index(b"a" * PAD)
    crc = zlib.crc32(base)
    rows: list[tuple[int, int]] = []  # (difference, bitmask of pad positions), reduced
    for i in range(PAD):
        flipped = base[:start + i] + b"c" + base[start + i + 1:]
        diff, mask = zlib.crc32(flipped) ^ crc, 1 << i
        for pivot_diff, pivot_mask in rows:
            if diff ^ pivot_diff < diff:
                diff, mask = diff ^ pivot_diff, mask ^ pivot_mask
        if diff:
            rows.append((diff, mask))
            rows.sort(reverse=True)
    want, chosen = crc ^ zlib.crc32(original), 0
    for pivot_diff, pivot_mask in rows:
        if want ^ pivot_diff < want:
            want, chosen = want ^ pivot_diff, chosen ^ pivot_mask
    assert want == 0, "the pad does not span every checksum"
    pad = "".join("c" if chosen >> i & 1 else "a" for i in range(PAD))
    forged = sig.body_of({**event, "pad": pad})
    assert zlib.crc32(forged) == zlib.crc32(original) and forged != original
    return forged


def _sale(key: str) -> dict[str, Any]:
    return samples.paypal_event("PAYMENT.SALE.COMPLETED",
                                samples.Scenario(key=key, payment_method="paypal"))


def _post(client: FlaskClient, raw: bytes, headers: dict[str, str]):
    return client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=raw, headers=headers,
                       content_type="application/json")


def _events(container: Container) -> list[str]:
    settle(container)
    with container.sessions() as s:
        return list(s.scalars(select(InboxEvent.event_id).order_by(InboxEvent.id)))


def test_a_body_forged_to_the_captured_crc_is_refused(client, container):
    genuine = _sale("captured")
    raw = sig.body_of(genuine)
    headers = shared_signer().headers(raw, PAYPAL_WEBHOOK_ID)
    assert _post(client, raw, headers).status_code == 200

    forged_event = json.loads(raw)
    forged_event["id"] = "WH-FORGED-0001"
    forged_event["resource"]["amount"]["total"] = "999.00"
    resp = _post(client, forge_same_crc(raw, forged_event), headers)

    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "transmission_reused"
    assert _events(container) == [genuine["id"]]


def test_redeliveries_of_the_same_event_stay_duplicates(client, container):
    """The same transmission again, and the same event under a new transmission."""
    raw = sig.body_of(_sale("redelivered"))
    signer = shared_signer()
    headers = signer.headers(raw, PAYPAL_WEBHOOK_ID)
    first = _post(client, raw, headers)
    again = _post(client, raw, headers)
    retried = _post(client, raw, signer.headers(raw, PAYPAL_WEBHOOK_ID))
    assert [r.status_code for r in (first, again, retried)] == [200, 200, 200]
    assert [r.json["duplicate"] for r in (first, again, retried)] == [False, True, True]
    settle(container)
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboxEvent)) == 1
        assert s.scalar(select(InboxEvent.deliveries)) == 3
