"""Realistic sample Stripe and PayPal webhook events, for tests, fixtures and `gateway simulate`.

Pure: no I/O, no clock, no randomness. Every id and timestamp is derived from a ``Scenario``, so
the same scenario always yields byte-identical events, and all the events of one scenario agree
with one another (the charge names the invoice, the invoice the subscription, the refund the
charge, and so on), the way a real account's deliveries do.

Shapes follow what the providers send. Where Stripe moved a field between API versions, the
sample carries it in both places (``invoice.subscription`` and
``invoice.parent.subscription_details.subscription``; ``current_period_*`` on the subscription and
on ``items.data[0]``), so handlers written against either shape can be tested.

A scenario's calendar: billing cycle ``n`` (1-based) runs from ``scenario.period(n)[0]`` to
``scenario.period(n)[1]``. Within a cycle the events fall at fixed offsets (see ``_StripeClock``
and ``_PayPalClock``), so a life cycle built from defaults is strictly ordered in time.
"""

from __future__ import annotations

import calendar
import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from policy.money import (
    Money,
    exponent,
    normalize_currency,
    provider_exponent,
    to_decimal_string,
    to_provider_amount,
)

# The samples' api_version is the one the adapters send (re-exported: samples.STRIPE_API_VERSION).
from service.config import STRIPE_API_VERSION as STRIPE_API_VERSION

STRIPE_EVENT_TYPES: Final[tuple[str, ...]] = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.upcoming",
    "charge.succeeded",
    "charge.refunded",
    "charge.dispute.created",
    "refund.created",
    "refund.updated",
    "refund.failed",
)

PAYPAL_EVENT_TYPES: Final[tuple[str, ...]] = (
    "BILLING.SUBSCRIPTION.CREATED",
    "BILLING.SUBSCRIPTION.ACTIVATED",
    "BILLING.SUBSCRIPTION.UPDATED",
    "BILLING.SUBSCRIPTION.CANCELLED",
    "BILLING.SUBSCRIPTION.SUSPENDED",
    "BILLING.SUBSCRIPTION.EXPIRED",
    "BILLING.SUBSCRIPTION.PAYMENT.FAILED",
    "PAYMENT.SALE.COMPLETED",
    "PAYMENT.SALE.REFUNDED",
    "PAYMENT.SALE.REVERSED",
    "PAYMENT.CAPTURE.COMPLETED",
    "PAYMENT.CAPTURE.REFUNDED",
    "PAYMENT.CAPTURE.REVERSED",
)

# How ``customer.subscription.updated`` changes the subscription.
SUBSCRIPTION_CHANGES: Final[tuple[str, ...]] = ("renewal", "cancel_at_period_end")

_DAY: Final = 86_400
_INTERVALS: Final = ("day", "week", "month", "year")
_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE36: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# PayPal's transaction and event ids are mostly digits with a few letters ("0UX830254Y426081E").
_PAYPAL_CHARS: Final = "0123456789" * 4 + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Stripe ids: prefix, then either 14 random characters ("short": cus_, prod_, si_, req_) or 24
# characters made of a leading digit, 5 time-ish characters, the account's 10-character segment
# and 8 random ones. Objects created through a PaymentIntent (pi_, ch_, re_, txn_) lead with 3.
_STRIPE_ID_SHAPES: Final[dict[str, tuple[str, str]]] = {
    "customer": ("cus_", ""),
    "product": ("prod_", ""),
    "subscription_item": ("si_", ""),
    "request": ("req_", ""),
    "subscription": ("sub_", "1"),
    "price": ("price_", "1"),
    "invoice": ("in_", "1"),
    "invoice_line": ("il_", "1"),
    "payment_method": ("pm_", "1"),
    "dispute": ("dp_", "1"),
    "event": ("evt_", "1"),
    "payment_intent": ("pi_", "3"),
    "charge": ("ch_", "3"),
    "refund": ("re_", "3"),
    "balance_transaction": ("txn_", "3"),
}

# PayPal ids: prefix and length of the upper-case alphanumeric body.
_PAYPAL_ID_SHAPES: Final[dict[str, tuple[str, int]]] = {
    "subscription": ("I-", 12),
    "plan": ("P-", 24),
    "payer": ("", 13),
    "sale": ("", 17),
    "capture": ("", 17),
    "order": ("", 17),
    "refund": ("", 17),
    "reversal": ("", 17),
    "payment": ("PAY-", 24),
    "ba_token": ("BA-", 17),
}

# PayPal's fee on a domestic PayPal payment: a percentage plus a fixed part per currency exponent.
_PAYPAL_FEE_PERCENT: Final = Decimal("3.49")
_PAYPAL_FIXED_FEE: Final[dict[int, int]] = {0: 40, 2: 49, 3: 0}
_CURRENCY_SYMBOL: Final[dict[str, str]] = {
    "USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£", "JPY": "¥",
}


def _token(seed: str, length: int, alphabet: str = _BASE62) -> str:
    """``length`` characters of ``alphabet`` derived from ``seed`` (stable across runs)."""
    number = int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest(), "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(alphabet))
        chars.append(alphabet[digit])
    return "".join(chars)


_STRIPE_ACCOUNT_SEGMENT: Final = _token("stripe-account", 10)


def _add_months(ts: int, months: int) -> int:
    """``ts`` moved ``months`` calendar months on, clamped to month end as Stripe anchors do."""
    moment = datetime.fromtimestamp(ts, UTC)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def _advance(ts: int, interval: str, count: int) -> int:
    if interval == "day":
        return ts + count * _DAY
    if interval == "week":
        return ts + count * 7 * _DAY
    return _add_months(ts, count * (12 if interval == "year" else 1))


class _IdOf:
    """A ``Scenario`` attribute naming one provider object of the first billing cycle."""

    def __init__(self, provider: str, kind: str) -> None:
        self.provider, self.kind = provider, kind

    def __get__(self, scenario: Scenario, owner: type | None = None) -> str:
        if self.provider == "stripe":
            return scenario.stripe_id(self.kind)
        return scenario.paypal_id(self.kind)


@dataclass(frozen=True)
class Scenario:
    """The facts a family of events shares: one customer, one subscription, its billing cycles.

    ``amount`` is in ISO minor units of ``currency`` (cents, yen). ``refund_amount`` (default: the
    whole amount) is what the refund events return. Ids come from ``key`` alone, so two
    scenarios with different keys never share an id and one key always gives the same ids.
    """

    key: str
    customer_email: str = "jenny.rosen@example.com"
    customer_name: str = "Jenny Rosen"
    amount: int = 1999
    currency: str = "usd"
    interval: str = "month"
    interval_count: int = 1
    period_start: int = 1_767_225_600  # 2026-01-01T00:00:00Z
    livemode: bool = False
    payment_method: str = "card"
    product_name: str = "Pro plan"
    refund_amount: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.interval not in _INTERVALS:
            raise ValueError(f"interval must be one of {_INTERVALS}, got {self.interval!r}")
        if self.interval_count < 1:
            raise ValueError("interval_count must be at least 1")
        Money(self.amount, self.currency)  # refuses a non-int amount or a malformed currency
        if self.amount <= 0:
            raise ValueError("amount must be positive")
        if self.refund_amount is not None and not 0 < self.refund_amount <= self.amount:
            raise ValueError("refund_amount must be between 1 and amount")
        object.__setattr__(self, "currency", normalize_currency(self.currency).lower())

    # -- calendar -------------------------------------------------------------------------------

    def period(self, cycle: int = 1) -> tuple[int, int]:
        """Start and end (unix seconds) of billing cycle ``cycle``, counting from 1."""
        if cycle < 1:
            raise ValueError("cycle counts from 1")
        step = self.interval_count
        return (
            _advance(self.period_start, self.interval, step * (cycle - 1)),
            _advance(self.period_start, self.interval, step * cycle),
        )

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    @property
    def refund_money(self) -> Money:
        return Money(self.refund_amount or self.amount, self.currency)

    # -- ids --------------------------------------------------------------------------------------

    def stripe_id(self, kind: str, cycle: int = 1, *, seed: str = "") -> str:
        """The Stripe id of the ``kind`` object of billing cycle ``cycle`` (e.g. ``in_1…``)."""
        prefix, lead = _STRIPE_ID_SHAPES[kind]
        base = f"stripe|{self.key}|{kind}|{cycle}|{seed}"
        if not lead:
            return prefix + _token(base, 14)
        return prefix + lead + _token(base + "|t", 5) + _STRIPE_ACCOUNT_SEGMENT + _token(base, 8)

    def paypal_id(self, kind: str, cycle: int = 1, *, seed: str = "") -> str:
        """The PayPal id of the ``kind`` object of billing cycle ``cycle`` (e.g. ``I-…``)."""
        prefix, length = _PAYPAL_ID_SHAPES[kind]
        return prefix + _token(f"paypal|{self.key}|{kind}|{cycle}|{seed}", length, _PAYPAL_CHARS)

    customer_id = _IdOf("stripe", "customer")
    subscription_id = _IdOf("stripe", "subscription")
    subscription_item_id = _IdOf("stripe", "subscription_item")
    price_id = _IdOf("stripe", "price")
    product_id = _IdOf("stripe", "product")
    payment_method_id = _IdOf("stripe", "payment_method")
    invoice_id = _IdOf("stripe", "invoice")
    charge_id = _IdOf("stripe", "charge")
    payment_intent_id = _IdOf("stripe", "payment_intent")
    refund_id = _IdOf("stripe", "refund")
    dispute_id = _IdOf("stripe", "dispute")
    paypal_subscription_id = _IdOf("paypal", "subscription")
    paypal_plan_id = _IdOf("paypal", "plan")
    paypal_payer_id = _IdOf("paypal", "payer")
    paypal_sale_id = _IdOf("paypal", "sale")
    paypal_capture_id = _IdOf("paypal", "capture")
    paypal_order_id = _IdOf("paypal", "order")
    paypal_refund_id = _IdOf("paypal", "refund")


def _deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` laid over it; nested dicts merge, anything else replaces."""
    merged = dict(base)
    for name, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), dict):
            merged[name] = _deep_merge(merged[name], value)
        else:
            merged[name] = value
    return merged


# =================================================================================================
# Stripe
# =================================================================================================


@dataclass(frozen=True)
class _CycleClock:
    """One billing cycle of a scenario, in unix seconds."""

    s: Scenario
    cycle: int

    @property
    def start(self) -> int:
        return self.s.period(self.cycle)[0]

    @property
    def end(self) -> int:
        return self.s.period(self.cycle)[1]


@dataclass(frozen=True)
class _StripeClock(_CycleClock):
    """When things happen in one billing cycle. Renewal invoices stay draft for an hour."""

    @property
    def _draft_hold(self) -> int:
        return 0 if self.cycle == 1 else 3600

    def at(self, tenths: int) -> int:
        """``tenths`` tenths of the way through the cycle."""
        return self.start + (self.end - self.start) * tenths // 10

    @property
    def invoice_created(self) -> int:
        return self.start + 1

    @property
    def invoice_finalized(self) -> int:
        return self.start + 2 + self._draft_hold

    @property
    def charged(self) -> int:
        return self.start + 3 + self._draft_hold

    @property
    def invoice_settled(self) -> int:
        return self.start + 4 + self._draft_hold

    @property
    def cancel_requested(self) -> int:
        return self.at(2)

    @property
    def refunded(self) -> int:
        return self.at(3)

    @property
    def disputed(self) -> int:
        return self.at(5)

    @property
    def upcoming(self) -> int:
        return self.end - (self.end - self.start) // 10


def _stripe_amount(s: Scenario, money: Money | None = None) -> int:
    return to_provider_amount("stripe", money or s.money)


def _stripe_list(data: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}


def _stripe_price(s: Scenario) -> dict[str, Any]:
    return {
        "id": s.price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": s.period_start - 30 * _DAY,
        "currency": s.currency,
        "custom_unit_amount": None,
        "livemode": s.livemode,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": s.product_id,
        "recurring": {
            "aggregate_usage": None,
            "interval": s.interval,
            "interval_count": s.interval_count,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": _stripe_amount(s),
        "unit_amount_decimal": str(_stripe_amount(s)),
    }


def _stripe_plan(s: Scenario) -> dict[str, Any]:
    """The legacy ``plan`` mirror of the price that Stripe still sends beside it."""
    return {
        "id": s.price_id,
        "object": "plan",
        "active": True,
        "aggregate_usage": None,
        "amount": _stripe_amount(s),
        "amount_decimal": str(_stripe_amount(s)),
        "billing_scheme": "per_unit",
        "created": s.period_start - 30 * _DAY,
        "currency": s.currency,
        "interval": s.interval,
        "interval_count": s.interval_count,
        "livemode": s.livemode,
        "metadata": {},
        "meter": None,
        "nickname": None,
        "product": s.product_id,
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def _stripe_subscription_items(s: Scenario, cycle: int) -> dict[str, Any]:
    start, end = s.period(cycle)
    item: dict[str, Any] = {
        "id": s.subscription_item_id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": s.period_start,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "plan": _stripe_plan(s),
        "price": _stripe_price(s),
        "quantity": 1,
        "subscription": s.subscription_id,
        "tax_rates": [],
    }
    return _stripe_list([item], f"/v1/subscription_items?subscription={s.subscription_id}")


def _stripe_subscription(
    s: Scenario,
    cycle: int,
    *,
    status: str = "active",
    canceled_at: int | None = None,
    ended_at: int | None = None,
) -> dict[str, Any]:
    """The subscription as it stands in ``cycle``; ``canceled_at`` marks a requested cancel."""
    start, end = s.period(cycle)
    pending_cancel = canceled_at is not None and ended_at is None
    return {
        "id": s.subscription_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": s.period_start,
        "billing_cycle_anchor_config": None,
        "billing_thresholds": None,
        "cancel_at": end if pending_cancel else None,
        "cancel_at_period_end": pending_cancel,
        "canceled_at": canceled_at,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if canceled_at is not None else None,
        },
        "collection_method": "charge_automatically",
        "created": s.period_start,
        "currency": s.currency,
        "current_period_end": end,
        "current_period_start": start,
        "customer": s.customer_id,
        "days_until_due": None,
        "default_payment_method": s.payment_method_id,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discount": None,
        "discounts": [],
        "ended_at": ended_at,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": _stripe_subscription_items(s, cycle),
        "latest_invoice": s.stripe_id("invoice", cycle),
        "livemode": s.livemode,
        "metadata": dict(s.metadata),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "plan": _stripe_plan(s),
        "quantity": 1,
        "schedule": None,
        "start_date": s.period_start,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def _format_major(s: Scenario) -> str:
    symbol = _CURRENCY_SYMBOL.get(s.currency.upper(), "")
    return f"{symbol}{to_decimal_string('stripe', s.money)}"


def _stripe_invoice_line(s: Scenario, cycle: int, invoice_id: str | None) -> dict[str, Any]:
    start, end = s.period(cycle)
    amount = _stripe_amount(s)
    every = s.interval if s.interval_count == 1 else f"every {s.interval_count} {s.interval}s"
    return {
        "id": s.stripe_id("invoice_line", cycle),
        "object": "line_item",
        "amount": amount,
        "amount_excluding_tax": amount,
        "currency": s.currency,
        "description": f"1 × {s.product_name} (at {_format_major(s)} / {every})",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": s.livemode,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": s.subscription_id,
                "subscription_item": s.subscription_item_id,
            },
            "type": "subscription_item_details",
        },
        "period": {"end": end, "start": start},
        "plan": _stripe_plan(s),
        "price": _stripe_price(s),
        "pricing": {
            "price_details": {"price": s.price_id, "product": s.product_id},
            "type": "price_details",
            "unit_amount_decimal": str(amount),
        },
        "proration": False,
        "quantity": 1,
        "subscription": s.subscription_id,
        "subscription_item": s.subscription_item_id,
        "tax_amounts": [],
        "taxes": [],
        "type": "subscription",
    }


def _stripe_invoice_number(s: Scenario, cycle: int) -> str:
    return f"{_token('prefix|' + s.key, 8, _BASE36)}-{cycle:04d}"


def _stripe_hosted_urls(s: Scenario, cycle: int) -> tuple[str, str]:
    mode = "live" if s.livemode else "test"
    secret = f"{mode}_{_token(f'invoice-url|{s.key}|{cycle}', 40)}"
    account = f"acct_1{_token('acct', 5)}{_STRIPE_ACCOUNT_SEGMENT}"
    return (
        f"https://invoice.stripe.com/i/{account}/{secret}?s=ap",
        f"https://pay.stripe.com/invoice/{account}/{secret}/pdf?s=ap",
    )


def _stripe_invoice(s: Scenario, cycle: int, stage: str) -> dict[str, Any]:
    """The invoice of ``cycle`` at ``stage``: draft, open, paid, failed, void or upcoming.

    As Stripe does, a renewal invoice's own ``period_start``/``period_end`` cover the cycle that
    just ended; the service period billed is on ``lines.data[0].period``. An upcoming invoice has
    no ``id`` at all: it is a preview of the invoice that ``cycle + 1`` will create.
    """
    clock = _StripeClock(s, cycle)
    billed = cycle + 1 if stage == "upcoming" else cycle
    amount = _stripe_amount(s)
    invoice_id = None if stage == "upcoming" else s.stripe_id("invoice", cycle)
    finalized = stage in ("open", "paid", "failed", "void")
    paid = stage == "paid"
    attempted = stage in ("paid", "failed")
    if billed == 1:
        period_start = period_end = s.period_start
    else:
        period_start, period_end = s.period(billed - 1)
    created = s.period(billed)[0] if stage == "upcoming" else clock.invoice_created
    hosted, pdf = _stripe_hosted_urls(s, cycle) if finalized else (None, None)
    invoice: dict[str, Any] = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "The Open Host",
        "account_tax_ids": None,
        "amount_due": amount,
        "amount_overpaid": 0,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "amount_shipping": 0,
        "application": None,
        "application_fee_amount": None,
        "attempt_count": 1 if attempted else 0,
        "attempted": attempted,
        "auto_advance": not paid,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                          "status": None},
        "billing_reason": ("upcoming" if stage == "upcoming"
                           else "subscription_create" if cycle == 1 else "subscription_cycle"),
        "charge": s.stripe_id("charge", cycle) if attempted else None,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": s.currency,
        "custom_fields": None,
        "customer": s.customer_id,
        "customer_address": None,
        "customer_email": s.customer_email,
        "customer_name": s.customer_name,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discount": None,
        "discounts": [],
        "due_date": None,
        "effective_at": clock.invoice_finalized if finalized else None,
        "ending_balance": 0 if finalized else None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": hosted,
        "invoice_pdf": pdf,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": _stripe_list(
            [_stripe_invoice_line(s, billed, invoice_id)],
            f"/v1/invoices/{invoice_id}/lines" if invoice_id else "/v1/invoices/upcoming/lines",
        ),
        "livemode": s.livemode,
        "metadata": {},
        "next_payment_attempt": _next_payment_attempt(clock, stage, created),
        "number": _stripe_invoice_number(s, cycle) if finalized else None,
        "on_behalf_of": None,
        "paid": paid,
        "paid_out_of_band": False,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": dict(s.metadata),
                                     "subscription": s.subscription_id},
            "type": "subscription_details",
        },
        "payment_intent": s.stripe_id("payment_intent", cycle) if finalized else None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": {"upcoming": "draft", "failed": "open"}.get(stage, stage),
        "status_transitions": {
            "finalized_at": clock.invoice_finalized if finalized else None,
            "marked_uncollectible_at": None,
            "paid_at": clock.invoice_settled if paid else None,
            "voided_at": None,
        },
        "subscription": s.subscription_id,
        "subscription_details": {"metadata": dict(s.metadata)},
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "tax": None,
        "test_clock": None,
        "total": amount,
        "total_discount_amounts": [],
        "total_excluding_tax": amount,
        "total_pretax_credit_amounts": [],
        "total_tax_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None if stage in ("draft", "upcoming") else clock.invoice_created,
    }
    if stage == "upcoming":
        del invoice["id"]
    return invoice


def _next_payment_attempt(clock: _StripeClock, stage: str, created: int) -> int | None:
    if stage == "draft":
        return clock.invoice_finalized
    if stage == "upcoming":
        return created + 3600
    if stage == "failed":
        return clock.invoice_settled + 3 * _DAY
    return None


def _stripe_payment_method_details(s: Scenario, cycle: int) -> dict[str, Any]:
    if s.payment_method == "paypal":
        return {
            "paypal": {
                "country": "US",
                "payer_email": s.customer_email,
                "payer_id": s.paypal_payer_id,
                "payer_name": s.customer_name,
                "seller_protection": {"dispute_categories": None, "status": "not_eligible"},
                "transaction_id": s.paypal_id("sale", cycle, seed="stripe"),
            },
            "type": "paypal",
        }
    return {
        "card": {
            "amount_authorized": _stripe_amount(s),
            "brand": "visa",
            "checks": {"address_line1_check": None, "address_postal_code_check": None,
                       "cvc_check": "pass" if cycle == 1 else None},
            "country": "US",
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": _token("fp|" + s.key, 16),
            "funding": "credit",
            "installments": None,
            "last4": "4242",
            "mandate": None,
            "network": "visa",
            "network_token": {"used": False},
            "three_d_secure": None,
            "wallet": None,
        },
        "type": "card",
    }


def _stripe_charge(s: Scenario, cycle: int, *, amount_refunded: int = 0) -> dict[str, Any]:
    amount = _stripe_amount(s)
    return {
        "id": s.stripe_id("charge", cycle),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": s.stripe_id("balance_transaction", cycle),
        "billing_details": {
            "address": {"city": None, "country": None, "line1": None, "line2": None,
                        "postal_code": None, "state": None},
            "email": s.customer_email,
            "name": s.customer_name,
            "phone": None,
        },
        "calculated_statement_descriptor": "THEOPENHOST",
        "captured": True,
        "created": _StripeClock(s, cycle).charged,
        "currency": s.currency,
        "customer": s.customer_id,
        "description": "Subscription creation" if cycle == 1 else "Subscription update",
        "destination": None,
        "dispute": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "invoice": s.stripe_id("invoice", cycle),
        "livemode": s.livemode,
        "metadata": {},
        "on_behalf_of": None,
        "order": None,
        "outcome": {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 21,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": s.stripe_id("payment_intent", cycle),
        "payment_method": s.payment_method_id,
        "payment_method_details": _stripe_payment_method_details(s, cycle),
        "receipt_email": s.customer_email,
        "receipt_number": None,
        "receipt_url": "https://pay.stripe.com/receipts/invoices/"
        + _token(f"receipt|{s.key}|{cycle}", 40) + "?s=ap",
        "refunded": amount_refunded >= amount,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


_REFERENCE_STATUS: Final = {"pending": "pending", "succeeded": "available", "failed": "unavailable"}


def _stripe_refund(s: Scenario, cycle: int, status: str) -> dict[str, Any]:
    failed, settled = status == "failed", status == "succeeded"
    return {
        "id": s.stripe_id("refund", cycle),
        "object": "refund",
        "amount": _stripe_amount(s, s.refund_money),
        "balance_transaction": s.stripe_id("balance_transaction", cycle, seed="refund"),
        "charge": s.stripe_id("charge", cycle),
        "created": _StripeClock(s, cycle).refunded,
        "currency": s.currency,
        "destination_details": {
            "card": {"reference": _token(s.key, 23, "0123456789") if settled else None,
                     "reference_status": _REFERENCE_STATUS[status],
                     "reference_type": "acquirer_reference_number",
                     "type": "refund"},
            "type": "card",
        },
        "failure_balance_transaction": (
            s.stripe_id("balance_transaction", cycle, seed="refund-failure") if failed else None
        ),
        "failure_reason": "expired_or_canceled_card" if failed else None,
        "metadata": {},
        "payment_intent": s.stripe_id("payment_intent", cycle),
        "reason": "requested_by_customer",
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def _stripe_dispute(s: Scenario, cycle: int) -> dict[str, Any]:
    created = _StripeClock(s, cycle).disputed
    evidence_fields = (
        "access_activity_log", "billing_address", "cancellation_policy",
        "cancellation_policy_disclosure", "cancellation_rebuttal", "customer_communication",
        "customer_email_address", "customer_name", "customer_purchase_ip", "customer_signature",
        "duplicate_charge_documentation", "duplicate_charge_explanation", "duplicate_charge_id",
        "product_description", "receipt", "refund_policy", "refund_policy_disclosure",
        "refund_refusal_explanation", "service_date", "service_documentation", "shipping_address",
        "shipping_carrier", "shipping_date", "shipping_documentation", "shipping_tracking_number",
        "uncategorized_file", "uncategorized_text",
    )
    return {
        "id": s.stripe_id("dispute", cycle),
        "object": "dispute",
        "amount": _stripe_amount(s),
        "balance_transactions": [],
        "charge": s.stripe_id("charge", cycle),
        "created": created,
        "currency": s.currency,
        "enhanced_eligibility_types": [],
        "evidence": dict.fromkeys(evidence_fields),
        "evidence_details": {
            "due_by": created + 9 * _DAY - created % _DAY - 1,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": s.livemode,
        "metadata": {},
        "network_reason_code": "10.4",
        "payment_intent": s.stripe_id("payment_intent", cycle),
        "payment_method_details": {
            "card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"},
            "type": "card",
        },
        "reason": "fraudulent",
        "status": "needs_response",
    }


@dataclass(frozen=True)
class _Built:
    """What an event-type builder returns: the object, its time, and the request behind it."""

    obj: dict[str, Any]
    created: int
    previous: dict[str, Any] | None = None
    request: str | None = None  # the seed of the API request that caused it; None = automatic


_Builder = Callable[[Scenario, int, str | None], _Built]


def _sub_created(s: Scenario, cycle: int, change: str | None) -> _Built:
    return _Built(_stripe_subscription(s, cycle), s.period(cycle)[0], request="create")


def _sub_updated(s: Scenario, cycle: int, change: str | None) -> _Built:
    change = change or ("renewal" if cycle > 1 else "cancel_at_period_end")
    if change not in SUBSCRIPTION_CHANGES:
        raise ValueError(f"change must be one of {SUBSCRIPTION_CHANGES}, got {change!r}")
    if change == "renewal":
        if cycle < 2:
            raise ValueError("a renewal moves into cycle 2 or later")
        prev_start, prev_end = s.period(cycle - 1)
        previous = {
            "current_period_end": prev_end,
            "current_period_start": prev_start,
            "items": _stripe_subscription_items(s, cycle - 1),
            "latest_invoice": s.stripe_id("invoice", cycle - 1),
        }
        return _Built(_stripe_subscription(s, cycle), s.period(cycle)[0], previous)
    at = _StripeClock(s, cycle).cancel_requested
    previous = {"cancel_at": None, "cancel_at_period_end": False, "canceled_at": None,
                "cancellation_details": {"reason": None}}
    return _Built(_stripe_subscription(s, cycle, canceled_at=at), at, previous, request="cancel")


def _sub_deleted(s: Scenario, cycle: int, change: str | None) -> _Built:
    clock = _StripeClock(s, cycle)
    obj = _stripe_subscription(
        s, cycle, status="canceled", canceled_at=clock.cancel_requested, ended_at=clock.end
    )
    return _Built(obj, clock.end)


def _invoice_event(stage: str, when: Callable[[_StripeClock], int], request: bool) -> _Builder:
    def build(s: Scenario, cycle: int, change: str | None) -> _Built:
        created = when(_StripeClock(s, cycle))
        automatic = cycle > 1 or not request
        return _Built(_stripe_invoice(s, cycle, stage), created,
                      request=None if automatic else "create")
    return build


def _charge_succeeded(s: Scenario, cycle: int, change: str | None) -> _Built:
    return _Built(_stripe_charge(s, cycle), _StripeClock(s, cycle).charged,
                  request="create" if cycle == 1 else None)


def _charge_refunded(s: Scenario, cycle: int, change: str | None) -> _Built:
    refunded = _stripe_amount(s, s.refund_money)
    previous = {"amount_refunded": 0, "refunded": False}
    if refunded < _stripe_amount(s):
        del previous["refunded"]
    return _Built(_stripe_charge(s, cycle, amount_refunded=refunded),
                  _StripeClock(s, cycle).refunded, previous, request="refund")


def _refund_event(status: str, delay: int, previous: dict[str, Any] | None) -> _Builder:
    def build(s: Scenario, cycle: int, change: str | None) -> _Built:
        created = _StripeClock(s, cycle).refunded + delay
        return _Built(_stripe_refund(s, cycle, status), created, previous,
                      request="refund" if status == "pending" else None)
    return build


def _dispute_created(s: Scenario, cycle: int, change: str | None) -> _Built:
    return _Built(_stripe_dispute(s, cycle), _StripeClock(s, cycle).disputed)


_STRIPE_BUILDERS: Final[dict[str, _Builder]] = {
    "customer.subscription.created": _sub_created,
    "customer.subscription.updated": _sub_updated,
    "customer.subscription.deleted": _sub_deleted,
    "invoice.created": _invoice_event("draft", lambda c: c.invoice_created, True),
    "invoice.finalized": _invoice_event("open", lambda c: c.invoice_finalized, True),
    "invoice.paid": _invoice_event("paid", lambda c: c.invoice_settled, True),
    "invoice.payment_failed": _invoice_event("failed", lambda c: c.invoice_settled, True),
    "invoice.voided": _invoice_event("void", lambda c: c.invoice_settled, True),
    "invoice.upcoming": _invoice_event("upcoming", lambda c: c.upcoming, False),
    "charge.succeeded": _charge_succeeded,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "refund.created": _refund_event("pending", 1, None),
    "refund.updated": _refund_event("succeeded", 60, {"status": "pending"}),
    "refund.failed": _refund_event("failed", 3 * _DAY, None),
}
if set(_STRIPE_BUILDERS) != set(STRIPE_EVENT_TYPES):  # checked at import, not in production
    raise RuntimeError("every Stripe event type needs exactly one builder")


def _stripe_request(s: Scenario, seed: str | None, cycle: int) -> dict[str, Any]:
    if seed is None:
        return {"id": None, "idempotency_key": None}
    digest = hashlib.sha256(f"idem|{s.key}|{seed}|{cycle}".encode()).digest()
    return {
        "id": s.stripe_id("request", cycle, seed=seed),
        "idempotency_key": str(uuid.UUID(bytes=digest[:16], version=4)),
    }


def stripe_event(
    event_type: str,
    scenario: Scenario,
    *,
    created: int | None = None,
    event_id: str | None = None,
    cycle: int = 1,
    change: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A Stripe ``Event`` of ``event_type`` about ``scenario``'s billing cycle ``cycle``.

    ``created`` sets the envelope's time only; object timestamps follow the scenario's calendar.
    ``change`` picks what ``customer.subscription.updated`` reports ("renewal", default from
    cycle 2, or "cancel_at_period_end"). ``overrides`` are deep-merged into ``data.object``.
    """
    builder = _STRIPE_BUILDERS.get(event_type)
    if builder is None:
        raise ValueError(f"unknown Stripe event type {event_type!r}")
    built = builder(scenario, cycle, change)
    when = built.created if created is None else created
    data: dict[str, Any] = {"object": _deep_merge(built.obj, overrides)}
    if built.previous is not None:
        data["previous_attributes"] = built.previous
    return {
        "id": event_id or scenario.stripe_id("event", cycle, seed=f"{event_type}|{when}"),
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": when,
        "data": data,
        "livemode": scenario.livemode,
        "pending_webhooks": 1,
        "request": _stripe_request(scenario, built.request, cycle),
        "type": event_type,
    }


def stripe_lifecycle(scenario: Scenario) -> list[dict[str, Any]]:
    """A subscription's life in Stripe, oldest first: signup and first payment, the renewal
    notice and renewal, a cancel at period end, a refund of the renewal, the end."""
    steps: list[tuple[str, int, str | None]] = [
        ("customer.subscription.created", 1, None),
        ("invoice.created", 1, None),
        ("invoice.finalized", 1, None),
        ("charge.succeeded", 1, None),
        ("invoice.paid", 1, None),
        ("invoice.upcoming", 1, None),
        ("customer.subscription.updated", 2, "renewal"),
        ("invoice.created", 2, None),
        ("invoice.finalized", 2, None),
        ("charge.succeeded", 2, None),
        ("invoice.paid", 2, None),
        ("customer.subscription.updated", 2, "cancel_at_period_end"),
        ("charge.refunded", 2, None),
        ("refund.created", 2, None),
        ("refund.updated", 2, None),
        ("customer.subscription.deleted", 2, None),
    ]
    return [stripe_event(kind, scenario, cycle=cycle, change=change)
            for kind, cycle, change in steps]


# =================================================================================================
# PayPal
# =================================================================================================


def _iso(ts: int, millis: int | None = None) -> str:
    """PayPal's UTC timestamps: ``2026-01-01T00:00:02Z``, events with milliseconds."""
    text = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis is not None else f"{text}Z"


def _paypal_value(money: Money) -> str:
    return to_decimal_string("paypal", money)


def _paypal_money(money: Money) -> dict[str, str]:
    """A v2 / subscriptions amount: ``{"currency_code": "USD", "value": "19.99"}``."""
    return {"currency_code": money.currency, "value": _paypal_value(money)}


def _paypal_fee(money: Money) -> Money:
    fixed = _PAYPAL_FIXED_FEE.get(provider_exponent("paypal", money.currency), 0)
    return _paypal_percent(money) + Money(fixed * _paypal_step(money.currency), money.currency)


def _paypal_step(currency: str) -> int:
    """ISO minor units per PayPal unit: 100 for HUF and TWD, which PayPal takes whole."""
    return int(10 ** max(0, exponent(currency) - provider_exponent("paypal", currency)))


def _paypal_percent(money: Money) -> Money:
    """PayPal's percentage fee on ``money``, rounded half-up to a unit PayPal can express."""
    step = _paypal_step(money.currency)
    units = Money(money.amount // step, money.currency).percent(_PAYPAL_FEE_PERCENT)
    return Money(units.amount * step, money.currency)


def _refund_fee_share(s: Scenario) -> Money:
    """The part of PayPal's fee given back on a refund: the percentage, never the fixed part."""
    return _paypal_percent(s.refund_money)


def _paypal_hosts(s: Scenario) -> tuple[str, str]:
    if s.livemode:
        return "https://api.paypal.com", "https://www.paypal.com"
    return "https://api.sandbox.paypal.com", "https://www.sandbox.paypal.com"


def _link(href: str, rel: str, method: str = "GET") -> dict[str, str]:
    return {"href": href, "rel": rel, "method": method}


@dataclass(frozen=True)
class _PayPalClock(_CycleClock):
    """When things happen in one billing cycle, in unix seconds (events follow 2-3 s later)."""

    def at(self, tenths: int) -> int:
        return self.start + (self.end - self.start) * tenths // 10

    @property
    def created(self) -> int:
        return self.s.period_start - 60

    @property
    def activated(self) -> int:
        return self.start + 1

    @property
    def paid(self) -> int:
        """The sale or capture is created..."""
        return self.start + 1

    @property
    def settled(self) -> int:
        """...and completes a second later."""
        return self.start + 2

    @property
    def refunded(self) -> int:
        return self.at(3)

    @property
    def cancelled(self) -> int:
        return self.at(4)

    @property
    def reversed(self) -> int:
        return self.at(5)

    @property
    def suspended(self) -> int:
        return self.at(6)

    @property
    def updated(self) -> int:
        return self.at(1)


def _split_name(full: str) -> dict[str, str]:
    given, _, surname = full.partition(" ")
    return {"given_name": given, "surname": surname or given}


def _billing_info(s: Scenario, cycle: int, *, failed: bool, ongoing: bool) -> dict[str, Any]:
    """``billing_info`` after ``cycle`` (or, if ``failed``, after its payment was declined)."""
    clock = _PayPalClock(s, cycle)
    zero = Money(0, s.currency)
    paid_cycles = cycle - 1 if failed else cycle
    info: dict[str, Any] = {
        "outstanding_balance": _paypal_money(s.money if failed else zero),
        "cycle_executions": [{
            "tenure_type": "REGULAR",
            "sequence": 1,
            "cycles_completed": paid_cycles,
            "cycles_remaining": 0,
            "current_pricing_scheme_version": 1,
            "total_cycles": 0,
        }],
    }
    if paid_cycles:
        info["last_payment"] = {"amount": _paypal_money(s.money),
                                "time": _iso(_PayPalClock(s, paid_cycles).paid)}
    if ongoing:
        info["next_billing_time"] = _iso(clock.start + 5 * _DAY if failed else clock.end)
    info["failed_payments_count"] = 1 if failed else 0
    if failed:
        info["last_failed_payment"] = {
            "amount": _paypal_money(s.money),
            "time": _iso(clock.paid),
            "reason_code": "PAYMENT_DENIED",
            "next_payment_retry_time": _iso(clock.start + 5 * _DAY),
        }
    return info


def _subscription_links(s: Scenario, status: str) -> list[dict[str, str]]:
    api, web = _paypal_hosts(s)
    base = f"{api}/v1/billing/subscriptions/{s.paypal_subscription_id}"
    if status == "APPROVAL_PENDING":
        token = s.paypal_id("ba_token")
        return [_link(f"{web}/webapps/billing/subscriptions?ba_token={token}", "approve"),
                _link(base, "edit", "PATCH"), _link(base, "self")]
    if status in ("CANCELLED", "EXPIRED"):
        return [_link(base, "self")]
    verbs = ["activate" if status == "SUSPENDED" else "suspend", "cancel", "capture"]
    return [_link(base, "self"), _link(base, "edit", "PATCH"),
            *(_link(f"{base}/{verb}", verb, "POST") for verb in verbs)]


_SUBSCRIPTION_EVENTS: Final[dict[str, tuple[str, str, str]]] = {
    # event type: (status, the _PayPalClock moment of the change, summary)
    "BILLING.SUBSCRIPTION.CREATED": ("APPROVAL_PENDING", "created", "Subscription created"),
    "BILLING.SUBSCRIPTION.ACTIVATED": ("ACTIVE", "activated", "Subscription activated"),
    "BILLING.SUBSCRIPTION.UPDATED": ("ACTIVE", "updated", "Subscription updated"),
    "BILLING.SUBSCRIPTION.CANCELLED": ("CANCELLED", "cancelled", "Subscription cancelled"),
    "BILLING.SUBSCRIPTION.SUSPENDED": ("SUSPENDED", "suspended", "Subscription suspended"),
    "BILLING.SUBSCRIPTION.EXPIRED": ("EXPIRED", "end", "Subscription expired"),
    "BILLING.SUBSCRIPTION.PAYMENT.FAILED": ("ACTIVE", "settled", "Subscription payment failed"),
}

_STATUS_NOTES: Final[dict[str, str]] = {
    "CANCELLED": "Customer requested cancellation",
    "SUSPENDED": "Payment failed repeatedly",
}


def _paypal_subscription(s: Scenario, cycle: int, event_type: str) -> tuple[dict[str, Any], int]:
    status, moment, _ = _SUBSCRIPTION_EVENTS[event_type]
    changed = getattr(_PayPalClock(s, cycle), moment)
    resource: dict[str, Any] = {
        "id": s.paypal_subscription_id,
        "plan_id": s.paypal_plan_id,
        "status": status,
        "status_update_time": _iso(changed),
        "start_time": _iso(s.period_start),
        "quantity": "1",
        "shipping_amount": _paypal_money(Money(0, s.currency)),
        "subscriber": {
            "email_address": s.customer_email,
            "payer_id": s.paypal_payer_id,
            "name": _split_name(s.customer_name),
        },
        "create_time": _iso(_PayPalClock(s, 1).created),
        "update_time": _iso(changed),
        "plan_overridden": False,
        "links": _subscription_links(s, status),
    }
    if status in _STATUS_NOTES:
        resource["status_change_note"] = _STATUS_NOTES[status]
    if status != "APPROVAL_PENDING":
        failed = event_type == "BILLING.SUBSCRIPTION.PAYMENT.FAILED"
        ongoing = status in ("ACTIVE", "SUSPENDED")
        resource["billing_info"] = _billing_info(s, cycle, failed=failed, ongoing=ongoing)
    return resource, changed


def _sale(s: Scenario, cycle: int) -> tuple[dict[str, Any], int]:
    clock, api = _PayPalClock(s, cycle), _paypal_hosts(s)[0]
    sale_id = s.paypal_id("sale", cycle)
    code = s.currency.upper()
    resource = {
        "id": sale_id,
        "state": "completed",
        "amount": {"total": _paypal_value(s.money), "currency": code,
                   "details": {"subtotal": _paypal_value(s.money)}},
        "payment_mode": "INSTANT_TRANSFER",
        "protection_eligibility": "ELIGIBLE",
        "protection_eligibility_type": "ITEM_NOT_RECEIVED_ELIGIBLE,UNAUTHORIZED_PAYMENT_ELIGIBLE",
        "transaction_fee": {"value": _paypal_value(_paypal_fee(s.money)), "currency": code},
        "billing_agreement_id": s.paypal_subscription_id,
        "invoice_number": "",
        "create_time": _iso(clock.paid),
        "update_time": _iso(clock.settled),
        "links": [_link(f"{api}/v1/payments/sale/{sale_id}", "self"),
                  _link(f"{api}/v1/payments/sale/{sale_id}/refund", "refund", "POST")],
    }
    return resource, clock.settled


def _sale_refund(s: Scenario, cycle: int, *, reversal: bool) -> tuple[dict[str, Any], int]:
    """A v1 refund of the cycle's sale; a reversal (chargeback) carries a negative total."""
    clock, api = _PayPalClock(s, cycle), _paypal_hosts(s)[0]
    at = clock.reversed if reversal else clock.refunded
    refund_id = s.paypal_id("reversal" if reversal else "refund", cycle)
    payment_id, sale_id = s.paypal_id("payment", cycle), s.paypal_id("sale", cycle)
    code = s.currency.upper()
    money = s.money if reversal else s.refund_money
    resource: dict[str, Any] = {
        "id": refund_id,
        "state": "completed",
        "amount": {"total": ("-" if reversal else "") + _paypal_value(money), "currency": code},
        "sale_id": sale_id,
        "parent_payment": payment_id,
        "invoice_number": "",
        "create_time": _iso(at),
        "update_time": _iso(at),
        "links": [_link(f"{api}/v1/payments/refund/{refund_id}", "self"),
                  _link(f"{api}/v1/payments/payment/{payment_id}", "parent_payment"),
                  _link(f"{api}/v1/payments/sale/{sale_id}", "sale")],
    }
    if not reversal:
        share = _refund_fee_share(s)
        resource |= {
            "refund_from_received_amount": {"value": _paypal_value(money - share),
                                            "currency": code},
            "refund_from_transaction_fee": {"value": _paypal_value(share), "currency": code},
            "total_refunded_amount": {"value": _paypal_value(money), "currency": code},
        }
    return resource, at


def _capture(s: Scenario, cycle: int) -> tuple[dict[str, Any], int]:
    clock, api = _PayPalClock(s, cycle), _paypal_hosts(s)[0]
    capture_id, order_id = s.paypal_id("capture", cycle), s.paypal_id("order", cycle)
    fee = _paypal_fee(s.money)
    resource = {
        "id": capture_id,
        "amount": _paypal_money(s.money),
        "final_capture": True,
        "seller_protection": {"status": "ELIGIBLE",
                              "dispute_categories": ["ITEM_NOT_RECEIVED",
                                                     "UNAUTHORIZED_TRANSACTION"]},
        "seller_receivable_breakdown": {"gross_amount": _paypal_money(s.money),
                                        "paypal_fee": _paypal_money(fee),
                                        "net_amount": _paypal_money(s.money - fee)},
        "custom_id": s.key,
        "supplementary_data": {"related_ids": {"order_id": order_id}},
        "status": "COMPLETED",
        "create_time": _iso(clock.settled),
        "update_time": _iso(clock.settled),
        "links": [_link(f"{api}/v2/payments/captures/{capture_id}", "self"),
                  _link(f"{api}/v2/payments/captures/{capture_id}/refund", "refund", "POST"),
                  _link(f"{api}/v2/checkout/orders/{order_id}", "up")],
    }
    return resource, clock.settled


def _capture_refund(s: Scenario, cycle: int, *, reversal: bool) -> tuple[dict[str, Any], int]:
    """A v2 refund of the cycle's capture; its ``up`` link names the capture."""
    clock, api = _PayPalClock(s, cycle), _paypal_hosts(s)[0]
    at = clock.reversed if reversal else clock.refunded
    refund_id = s.paypal_id("reversal" if reversal else "refund", cycle, seed="v2")
    money = s.money if reversal else s.refund_money
    share = _paypal_percent(money)
    resource: dict[str, Any] = {
        "id": refund_id,
        "amount": _paypal_money(money),
        "seller_payable_breakdown": {
            "gross_amount": _paypal_money(money),
            "paypal_fee": _paypal_money(share),
            "net_amount": _paypal_money(money - share),
            "total_refunded_amount": _paypal_money(money),
        },
        "custom_id": s.key,
        "status": "COMPLETED",
        "create_time": _iso(at),
        "update_time": _iso(at),
        "links": [_link(f"{api}/v2/payments/refunds/{refund_id}", "self"),
                  _link(f"{api}/v2/payments/captures/{s.paypal_id('capture', cycle)}", "up")],
    }
    if reversal:
        resource["note_to_payer"] = "Payment reversed"
    return resource, at


def _summary_amount(money: Money) -> str:
    symbol = _CURRENCY_SYMBOL.get(money.currency)
    return f"{symbol + ' ' if symbol else ''}{_paypal_value(money)} {money.currency}"


# event type: (resource_type, resource_version or None, builder, summary template)
_ResourceBuilder = Callable[[Scenario, int], tuple[dict[str, Any], int]]
_PAYPAL_PAYMENTS: Final[dict[str, tuple[str, str | None, _ResourceBuilder, str]]] = {
    "PAYMENT.SALE.COMPLETED": ("sale", None, _sale, "Payment completed for {amount}"),
    "PAYMENT.SALE.REFUNDED": ("refund", None, lambda s, c: _sale_refund(s, c, reversal=False),
                              "A {refund} sale payment was refunded"),
    "PAYMENT.SALE.REVERSED": ("refund", None, lambda s, c: _sale_refund(s, c, reversal=True),
                              "A {amount} payment was reversed"),
    "PAYMENT.CAPTURE.COMPLETED": ("capture", "2.0", _capture, "Payment completed for {amount}"),
    "PAYMENT.CAPTURE.REFUNDED": ("refund", "2.0",
                                 lambda s, c: _capture_refund(s, c, reversal=False),
                                 "A {refund} capture payment was refunded"),
    "PAYMENT.CAPTURE.REVERSED": ("refund", "2.0",
                                 lambda s, c: _capture_refund(s, c, reversal=True),
                                 "A {amount} capture payment was reversed"),
}
if set(_PAYPAL_PAYMENTS) | set(_SUBSCRIPTION_EVENTS) != set(PAYPAL_EVENT_TYPES):
    raise RuntimeError("every PayPal event type needs exactly one builder")


def _paypal_resource(
    event_type: str, s: Scenario, cycle: int
) -> tuple[str, str | None, dict[str, Any], int, str]:
    if event_type in _SUBSCRIPTION_EVENTS:
        resource, at = _paypal_subscription(s, cycle, event_type)
        return "subscription", "2.0", resource, at, _SUBSCRIPTION_EVENTS[event_type][2]
    if event_type not in _PAYPAL_PAYMENTS:
        raise ValueError(f"unknown PayPal event type {event_type!r}")
    resource_type, version, build, template = _PAYPAL_PAYMENTS[event_type]
    resource, at = build(s, cycle)
    summary = template.format(amount=_summary_amount(s.money),
                              refund=_summary_amount(s.refund_money))
    return resource_type, version, resource, at, summary


def _event_time(value: datetime | str | None, s: Scenario, seed: str, resource_at: int) -> str:
    """The event's ``create_time``: PayPal emits it 2-3 s after the resource changed."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    millis = int(_token(f"ms|{s.key}|{seed}", 3, "0123456789"))
    return _iso(resource_at + 2, millis)


def _webhook_event_id(s: Scenario, seed: str) -> str:
    """``WH-`` and two 17-character groups, as PayPal's webhook event ids are."""
    first, second = (_token(f"wh-{part}|{s.key}{seed}", 17, _PAYPAL_CHARS) for part in "ab")
    return f"WH-{first}-{second}"


def paypal_event(
    event_type: str,
    scenario: Scenario,
    *,
    create_time: datetime | str | None = None,
    event_id: str | None = None,
    cycle: int = 1,
    **overrides: Any,
) -> dict[str, Any]:
    """A PayPal webhook event of ``event_type`` about ``scenario``'s billing cycle ``cycle``.

    ``create_time`` sets the envelope's time only (a naive datetime is taken as UTC). Sales and
    captures of different cycles have different ids. ``overrides`` are deep-merged into
    ``resource``.
    """
    resource_type, version, resource, at, summary = _paypal_resource(event_type, scenario, cycle)
    seed = f"|{event_type}|{cycle}"
    when = _event_time(create_time, scenario, seed, at)
    wh_id = event_id or _webhook_event_id(scenario, seed)
    api = _paypal_hosts(scenario)[0]
    event: dict[str, Any] = {
        "id": wh_id,
        "event_version": "1.0",
        "create_time": when,
        "resource_type": resource_type,
    }
    if version is not None:
        event["resource_version"] = version
    return event | {
        "event_type": event_type,
        "summary": summary,
        "resource": _deep_merge(resource, overrides),
        "links": [
            _link(f"{api}/v1/notifications/webhooks-events/{wh_id}", "self"),
            _link(f"{api}/v1/notifications/webhooks-events/{wh_id}/resend", "resend", "POST"),
        ],
    }


def paypal_lifecycle(scenario: Scenario) -> list[dict[str, Any]]:
    """A subscription's life in PayPal, oldest first: created, approved and activated, first
    and renewal payments, a refund of the renewal, then cancelled."""
    steps = [
        ("BILLING.SUBSCRIPTION.CREATED", 1),
        ("BILLING.SUBSCRIPTION.ACTIVATED", 1),
        ("PAYMENT.SALE.COMPLETED", 1),
        ("PAYMENT.SALE.COMPLETED", 2),
        ("PAYMENT.SALE.REFUNDED", 2),
        ("BILLING.SUBSCRIPTION.CANCELLED", 2),
    ]
    return [paypal_event(kind, scenario, cycle=cycle) for kind, cycle in steps]
