"""Applying provider snapshots to ledger objects so that state never moves backwards.

Every provider object stores the version of the event last applied: (provider timestamp, state
rank, event id). A snapshot applies only if its version is not older, so the ledger ends the same
whatever order duplicates and retries arrive in. On PostgreSQL the row is locked while it is
compared and written; SQLite serialises writers anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, bindparam, event, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger import bounds
from ledger.db import is_postgres, one_of
from ledger.models import Customer, Provider, _ProviderObject
from policy.timing import LATEST

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
    """Write ``values`` unless the stored object holds a newer version; True if written.

    Raises ``bounds.OutOfRange`` before anything is written when a value does not fit."""
    _check(model, ref, version, values)
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
    _check(Customer, ref, version, {"email": email, "name": name})
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


def _check(model: type[Any], ref: Ref, version: Version, values: dict[str, Any]) -> None:
    """The boundary check of everything an event writes (see ``ledger.bounds``)."""
    bounds.check_text(f"{model.__tablename__} id", ref.provider_id)
    if version.at >= LATEST:  # a far-future version would freeze the object for good
        raise bounds.OutOfRange(f"the event's time {version.at.isoformat()}: after 2100")
    bounds.check(model, values)


def find(session: Session, model: type[T], ref: Ref) -> T | None:
    return _locked(session, model, ref)


def held(session: Session, model: type[T], merchant: str, provider_id: str) -> T | None:
    """The object if this transaction already holds it (found, locked or inserted), whatever
    its provider; never a query. Callers that know only the merchant and the provider's id
    (support requests, cases) are answered from here before they query."""
    cache: dict[tuple[type, Ref], Any] | None = session.info.get(_CACHE)
    if not cache:
        return None
    for provider in _PROVIDERS:
        found = cache.get((model, Ref(merchant, provider, provider_id)))
        if found is not None and found is not _ABSENT and found in session:
            return found  # type: ignore[no-any-return]  # the cache holds model instances
    return None


def peek(session: Session, model: type[T], ref: Ref) -> T | None:
    """The object without locking it: the one this transaction holds, else a plain lookup.

    For objects linked to an event's own (a charge's invoice, say) that belong to another
    partition: locking them here could deadlock with the worker draining that partition. No
    autoflush, for the reason ``_locked`` gives: a row inserted in this transaction is in the
    cache, and the key columns it looks up never change."""
    found = held(session, model, ref.merchant, ref.provider_id)
    if found is not None and found.provider == ref.provider:
        return found
    peeked: dict[tuple[type, Ref], Any] = transaction_memo(session).get(_PEEKED, {})
    if (model, ref) in peeked:
        return peeked[(model, ref)]  # type: ignore[no-any-return]  # model instances or None
    with session.no_autoflush:
        return session.scalars(_lookup(model, locked=False), _params(ref)).one_or_none()


def peek_all(session: Session, model: type[_ProviderObject], refs: set[Ref]) -> None:
    """Look at every object of ``refs`` the transaction does not hold, in one query and
    without locking them, for ``peek`` to answer from: a batch's events asked for them one
    query each. Only for objects whose rows the caller's locks keep as read until the end
    (the Stripe overpayment lock keeps an invoice and its charge so); ``peek`` sees a row
    this transaction inserts later (the cache holds it) but no other transaction's changes."""
    wanted = {ref for ref in refs if held(session, model, ref.merchant, ref.provider_id) is None}
    if not wanted:
        return
    query, params = _any_of(model, wanted, is_postgres(session.get_bind()), locked=False)
    peeked: dict[tuple[type, Ref], Any] = transaction_memo(session).setdefault(_PEEKED, {})
    peeked.update(((model, ref), None) for ref in wanted)
    with session.no_autoflush:
        for obj in session.scalars(query, params):
            peeked[(model, Ref(obj.merchant, obj.provider, obj.provider_id))] = obj


def _locked(session: Session, model: type[T], ref: Ref) -> T | None:
    """The object, locked until the transaction ends. A batch of events names the same
    objects again and again: within one transaction an object found (or inserted) once is
    taken from the session's cache, which is safe because its row stays locked (PostgreSQL)
    or the database has one writer (SQLite) until the transaction ends, when the cache is
    dropped. An object a rolled-back savepoint inserted has left the session: looked up again."""
    cache: dict[tuple[type, Ref], Any] = session.info.setdefault(_CACHE, {})
    found = cache.get((model, ref))
    if found is _ABSENT:
        return None
    if found is not None and found in session:
        return found  # type: ignore[no-any-return]  # the cache holds model instances
    # No autoflush: pending changes cannot alter which row this finds (the only pending row
    # it could be is one inserted in this transaction, which the cache already answered), and
    # a flush per lookup was a large share of a batch's time.
    with session.no_autoflush:
        obj: T | None = session.scalars(_lookup(model), _params(ref)).one_or_none()
    if obj is not None:
        cache[(model, ref)] = obj
    return obj


def _lookup(model: type[Any], locked: bool = True) -> Select[Any]:
    """One statement per model, built once: building it per lookup cost more than running it."""
    if (model, locked) not in _LOOKUPS:
        query = (
            select(model)
            .where(model.merchant == bindparam("merchant"), model.provider == bindparam("provider"))
            .where(model.provider_id == bindparam("provider_id"))
        )
        _LOOKUPS[model, locked] = query.with_for_update() if locked else query
    return _LOOKUPS[model, locked]


def _params(ref: Ref) -> dict[str, str]:
    return {"merchant": ref.merchant, "provider": ref.provider, "provider_id": ref.provider_id}


_LOOKUPS: dict[tuple[type, bool], Select[Any]] = {}
_PROVIDERS = tuple(Provider)


def _insert(session: Session, model: type[T], ref: Ref, version: Version, livemode: bool,
            values: dict[str, Any]) -> T | None:
    obj = model(**{**_defaults(model), **values,
                   "merchant": ref.merchant, "provider": ref.provider,
                   "provider_id": ref.provider_id, "version_at": version.at,
                   "version_rank": version.rank, "version_event": version.event,
                   "livemode": livemode})
    if not add_once(session, obj):
        return None
    session.info.setdefault(_CACHE, {})[(model, ref)] = obj
    return obj


def _defaults(model: type[Any]) -> dict[str, Any]:
    """The model's columns that have a constant default, with it: given to every new row.

    The unit of work writes a batch's new rows of one table in one multi-row INSERT only while
    consecutive rows set the same columns; a column left to its default in one row (a PayPal
    sale has no ``amount_refunded``) and set in the next (a Stripe charge's) split the batch into
    an INSERT per run. The stored values are the same either way."""
    found = _DEFAULTS.get(model)
    if found is None:
        found = _DEFAULTS[model] = {
            column.key: column.default.arg for column in model.__table__.columns
            if column.default is not None and column.default.is_scalar
            and not column.primary_key}
    return found


_DEFAULTS: dict[type, dict[str, Any]] = {}


def add_once(session: Session, obj: Any) -> bool:
    """Add a row its unique key guards; False if a concurrent transaction inserted it first.

    In an all-or-nothing transaction (see ``all_or_nothing``) without a savepoint: a racing
    insert fails a later flush, and with it the attempt, which is redone where the race is
    handled here. Otherwise in a savepoint, which flushes the row at once."""
    if session.info.get(_ALL_OR_NOTHING):
        session.add(obj)
        return True
    try:
        with session.begin_nested():
            session.add(obj)
    except IntegrityError:
        return False
    return True


def prefetch(session: Session, models: Iterable[type[_ProviderObject]], refs: set[Ref]) -> None:
    """Load and lock, one query per model, every object of ``refs`` not yet in the cache.

    For an all-or-nothing transaction only (see ``all_or_nothing``): an object not found is
    remembered as absent, so the event that creates it inserts it without looking again. If
    another transaction inserts it meanwhile, the unique key fails the attempt, which is redone
    without prefetching. Rows are locked in id order, as any other worker would lock them."""
    assert session.info.get(_ALL_OR_NOTHING), "prefetch is for all-or-nothing transactions"
    cache: dict[tuple[type, Ref], Any] = session.info.setdefault(_CACHE, {})
    postgres = is_postgres(session.get_bind())
    for model in models:
        wanted = {ref for ref in refs if (model, ref) not in cache}
        if not wanted:
            continue
        query, params = _any_of(model, wanted, postgres)
        with session.no_autoflush:
            for obj in session.scalars(query, params):
                ref = Ref(obj.merchant, obj.provider, obj.provider_id)
                cache[(model, ref)] = obj
                wanted.discard(ref)
        cache.update(((model, ref), _ABSENT) for ref in wanted)


def _any_of(model: type[_ProviderObject], refs: set[Ref], postgres: bool, locked: bool = True
            ) -> tuple[Select[Any], dict[str, Any]]:
    """The query of ``refs`` (locking them unless not ``locked``), with its parameters: per
    merchant and provider, the provider ids IN a list, a condition the unique key's index
    answers. (A row-value IN over the three columns reads the whole table on SQLite: once per
    batch and model, which grows with the ledger.) One statement per model and number of
    (merchant, provider) pairs, built once, with the lists as expanding parameters: building
    it with the ids in it, each coerced to a literal, cost more than the query. On PostgreSQL
    each list is one array (``one_of``)."""
    ids: dict[tuple[str, str], list[str]] = {}
    for ref in refs:
        ids.setdefault((ref.merchant, ref.provider), []).append(ref.provider_id)
    query = _PREFETCH.get((model, len(ids), postgres, locked))
    if query is None:
        query = select(model).where(or_(*(
            and_(model.merchant == bindparam(f"merchant_{i}"),
                 model.provider == bindparam(f"provider_{i}"),
                 one_of(model.provider_id, f"ids_{i}", postgres))
            for i in range(len(ids))))).order_by(model.id)
        query = query.with_for_update() if locked else query
        _PREFETCH[(model, len(ids), postgres, locked)] = query
    params: dict[str, Any] = {}
    for i, ((merchant, provider), provider_ids) in enumerate(sorted(ids.items())):
        params.update({f"merchant_{i}": merchant, f"provider_{i}": provider,
                       f"ids_{i}": sorted(provider_ids)})
    return query, params


_PREFETCH: dict[tuple[type, int, bool, bool], Select[Any]] = {}


def all_or_nothing(session: Session) -> None:
    """Declare that the caller rolls back the whole transaction on any error and does its work
    again with a savepoint per unit. An insert then needs no savepoint of its own (one per new
    object otherwise): if another transaction inserted the same object first, the unique key
    fails a later flush, and the attempt is redone where the race is handled."""
    session.info[_ALL_OR_NOTHING] = True


_CACHE = "ledger.objects.locked"
_MEMO = "ledger.objects.memo"
_PEEKED = "ledger.objects.peeked"  # in the memo: what ``peek_all`` read
_ALL_OR_NOTHING = "ledger.objects.all_or_nothing"
_ABSENT = object()  # in the cache: prefetched, and not in the ledger


@event.listens_for(Session, "after_transaction_end")
def _forget_at_the_end(session: Session, transaction: Any) -> None:
    """Locks end with the transaction (a savepoint's release ends no lock)."""
    if transaction.parent is None:
        session.info.pop(_CACHE, None)
        session.info.pop(_MEMO, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: Any) -> None:
    """A rollback, even of a savepoint, may have dropped objects: forget them all."""
    session.info.pop(_CACHE, None)
    session.info.pop(_MEMO, None)


def transaction_memo(session: Session) -> dict[Any, Any]:
    """What this transaction has learnt (locks it holds, facts read under them), forgotten as
    the cache of locked objects is: when the transaction ends and after any rollback, even of a
    savepoint (which gives back the locks taken inside it)."""
    memo: dict[Any, Any] = session.info.setdefault(_MEMO, {})
    return memo
