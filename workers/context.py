"""What a handler is given: one verified event, parsed, with its merchant and timestamps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from ledger.bounds import OutOfRange
from ledger.objects import Ref, Version
from policy.timing import EARLIEST_UNIX, LATEST_UNIX
from service.errors import GatewayError


@dataclass(frozen=True)
class EventContext:
    merchant: str
    provider: str
    event_id: str
    event_type: str
    created_at: datetime
    livemode: bool
    payload: dict[str, Any]

    def ref(self, provider_id: str) -> Ref:
        return Ref(self.merchant, self.provider, provider_id)

    def version(self, rank: int = 0, at: datetime | None = None) -> Version:
        return Version(at or self.created_at, rank, self.event_id)


class ObjectNotYetKnown(GatewayError):
    """The event updates an object whose own creation event has not arrived yet: retry later."""


# A handler applies one event to the ledger. It returns None when it applied the event, or a
# short reason when the event was recorded but deliberately changed nothing.
Handler = Callable[[Session, EventContext], str | None]


def applied_or_stale(applied: bool) -> str | None:
    """A handler's answer for one snapshot: None when written, else why it changed nothing."""
    return None if applied else "older than the state already recorded"


def timestamp(value: Any) -> datetime | None:
    """A Stripe unix timestamp as aware UTC (None stays None); ``OutOfRange`` for a number no
    real event carries (outside 2000-2100: the ledger would not hold it anyway)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if not EARLIEST_UNIX <= value < LATEST_UNIX:
        raise OutOfRange(f"timestamp {value}: not between 2000 and 2100")
    return datetime.fromtimestamp(value, UTC)



def whole(value: Any, what: str) -> int:
    """``value`` if it is a whole number (a count, or minor units), else ``OutOfRange``: a
    handler computes with it before the ledger's own check could say so."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise OutOfRange(f"{what} = {value!r:.60}: not a whole number")
    return value


def dig(data: Any, *path: str | int) -> Any:
    """``data[p0][p1]...``, or None as soon as a step is missing."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(data, list) or len(data) <= step:
                return None
        elif not isinstance(data, dict):
            return None
        data = data[step] if isinstance(step, int) else data.get(step)
    return data
