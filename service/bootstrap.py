"""The composition root: one place wires settings, database, Redis, queue and verifiers.

Nothing connects at import time. Web processes build a Container in ``create_app``; worker
processes build one when ``gateway worker`` starts and RQ jobs reach it through ``current()``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, overload

from redis import Redis
from rq import Queue
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ledger.db import make_engine, make_session_factory
from service.config import Merchant, PayPalVerification, Settings, load_settings
from service.embedded_redis import ensure_embedded_redis
from service.errors import UnknownMerchant, VerificationError
from workers.dispatch import Dispatcher

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # imported where they are built, on first use
    from adapters.paypal_adapter import PayPalAdapter
    from adapters.stripe_adapter import StripeAdapter
    from gateway.ratelimit import FailureLimiter
    from gateway.signatures.paypal import PayPalVerifier
    from gateway.signatures.paypal_api import PayPalApiVerifier
    from policy.pack import Pack
    from workers.intake import Intake


@dataclass
class Container:
    settings: Settings
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url,
                           busy_timeout=self.settings.db_busy_timeout)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def redis_url(self) -> str:
        return self.settings.redis_url or ensure_embedded_redis(self.settings.data_dir)

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=2)

    @cached_property
    def queue(self) -> Queue:
        return Queue(self.settings.queue_name, connection=self.redis)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.redis, self.queue, self.settings.drain_lock_seconds)

    @cached_property
    def intake(self) -> Intake:
        from workers.intake import Intake

        return Intake(self.redis, self.settings)

    @cached_property
    def failure_limiter(self) -> FailureLimiter:
        from gateway.ratelimit import FailureLimiter

        return FailureLimiter(self.redis, self.settings.signature_failure_limit,
                              self.settings.signature_failure_window)

    @cached_property
    def paypal_local_verifier(self) -> PayPalVerifier:
        from gateway.signatures.paypal import PayPalVerifier, load_bundled_ca

        ca_file = self.settings.paypal_ca_file
        try:
            ca_pem = ca_file.read_bytes() if ca_file else load_bundled_ca()
            return PayPalVerifier(ca_pem, cache_dir=self.settings.data_dir / "paypal-certs",
                                  timeout=self.settings.paypal_cert_timeout,
                                  tolerance=self.settings.paypal_tolerance)
        except (OSError, ValueError) as exc:  # unreadable, or no certificate in it
            # Not the sender's fault and not for good: 503, and PayPal delivers again. The
            # file's path and the reason go to the log, not to whoever sent the delivery.
            log.error("the PayPal CA file %s cannot be used: %s", ca_file, exc)
            raise VerificationError("verification_unavailable",
                                    "PayPal signatures cannot be checked now; retry later"
                                    ) from exc

    def paypal_verifier(self, merchant: Merchant) -> PayPalVerifier | PayPalApiVerifier:
        """The merchant's PayPal verifier: local (shared certificate cache) or PayPal's API."""
        if merchant.paypal.verification is PayPalVerification.LOCAL:
            return self.paypal_local_verifier
        key = f"paypal-api:{merchant.name}"
        if key not in self._cache:
            from gateway.signatures.paypal_api import PayPalApiVerifier

            self._cache[key] = PayPalApiVerifier(merchant.paypal,
                                                 timeout=self.settings.paypal_cert_timeout,
                                                 tolerance=self.settings.paypal_tolerance)
        verifier: PayPalApiVerifier = self._cache[key]
        return verifier

    @overload
    def refund_adapter(self, merchant_name: str, provider: Literal["stripe"]) -> StripeAdapter: ...

    @overload
    def refund_adapter(self, merchant_name: str, provider: str) -> StripeAdapter | PayPalAdapter:
        ...

    def refund_adapter(self, merchant_name: str, provider: str) -> StripeAdapter | PayPalAdapter:
        """The merchant's Stripe or PayPal adapter, built once per process."""
        key = f"adapter:{merchant_name}:{provider}"
        if key not in self._cache:
            merchant = self.settings.merchant(merchant_name)
            if merchant is None:
                raise UnknownMerchant(merchant_name)
            if provider == "stripe":
                from adapters.stripe_adapter import StripeAdapter

                self._cache[key] = StripeAdapter(merchant.stripe)
            else:
                from adapters.paypal_adapter import PayPalAdapter

                self._cache[key] = PayPalAdapter(merchant.paypal)
        adapter: StripeAdapter | PayPalAdapter = self._cache[key]
        return adapter

    def policy_pack(self, name: str) -> Pack:
        """A policy pack, loaded once per process."""
        key = f"pack:{name}"
        if key not in self._cache:
            from policy import load_pack

            self._cache[key] = load_pack(name)
        pack: Pack = self._cache[key]
        return pack

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "redis" in self.__dict__:
            self.redis.close()


_current: Container | None = None


def build(settings: Settings | None = None) -> Container:
    return Container(settings or load_settings())


def install(container: Container) -> Container:
    """Make ``container`` the one RQ jobs in this process use."""
    global _current
    _current = container
    return container


def current() -> Container:
    """The process's container (built from the environment on first use)."""
    global _current
    if _current is None:
        _current = build()
    return _current
