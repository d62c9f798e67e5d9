"""The limit on failed webhook signature checks per source address, counted in Redis.

A source that fails verification ``limit`` times within a fixed window is answered 429 until
the window ends, before anything it sends is verified: that caps what guessing signatures costs
us (HMAC per secret, certificate checks) and what a forger learns. Only refusals count (400),
never "verification unavailable" (503), which is our outage and not the sender's doing.

The count is kept per source *and merchant*: Stripe and PayPal deliver every merchant's events
from the same few addresses, so one merchant's stale secret must not hold up the others'.
If Redis cannot be reached the limiter lets everything through and says so once per outage:
taking in genuine events matters more than slowing down forgers.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Response
from redis import Redis
from redis.exceptions import RedisError

from gateway.responses import error

log = logging.getLogger(__name__)

KEY_PREFIX = "gateway:sigfail:"


def source_of(remote_addr: str | None) -> str:
    """The address a limit applies to; an IPv6 client is counted by its /64, which one host
    can rotate through at will."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return remote_addr or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailureLimiter:
    """Counts failed signature checks per (source, merchant) in fixed windows. Thread-safe."""

    def __init__(self, redis: Redis, limit: int, window_seconds: int) -> None:
        self._redis = redis
        self._limit = limit
        self._window = max(window_seconds, 1)
        self._down = False  # Redis unreachable: logged once, until it answers again

    def blocked_for(self, source: str, merchant: str) -> int:
        """Seconds until ``source`` may try ``merchant`` again; 0 when it is not blocked."""
        if self._limit <= 0:
            return 0
        key = _key(source, merchant)
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.ttl(key)
                count, ttl = pipe.execute()
        except RedisError:
            self._unavailable()
            return 0
        self._down = False
        if count is None or int(count) < self._limit:
            return 0
        return max(int(ttl), 1)

    def record_failure(self, source: str, merchant: str) -> None:
        """Count one refused delivery; the window starts with the first failure in it."""
        if self._limit <= 0:
            return
        key = _key(source, merchant)
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                # SET NX EX then INCR in one MULTI: the key can never be left without an expiry.
                pipe.set(key, 0, ex=self._window, nx=True)
                pipe.incr(key)
                pipe.execute()
        except RedisError:
            self._unavailable()
            return
        self._down = False

    def _unavailable(self) -> None:
        if not self._down:
            log.warning("signature failure limit not enforced: Redis is unavailable")
        self._down = True


def too_many_failures(retry_after: int) -> tuple[Response, int]:
    """429 with Retry-After, in the web tier's one error shape."""
    response, status = error(429, "too_many_failures",
                             "too many failed signature checks from this address; "
                             f"retry after {retry_after} seconds")
    response.headers["Retry-After"] = str(retry_after)
    return response, status


def _key(source: str, merchant: str) -> str:
    return f"{KEY_PREFIX}{merchant}:{source}"
