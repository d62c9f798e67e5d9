"""Applying provider snapshots to ledger objects so that state never moves backwards.

Every provider object stores the version of the event last applied: (provider timestamp, state
rank, event id). A snapshot applies only if its version is not older, so the ledger ends the same
whatever order duplicates and retries arrive in. On PostgreSQL the row is locked while it is
compared and written; SQLite serialises writers anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.models import Customer, _ProviderObject

T = TypeVar("T", bound=_ProviderObject)


@dataclass(frozen=True, slots=True)
class Version:
    at: datetime
    rank: int
    event: str

    def key(self) -> tuple[datetime, int, str]:
        return (self.at, self.rank, self.event)


@dataclass(frozen=True, slots=True)
class Ref:
    """Which object: merchant, provider and the provider's id."""

    merchant: str
    provider: str
    provider_id: str


def apply_snapshot(session: Session, model: type[T], ref: Ref, version: Version,
                   livemode: bool, values: dict[str, Any]) -> bool:
    """Write ``values`` unless the stored object holds a newer version; True if written."""
    obj = _locked(session, model, ref)
    if obj is None:
        obj = _insert(session, model, ref, version, livemode, values)
        if obj is not None:
            return True
        obj = _locked(session, model, ref)
        assert obj is not None  # a concurrent insert won the race; its row exists now
    current = (obj.version_at, obj.version_rank, obj.version_event)
    if current > version.key():
        return False
    for name, value in values.items():
        setattr(obj, name, value)
    obj.version_at, obj.version_rank, obj.version_event = version.key()
    return True


def ensure_customer(session: Session, ref: Ref, version: Version, livemode: bool,
                    email: str | None = None, name: str | None = None) -> None:
    """Record a customer the first time any event names it, with the earliest event's details."""
    customer = _locked(session, Customer, ref)
    if customer is None:
        values = {"email": email, "name": name}
        if _insert(session, Customer, ref, version, livemode, values) is not None:
            return
        customer = _locked(session, Customer, ref)
        assert customer is not None
    # Details from the earliest event that named the customer win, whatever the arrival order.
    earliest = version.key() < (customer.version_at, customer.version_rank, customer.version_event)
    if earliest:
        customer.version_at, customer.version_rank, customer.version_event = version.key()
    customer.email = (email or customer.email) if earliest else (customer.email or email)
    customer.name = (name or customer.name) if earliest else (customer.name or name)


def find(session: Session, model: type[T], ref: Ref) -> T | None:
    return _locked(session, model, ref)


def _locked(session: Session, model: type[T], ref: Ref) -> T | None:
    query = (
        select(model)
        .where(model.merchant == ref.merchant, model.provider == ref.provider)
        .where(model.provider_id == ref.provider_id)
        .with_for_update()
    )
    return session.execute(query).scalar_one_or_none()


def _insert(session: Session, model: type[T], ref: Ref, version: Version, livemode: bool,
            values: dict[str, Any]) -> T | None:
    obj = model(merchant=ref.merchant, provider=ref.provider, provider_id=ref.provider_id,
                version_at=version.at, version_rank=version.rank, version_event=version.event,
                livemode=livemode, **values)
    try:
        with session.begin_nested():
            session.add(obj)
    except IntegrityError:
        return None
    return obj
