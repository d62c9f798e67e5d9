"""Reading the ledger back as plain data, to compare two runs; writing rows straight into it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.models import Customer, Dispute, Invoice, Payment, Refund, Subscription
from service.bootstrap import Container

PROVIDER_OBJECTS = (Customer, Subscription, Invoice, Payment, Refund, Dispute)


def snapshot(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Every provider object's columns but the surrogate key, sorted by provider id."""
    result: dict[str, list[dict[str, Any]]] = {}
    for model in PROVIDER_OBJECTS:
        rows = session.scalars(select(model).order_by(model.provider_id)).all()
        columns = [c.key for c in model.__table__.columns if c.key != "id"]
        result[model.__tablename__] = [_comparable({c: getattr(r, c) for c in columns})
                                       for r in rows]
    return result


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A refund known only from our own call's answer is dated when this run made it: two runs
    agree on everything else about it."""
    if str(row.get("version_event", "")).startswith("api:") and "refunded_at" in row:
        return {**row, "refunded_at": None}
    return row


def add_in_order(container: Container, *rows: Any) -> None:
    """Write ``rows`` in one transaction, each flushed before the next, so that what a row
    refers to (a decision before its actions, a grant before its uses) is written first."""
    with container.sessions() as session, session.begin():
        for row in rows:
            session.add(row)
            session.flush()
