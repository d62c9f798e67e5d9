"""A webhook sender that behaves like a provider's delivery agent, for process tests.

It signs each delivery as Stripe or PayPal does, POSTs it over real HTTP, and on a non-2xx
answer or a connection error tries again after a short backoff, as the providers do (over
hours; here over seconds). It records every answer, and which events were acknowledged: an
event counts as delivered only once the gateway has answered 2xx for it. ``on_send`` sees each
event before its first attempt (a fake provider learns from it what it captured).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from sandbox.devcerts import DevPayPalSigner
from sandbox.simulator import encode, stripe_signature_header
from service.config import Settings
from tests.support.stream import Delivery


@dataclass
class Tally:
    """What the sender saw: answers by status, connection errors, acknowledged event keys."""

    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    deliveries: int = 0  # deliveries that ended in a 2xx (the retries of one count once)
    acked: set[tuple[str, str, str]] = field(default_factory=set)
    gave_up: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempts(self) -> int:
        return sum(self.statuses.values()) + self.connection_errors


class ProviderSender:
    """Delivers events to ``base`` for the merchants in ``settings``, retrying like a provider."""

    def __init__(self, base: str, settings: Settings, signer: DevPayPalSigner, *,
                 backoff: float = 0.2, max_backoff: float = 2.0, give_up_after: float = 120.0,
                 timeout: float = 10.0,
                 on_send: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.base, self.settings, self.signer = base, settings, signer
        self.on_send = on_send
        self.backoff, self.max_backoff = backoff, max_backoff
        self.give_up_after, self.timeout = give_up_after, timeout
        self.tally = Tally()
        self._local = threading.local()
        self._transmissions: dict[str, str] = {}  # merchant|event id -> PayPal transmission id
        self._sessions: list[requests.Session] = []

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            with self.tally.lock:
                self._sessions.append(self._local.session)
        return self._local.session  # type: ignore[no-any-return]

    def _request(self, d: Delivery) -> tuple[str, bytes, dict[str, str]]:
        merchant = self.settings.merchants[d.merchant]
        body = encode(d.event)
        url = f"{self.base}/webhooks/{d.merchant}/{d.provider}"
        if d.provider == "stripe":  # Stripe signs each attempt at the time it is sent
            sig = stripe_signature_header(body, merchant.stripe.webhook_secrets[0])
            return url, body, {"Content-Type": "application/json", "Stripe-Signature": sig}
        # A redelivery carries the event's transmission id again, signed with the time it is
        # sent (PayPal's transmission time is checked against a tolerance, as Stripe's is).
        transmission = self._transmissions.setdefault(f"{d.merchant}|{d.event['id']}",
                                                      str(uuid.uuid4()))
        return url, body, {"Content-Type": "application/json",
                           **self.signer.headers(body, merchant.paypal.webhook_id,
                                                 transmission_id=transmission)}

    def deliver(self, d: Delivery) -> bool:
        """POST until the gateway answers 2xx (True) or ``give_up_after`` passes (False)."""
        if self.on_send is not None:
            self.on_send(d.event)
        deadline, wait = time.monotonic() + self.give_up_after, self.backoff
        while True:
            url, body, headers = self._request(d)  # signed as each attempt is sent
            try:
                status = self._session().post(url, data=body, headers=headers,
                                              timeout=self.timeout).status_code
            except requests.RequestException:
                status = None
            with self.tally.lock:
                if status is None:
                    self.tally.connection_errors += 1
                else:
                    self.tally.statuses[status] += 1
                if status is not None and 200 <= status < 300:
                    self.tally.deliveries += 1
                    self.tally.acked.add(d.key)
                    return True
            if time.monotonic() > deadline:
                with self.tally.lock:
                    self.tally.gave_up.append(d.key)
                return False
            time.sleep(wait)
            wait = min(wait * 2, self.max_backoff)

    def deliver_all(self, deliveries: Iterable[Delivery], threads: int = 8) -> None:
        """Deliver everything from ``threads`` concurrent connections; returns when all ended."""
        try:
            with ThreadPoolExecutor(threads) as pool:
                for _ in pool.map(self.deliver, deliveries):
                    pass
        finally:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
            self._local = threading.local()
