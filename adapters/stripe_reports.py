"""Stripe's reporting reads: balance transactions and events, page by page, as plain data.

GETs only, through ``stripe.StripeClient`` pointed at the merchant's configured API base. Each
object is handed on as the JSON Stripe sent (a ``dict``), so no SDK type leaks out of adapters/
and an event can be stored byte-for-byte the way a webhook would have carried it. Errors are
translated by the same function the refund adapter uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import stripe

from adapters.stripe_adapter import _call
from service.config import STRIPE_API_VERSION, StripeSettings

PAGE_SIZE = 100  # Stripe's largest ``limit``


class StripeReports:
    def __init__(self, settings: StripeSettings, timeout: float = 30.0) -> None:
        self._client = stripe.StripeClient(
            settings.api_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": settings.api_base},
            max_network_retries=2,  # reads only: a retry cannot move money
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def balance_transactions(self, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """Balance transactions created in [start, end), newest first, ``source`` expanded so a
        refund names its charge and a dispute its charge."""
        params = {**_created(start, end), "expand": ["data.source"]}
        return self._objects(self._client.v1.balance_transactions.list, params)

    def events(self, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """Events created in [start, end), newest first (Stripe keeps 30 days of them)."""
        return self._objects(self._client.v1.events.list, _created(start, end))

    def _objects(self, list_page: Callable[..., Any], params: dict[str, Any]
                 ) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint, one page (at most 100) in memory at a time."""
        cursor: str | None = None
        while True:
            page_params = {**params, "limit": PAGE_SIZE}
            if cursor:
                page_params["starting_after"] = cursor
            page = _call(lambda p=page_params: list_page(params=p))
            body = json.loads(page.last_response.body)
            data: list[dict[str, Any]] = body.get("data") or []
            yield from data
            if not body.get("has_more") or not data:
                return
            cursor = str(data[-1]["id"])


def _created(start: datetime, end: datetime) -> dict[str, Any]:
    return {"created": {"gte": int(start.timestamp()), "lt": int(end.timestamp())}}
