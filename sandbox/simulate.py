"""`gateway simulate` and the demo's sender: realistic sample events, signed as each provider
signs them, sent to a running gateway.

Stripe events are signed with the merchant's first webhook secret. PayPal events are signed by a
local development certificate (``sandbox.devcerts``) that the gateway trusts only when started
with ``GATEWAY_PAYPAL_CA_FILE`` pointing at the development CA, as the demo does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.envelope import parse_time
from sandbox import samples
from sandbox.simulator import SendResult, send_paypal, send_stripe
from service.config import Settings, load_settings
from service.errors import ConfigError, UnknownMerchant


def lifecycle_events(provider: str, key: str) -> list[dict[str, Any]]:
    """An orderly life cycle of one subscription for ``provider``, with ids derived from key."""
    scenario = samples.Scenario(key=key)
    if provider == "stripe":
        return samples.stripe_lifecycle(scenario)
    return samples.paypal_lifecycle(samples.Scenario(key=key, payment_method="paypal"))


def sample_event(provider: str, event_type: str, key: str, at: datetime | None = None
                 ) -> dict[str, Any]:
    """One sample event of ``event_type``, happening at ``at`` (default: the samples' fixed
    calendar, from 2026-01-01); an unknown type is a clear error listing the known."""
    known = samples.STRIPE_EVENT_TYPES if provider == "stripe" else samples.PAYPAL_EVENT_TYPES
    if event_type not in known:
        raise ConfigError(f"no sample for {provider} {event_type}; known: {', '.join(known)}")
    if at is None:
        return _sample(provider, event_type, key, samples.Scenario.period_start)
    # The scenario's calendar moved so that the event itself, and the object it reports,
    # happen at ``at``: a refund request filed just after it is inside the money-back windows.
    moment = int(at.timestamp())
    first = _sample(provider, event_type, key, moment)
    event = _sample(provider, event_type, key, 2 * moment - _event_time(provider, first))
    if provider == "stripe":
        event["created"] = moment
    else:
        event["create_time"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
            f"{at.microsecond // 1000:03d}Z"
    return event


def _sample(provider: str, event_type: str, key: str, period_start: int) -> dict[str, Any]:
    if provider == "stripe":
        return samples.stripe_event(event_type, samples.Scenario(key=key,
                                                                  period_start=period_start))
    return samples.paypal_event(event_type, samples.Scenario(
        key=key, payment_method="paypal", period_start=period_start))


def _event_time(provider: str, event: dict[str, Any]) -> int:
    if provider == "stripe":
        return int(event["created"])
    moment = parse_time(event["create_time"])
    assert moment is not None  # the samples write a valid time
    return int(moment.timestamp())


def send_event(settings: Settings, data_dir: Path, provider: str, merchant_name: str,
               event: dict[str, Any], base_url: str) -> SendResult:
    merchant = settings.merchant(merchant_name)
    if merchant is None:
        raise UnknownMerchant(merchant_name)
    url = f"{base_url.rstrip('/')}/webhooks/{merchant_name}/{provider}"
    if provider == "stripe":
        if not merchant.stripe.webhook_secrets:
            raise ConfigError(f"merchant {merchant_name} has no Stripe webhook secret")
        return send_stripe(url, event, merchant.stripe.webhook_secrets[0])
    from sandbox.devcerts import load_or_create_dev_signer

    signer = load_or_create_dev_signer(data_dir)
    return send_paypal(url, event, signer, merchant.paypal.webhook_id)


def simulate(provider: str, event_type: str, merchant_name: str, base_url: str,
             key: str | None = None, at: datetime | None = None) -> SendResult:
    """Send one signed sample event of ``event_type`` for ``merchant_name`` to ``base_url``,
    happening at ``at`` (default: now)."""
    settings = load_settings()
    event = sample_event(provider, event_type, key or f"sim-{merchant_name}-{uuid.uuid4().hex[:8]}",
                         at or datetime.now(UTC))
    return send_event(settings, settings.data_dir, provider, merchant_name, event, base_url)
