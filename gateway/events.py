"""The inbox as support and finance search it, and the replay of failed events: one path for
the admin API (``GET /v1/events``, ``POST /v1/events/.../replay``) and the console."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import defer

from gateway.validation import InvalidBody, refuse_unknown, whole_number
from ledger import audit
from ledger.models import InboxEvent, InboxStatus
from policy.timing import EARLIEST, LATEST
from service.bootstrap import Container
from workers.sweeper import replay_rows

PAGE = 50  # events per page unless the search says otherwise
PAGE_MAX = 200
SETTLED = (InboxStatus.PROCESSED, InboxStatus.IGNORED)  # applied: never replayed
FILTERS = ("status", "provider", "type", "received_from", "received_to", "limit",
           "starting_after")


def parse_search(args: Mapping[str, str], known: tuple[str, ...] = FILTERS) -> dict[str, Any]:
    """A search's parameters, each checked; ``InvalidBody`` names the first that is not one
    the search understands. Empty values are absent (an empty form field)."""
    refuse_unknown(args, known)
    given = {name: value for name, value in args.items() if value != ""}
    status = given.get("status")
    if status is not None and status not in {s.value for s in InboxStatus}:
        raise InvalidBody("status", f"must be one of {', '.join(s.value for s in InboxStatus)}")
    provider = given.get("provider")
    if provider is not None and provider not in ("stripe", "paypal"):
        raise InvalidBody("provider", "must be stripe or paypal")
    event_type = given.get("type")
    if event_type is not None and not (len(event_type) <= 128 and event_type.isprintable()):
        raise InvalidBody("type", "must be an event type: at most 128 printable characters")
    out: dict[str, Any] = {"status": status, "provider": provider, "type": event_type}
    for name in ("received_from", "received_to"):
        if name in given:
            out[name] = _time(name, given[name])
    for name, top in (("limit", PAGE_MAX), ("starting_after", 2 ** 62)):
        if name in given:
            out[name] = whole_number(name, given[name], top)
    return out


def _time(name: str, text: str) -> datetime:
    """An ISO 8601 time (a date alone is its midnight UTC) within the range the ledger keeps."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidBody(name, "must be an ISO 8601 date or time, e.g. 2026-11-01 or "
                                "2026-11-01T12:00:00Z") from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not EARLIEST <= value <= LATEST:
        raise InvalidBody(name, f"must be between {EARLIEST.year} and {LATEST.year}")
    return value


def search(container: Container, merchant: str, found: Mapping[str, Any]
           ) -> tuple[list[InboxEvent], bool]:
    """The merchant's events matching ``found`` (from ``parse_search``), newest first, one
    page; and whether more match (the next page starts after the last one's id)."""
    query = select(InboxEvent).where(InboxEvent.merchant == merchant)
    for name, column in (("status", InboxEvent.status), ("provider", InboxEvent.provider),
                         ("type", InboxEvent.event_type)):
        if found.get(name) is not None:
            query = query.where(column == found[name])
    if found.get("received_from") is not None:
        query = query.where(InboxEvent.received_at >= found["received_from"])
    if found.get("received_to") is not None:
        query = query.where(InboxEvent.received_at < found["received_to"])
    if found.get("starting_after") is not None:
        query = query.where(InboxEvent.id < found["starting_after"])
    limit = found.get("limit") or PAGE
    query = (query.options(defer(InboxEvent.raw_body), defer(InboxEvent.headers),
                           defer(InboxEvent.last_traceback))
             .order_by(InboxEvent.id.desc()).limit(limit + 1))
    with container.sessions() as session:
        rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit


def replay(container: Container, merchant: str, actor: str, event_ids: list[str] | None
           ) -> list[InboxEvent]:
    """Hand the merchant's named events (None: every dead one) to the workers again, and
    record who did it in the audit log; the events as they are now. A processed or ignored
    event is left as it is. Raises RedisError when the queue cannot be reached (the events
    are then pending, and the sweeper hands them out)."""
    ids = replay_rows(container, event_ids, merchant)
    now = datetime.now(UTC)
    with container.sessions() as session, session.begin():
        rows = list(session.scalars(select(InboxEvent).where(InboxEvent.id.in_(ids))
                                    .order_by(InboxEvent.id)))
        for row in rows:
            audit.record(session, merchant=merchant, actor=actor, at=now,
                         action="event.replayed", subject=row.event_id,
                         provider=row.provider, inbox_id=row.id)
    return rows


def summary(row: InboxEvent) -> dict[str, Any]:
    """An event without its body: what a search lists."""
    return {"id": row.id, "event_id": row.event_id, "provider": row.provider,
            "type": row.event_type, "status": row.status, "status_reason": row.status_reason,
            "received_at": row.received_at.isoformat(), "deliveries": row.deliveries,
            "attempts": row.attempts, "last_error": row.last_error}
