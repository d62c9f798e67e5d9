"""The limit on failed webhook signature checks per source address, counted in Redis.

A source that fails verification ``limit`` times within a fixed window is answered 429 until
the window ends, before anything it sends is verified: that caps what guessing signatures costs
us (HMAC per secret, certificate checks) and what a forger learns. Only refusals count (400),
never "verification unavailable" (503), which is our outage and not the sender's doing.

The count is kept per source *and merchant*: Stripe and PayPal deliver every merchant's events
from the same few addresses, so one merchant's stale secret must not hold up the others'.
If Redis cannot be reached the limiter lets everything through and says so once per outage:
taking in genuine events matters more than slowing down forgers.

Every delivery is checked against the limit, but only a source this process has seen fail in
the current window costs a Redis round trip: for the others there is nothing to find, unless
their failures went to another web process, in which case the first failure here makes it a
suspect. So a source gets at most one attempt more than the limit per web process and window,
and a provider's genuine deliveries never wait on Redis before being verified.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "gateway:sigfail:"
_MAX_SUSPECTS = 100_000  # sources remembered per process; expired ones are dropped past this


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
        # Keys this process counted a failure for, with when that window ends at the latest
        # (monotonic time): the window in Redis started at or before this process's failure.
        self._suspects: dict[str, float] = {}

    def blocked_for(self, source: str, merchant: str) -> int:
        """Seconds until ``source`` may try ``merchant`` again; 0 when it is not blocked."""
        if self._limit <= 0:
            return 0
        key = _key(source, merchant)
        if self._suspects.get(key, 0.0) < time.monotonic():
            return 0  # no failure of its seen here in this window: nothing to look up
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
        self._suspect(key)

    def _suspect(self, key: str) -> None:
        now = time.monotonic()
        if len(self._suspects) >= _MAX_SUSPECTS:
            self._suspects = {k: until for k, until in self._suspects.items() if until > now}
        self._suspects[key] = now + self._window

    def _unavailable(self) -> None:
        if not self._down:
            log.warning("signature failure limit not enforced: Redis is unavailable")
        self._down = True


def _key(source: str, merchant: str) -> str:
    return f"{KEY_PREFIX}{merchant}:{source}"
