"""What the hostile-input suite shares: bounded deterministic fuzzing, and checks of the world.

Every fuzz test runs a fixed number of examples, derandomized and without an example database,
so CI sees the same inputs every run and a run's length does not drift.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from sqlalchemy import func, select

from ledger.models import Action, Decision, InboxEvent, SupportRequest
from service.bootstrap import Container
from tests.support.delivery import settle
from tests.support.ledger import PROVIDER_OBJECTS

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

TALLY: Counter[str] = Counter()  # inputs sent per test, printed at the end of the run


def world(container: Container) -> dict[str, int]:
    """How much is stored, decided and queued: what unverified input must never change."""
    models = (InboxEvent, Decision, Action, SupportRequest, *PROVIDER_OBJECTS)
    with container.sessions() as s:
        counts = {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
                  for m in models}
    counts["queued"] = sum(container.redis.llen(f"gateway:inbox:{p}")
                           for p in range(container.settings.partitions))
    counts["streamed"] = sum(container.redis.xlen(f"gateway:stream:{p}")
                             for p in range(container.settings.partitions))
    counts["jobs"] = container.queue.count
    return counts


def stored_bodies(container: Container) -> list[bytes]:
    settle(container)
    with container.sessions() as s:
        return list(s.scalars(select(InboxEvent.raw_body)))


def assert_error_shape(resp: Any) -> None:
    """Every refusal is our JSON error, never an HTML page or a traceback."""
    assert resp.is_json, resp.get_data()[:200]
    assert set(resp.json) == {"error"} and resp.json["error"]["code"]
