"""Matching provider records against the ledger, and the period's totals, in bounded memory.

Provider records are staged into ``staged_provider_records`` in batches; the database then joins
them with the ledger's payments and refunds by provider id, and the result is streamed. Nothing
holds more than a batch in memory, so a million records on each side fit in a small worker.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Engine,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)

from adapters import ledger_credit
from ledger.db import is_postgres
from ledger.models import (
    AccountCredit,
    Action,
    ActionStatus,
    Decision,
    Payment,
    Refund,
    StagedProviderRecord,
)
from reports.records import Discrepancy, DiscrepancyKind, ProviderRecord, RecordKind

BATCH = 50_000
STUCK_AFTER = timedelta(hours=1)
# A Table: SQLAlchemy types __table__ as any FromClause, which delete does not take.
_STAGED = cast(Table, StagedProviderRecord.__table__)
_COLUMNS = ("run_id, provider, kind, provider_id, amount, currency, status, created_at, "
            "related_id, source")
_MATCHED_KINDS = (RecordKind.PAYMENT, RecordKind.REFUND, RecordKind.DISPUTE)
# Statuses that mean the same thing to finance, whoever wrote them.
_SETTLED = {"succeeded", "completed", "paid", "refunded", "partially_refunded"}
_FAILED = {"failed", "denied", "canceled", "cancelled", "reversed", "declined"}

Progress = Callable[[str, int], None]


def status_class(status: str) -> str:
    """settled | failed | pending: how finance reads a provider's or our status."""
    status = status.lower()
    return "settled" if status in _SETTLED else "failed" if status in _FAILED else "pending"


@dataclass
class Totals:
    """One currency's figures for the period."""

    gross_charges: int = 0
    refunds: int = 0
    refunds_by_outcome: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refunds_by_clause: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    credit_granted: int = 0
    credit_used: int = 0
    fees_retained: int = 0
    deductions_retained: int = 0
    late_fees: int = 0
    service_credits: int = 0
    overpayments_refunded: int = 0
    overpayments_credited: int = 0
    provider_fees: int = 0
    matched: int = 0
    discrepancies: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["refunds_by_outcome"] = dict(self.refunds_by_outcome)
        data["refunds_by_clause"] = dict(self.refunds_by_clause)
        return data


@dataclass
class Run:
    """One reconciliation: a merchant, a period [start, end), and its staged records."""

    engine: Engine
    merchant: str
    start: datetime
    end: datetime
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    totals: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))

    def stage(self, records: Iterable[ProviderRecord], progress: Progress | None = None) -> int:
        """Stage provider records in batches; fees and others are totalled, not matched.

        Reading the records (parsing an export, paging an API) and writing batches overlap:
        a writer thread inserts while this one builds the next batch, and the database
        drivers release the GIL while the database works.
        """
        writer = _BatchWriter(self._insert, progress)
        batch: list[tuple[Any, ...]] = []
        row = _pg_row if self._postgres else _sqlite_row
        try:
            for record in records:
                kind = record.kind
                if kind is RecordKind.FEE:
                    self.totals[record.currency].provider_fees += record.amount
                elif kind in _MATCHED_KINDS:
                    batch.append(row(self.run_id, record))
                    if len(batch) >= BATCH:
                        writer.put(batch)
                        batch = []
            if batch:
                writer.put(batch)
        finally:
            staged = writer.close()
        if self._postgres:  # fresh rows have no statistics: let the planner see them
            with self.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE staged_provider_records")
        return staged

    @property
    def _postgres(self) -> bool:
        return is_postgres(self.engine)

    def _insert(self, batch: list[tuple[Any, ...]]) -> None:
        """Straight to the driver (COPY on PostgreSQL): per-row ORM work would dominate.
        Staged rows are scratch data, so SQLite need not wait for the disk on their commit
        (the ledger's own commits still do)."""
        if self._postgres:
            with self.engine.begin() as conn:
                # Checked out, so it has its driver connection (Optional only when detached).
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                with cursor.copy(f"COPY staged_provider_records ({_COLUMNS}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
        else:
            with self.engine.connect() as conn:
                _sqlite_insert(conn.connection.driver_connection, batch)

    def discrepancies(self, now: datetime | None = None, progress: Progress | None = None
                      ) -> Iterator[Discrepancy]:
        """Every mismatch, streamed: ledger against provider, provider against ledger, then
        refunds no decision asked for and actions never carried out."""
        now = now or datetime.now(UTC)
        yield from self._counted(self._ledger_side(progress))
        yield from self._counted(self._provider_side())
        yield from self._counted(self._unsolicited())
        yield from self._counted(self._unexecuted(now))

    def _counted(self, found: Iterable[Discrepancy]) -> Iterator[Discrepancy]:
        for d in found:
            self.totals[d.currency].discrepancies += 1
            yield d

    def _ledger_side(self, progress: Progress | None) -> Iterator[Discrepancy]:
        """Ledger entries the provider does not confirm exactly. Only those leave the
        database; the agreeing ones are the period's entries less these, so a million
        matches cost one join and one count."""
        query, agree = self._ledger_join()
        disagreeing: dict[str, int] = defaultdict(int)
        with self.engine.connect().execution_options(stream_results=True, yield_per=BATCH
                                                     ) as conn:
            self._roomy(conn)
            for row in conn.execute(select(query).where(~agree)):
                disagreeing[row.currency] += 1
                found = _compare(row)
                if found is not None:
                    yield found
        entries = self._ledger_entries()
        with self.engine.connect() as conn:
            for currency, count in conn.execute(select(entries.c.currency, func.count())
                                                .group_by(entries.c.currency)):
                self.totals[currency].matched += count - disagreeing[currency]
        if progress:
            progress("matched ledger entries", sum(t.matched for t in self.totals.values()))

    def _ledger_entries(self) -> Any:
        """Payments and refunds of the period as one selectable: (provider, id, kind, ...)."""
        payments = select(Payment.provider, Payment.provider_id, literal("payment").label("kind"),
                          Payment.amount, Payment.currency, Payment.status,
                          Payment.paid_at.label("at"), Payment.version_event).where(
            Payment.merchant == self.merchant, Payment.paid_at >= self.start,
            Payment.paid_at < self.end)
        refunds = select(Refund.provider, Refund.provider_id, literal("refund").label("kind"),
                         Refund.amount, Refund.currency, Refund.status,
                         Refund.refunded_at.label("at"), Refund.version_event).where(
            Refund.merchant == self.merchant, Refund.refunded_at >= self.start,
            Refund.refunded_at < self.end)
        return union_all(payments, refunds).subquery("ledger")

    def _ledger_join(self) -> tuple[Any, Any]:
        """Ledger entries joined to their staged record, and the condition that they agree."""
        ledger = self._ledger_entries()
        staged = _STAGED.alias("staged")
        joined = select(
            ledger.c.provider, ledger.c.provider_id, ledger.c.kind, ledger.c.amount,
            ledger.c.currency, ledger.c.status, ledger.c.at, ledger.c.version_event,
            staged.c.amount.label("p_amount"), staged.c.currency.label("p_currency"),
            staged.c.status.label("p_status"), staged.c.id.label("p_id"),
        ).select_from(ledger.outerjoin(staged, and_(
            staged.c.run_id == self.run_id, staged.c.provider == ledger.c.provider,
            staged.c.provider_id == ledger.c.provider_id))).subquery("joined")
        agree = and_(joined.c.p_id.is_not(None), joined.c.p_amount == joined.c.amount,
                     joined.c.p_currency == joined.c.currency,
                     _status_sql(joined.c.status) == _status_sql(joined.c.p_status))
        return joined, agree

    def _roomy(self, conn: Any) -> None:
        """Let PostgreSQL hash a million rows in memory rather than spill them to disk: the
        setting lasts for this transaction only."""
        if self._postgres:  # on the driver: a streaming connection would wrap it in a cursor
            conn.connection.driver_connection.execute("SET LOCAL work_mem = '128MB'")

    def _provider_side(self) -> Iterator[Discrepancy]:
        """Provider records with no ledger entry at all: a missed webhook, most likely."""
        staged = _STAGED.alias("staged")
        known = or_(
            exists().where(Payment.merchant == self.merchant,
                           Payment.provider == staged.c.provider,
                           Payment.provider_id == staged.c.provider_id),
            exists().where(Refund.merchant == self.merchant,
                           Refund.provider == staged.c.provider,
                           Refund.provider_id == staged.c.provider_id))
        query = select(staged).where(staged.c.run_id == self.run_id, ~known)
        with self.engine.connect().execution_options(stream_results=True, yield_per=BATCH
                                                     ) as conn:
            self._roomy(conn)
            for row in conn.execute(query):
                yield Discrepancy(DiscrepancyKind.MISSING_IN_LEDGER, row.provider,
                                  row.provider_id, row.currency, None, row.amount,
                                  f"{row.kind} the provider reports ({row.source}) is not in "
                                  f"the ledger: a webhook was missed", None, row.created_at)

    def _unsolicited(self) -> Iterator[Discrepancy]:
        query = select(Refund).where(
            Refund.merchant == self.merchant, Refund.unsolicited.is_(True),
            Refund.refunded_at >= self.start, Refund.refunded_at < self.end)
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                yield Discrepancy(DiscrepancyKind.UNSOLICITED_REFUND, r.provider, r.provider_id,
                                  r.currency, r.amount, None,
                                  f"refund of {r.payment_ref} made at the provider with no "
                                  f"decision of ours", _event(r.version_event), r.refunded_at)

    def _unexecuted(self, now: datetime) -> Iterator[Discrepancy]:
        query = select(Action).where(
            Action.merchant == self.merchant, Action.created_at >= self.start,
            Action.created_at < self.end,
            or_(Action.status == ActionStatus.FAILED,
                and_(Action.status.in_((ActionStatus.PENDING, ActionStatus.EXECUTING)),
                     Action.updated_at < now - STUCK_AFTER)))
        with self.engine.connect() as conn:
            for a in conn.execute(query):
                kind = (DiscrepancyKind.ACTION_STUCK if a.status == ActionStatus.EXECUTING
                        else DiscrepancyKind.ACTION_NOT_EXECUTED)
                yield Discrepancy(kind, a.provider or "ledger", a.id, a.currency, a.amount, None,
                                  f"{a.kind} for decision {a.decision_id} is {a.status}"
                                  f"{': ' + a.last_error if a.last_error else ''}",
                                  None, a.updated_at)

    def compute_totals(self) -> dict[str, Totals]:
        """Gross charges, refunds by outcome and clause, credit, fees: independent sums."""
        with self.engine.connect() as conn:
            self._money_totals(conn)
            self._decision_totals(conn)
        return self.totals

    def _money_totals(self, conn: Any) -> None:
        # Every payment whose money moved, refunded since or not (refunds are their own
        # figure): a PayPal sale refunded in full reads "refunded", a v2 capture "REFUNDED".
        charges = select(Payment.currency, func.sum(Payment.amount)).where(
            Payment.merchant == self.merchant, Payment.paid_at >= self.start,
            Payment.paid_at < self.end,
            _status_sql(Payment.status) == "settled").group_by(Payment.currency)
        for currency, total in conn.execute(charges):
            self.totals[currency].gross_charges = int(total or 0)
        refunds = select(
            Refund.currency, Refund.amount, Decision.outcome, Action.clause).select_from(
            Refund).outerjoin(Action, Action.id == Refund.action_id).outerjoin(
            Decision, Decision.id == Action.decision_id).where(
            Refund.merchant == self.merchant, Refund.refunded_at >= self.start,
            Refund.refunded_at < self.end, Refund.status.notin_(tuple(_FAILED)))
        for currency, amount, outcome, clause in conn.execute(refunds):
            t = self.totals[currency]
            t.refunds += amount
            t.refunds_by_outcome[outcome or "no decision of ours"] += amount
            t.refunds_by_clause[clause or "none"] += amount
        credits = select(AccountCredit.currency, AccountCredit.amount,
                         AccountCredit.applies_to).where(
            AccountCredit.merchant == self.merchant, AccountCredit.created_at >= self.start,
            AccountCredit.created_at < self.end, ledger_credit.counts())
        for currency, amount, applies_to in conn.execute(credits):
            if applies_to is None:  # a grant
                self.totals[currency].credit_granted += amount
            else:  # a use (negative), or a use given back (a voided Stripe invoice)
                self.totals[currency].credit_used -= amount

    def _decision_totals(self, conn: Any) -> None:
        """Fees and deductions kept, late fees, service credits, overpayments: per Decision."""
        query = select(Decision.request_kind, Decision.outcome, Decision.decision).where(
            Decision.merchant == self.merchant, Decision.evaluated_at >= self.start,
            Decision.evaluated_at < self.end)
        for kind, outcome, body in conn.execution_options(yield_per=BATCH).execute(query):
            _add_decision(self.totals, kind, outcome, body)

    def daily(self) -> list[dict[str, Any]]:
        """Refunds, credits and fees kept, per day and currency, for the report's chart."""
        days: dict[tuple[str, str], dict[str, Any]] = {}

        def day(at: datetime, currency: str) -> dict[str, Any]:
            key = (at.date().isoformat(), currency)
            return days.setdefault(key, {"date": key[0], "currency": currency, "refunds": 0,
                                         "credits": 0, "fees": 0})

        with self.engine.connect() as conn:
            for at, currency, amount in conn.execute(select(
                    Refund.refunded_at, Refund.currency, Refund.amount).where(
                    Refund.merchant == self.merchant, Refund.refunded_at >= self.start,
                    Refund.refunded_at < self.end, Refund.status.notin_(tuple(_FAILED)))):
                assert at is not None  # refunded_at >= start has left out the NULLs
                day(at, currency)["refunds"] += amount
            for at, currency, amount in conn.execute(select(
                    AccountCredit.created_at, AccountCredit.currency, AccountCredit.amount).where(
                    AccountCredit.merchant == self.merchant,
                    AccountCredit.applies_to.is_(None),  # a grant, as in the totals
                    AccountCredit.created_at >= self.start, AccountCredit.created_at < self.end)):
                day(at, currency)["credits"] += amount
            for at, body in conn.execute(select(Decision.evaluated_at, Decision.decision).where(
                    Decision.merchant == self.merchant, Decision.evaluated_at >= self.start,
                    Decision.evaluated_at < self.end)):
                fee = _amount(body, "fee")
                if fee:
                    day(at, body.get("currency") or "USD")["fees"] += fee
        return sorted(days.values(), key=lambda d: (d["date"], d["currency"]))

    def close(self) -> None:
        """Drop this run's staged records."""
        with self.engine.begin() as conn:
            conn.execute(delete(_STAGED).where(_STAGED.c.run_id == self.run_id))


def _sqlite_insert(raw: Any, batch: list[tuple[Any, ...]]) -> None:
    """One transaction on the driver connection, with no fsync: the rows are scratch data.

    (The pragma cannot change inside a transaction, hence the driver connection, which the
    engine leaves in autocommit mode so that it can issue BEGIN IMMEDIATE itself.)
    """
    sql = (f"INSERT INTO staged_provider_records ({_COLUMNS}) VALUES "
           f"({', '.join('?' * len(batch[0]))})")
    raw.execute("PRAGMA synchronous=OFF")
    try:
        raw.execute("BEGIN IMMEDIATE")
        try:
            raw.executemany(sql, batch)
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
    finally:
        raw.execute("PRAGMA synchronous=FULL")


def _utc_naive(at: datetime) -> datetime:
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None)


def _pg_row(run_id: str, r: ProviderRecord) -> tuple[Any, ...]:
    return (run_id, r.provider, r.kind.value, r.provider_id, r.amount, r.currency.upper(),
            r.status, _utc_naive(r.created_at), r.related_id, r.source)


def _sqlite_row(run_id: str, r: ProviderRecord) -> tuple[Any, ...]:
    """As the ledger's UTCDateTime stores it in SQLite: naive UTC, ISO with a space."""
    return (run_id, r.provider, r.kind.value, r.provider_id, r.amount, r.currency.upper(),
            r.status, _utc_naive(r.created_at).isoformat(" "), r.related_id, r.source)


class _BatchWriter:
    """Writes batches on a thread of its own, at most two batches behind the reader."""

    def __init__(self, insert: Callable[[list[tuple[Any, ...]]], None],
                 progress: Progress | None) -> None:
        self._insert, self._progress = insert, progress
        self._queue: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="stage-writer", daemon=True)
        self._thread.start()

    def put(self, batch: list[tuple[Any, ...]]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def close(self) -> int:
        """Wait for every batch; re-raise what the writer hit."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.written

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining so the reader never blocks on a full queue
            try:
                self._insert(batch)
            except BaseException as exc:  # handed to the reader thread by put() and close()
                self._error = exc
                continue
            self.written += len(batch)
            if self._progress:
                self._progress("staged provider records", self.written)


def _status_sql(column: Any) -> Any:
    """``status_class`` in SQL, so agreeing rows never leave the database."""
    lowered = func.lower(column)
    return case((lowered.in_(sorted(_SETTLED)), "settled"),
                (lowered.in_(sorted(_FAILED)), "failed"), else_="pending")


def _compare(row: Any) -> Discrepancy | None:
    """None when the ledger entry and the provider record agree; else what differs."""
    event = _event(row.version_event)
    if row.p_id is None:
        return Discrepancy(DiscrepancyKind.MISSING_AT_PROVIDER, row.provider, row.provider_id,
                           row.currency, row.amount, None,
                           f"{row.kind} in the ledger has no provider record", event, row.at)
    if row.p_currency != row.currency:
        kind, detail = DiscrepancyKind.CURRENCY_MISMATCH, f"{row.currency} here, " \
                                                          f"{row.p_currency} at the provider"
    elif row.p_amount != row.amount:
        kind, detail = DiscrepancyKind.AMOUNT_MISMATCH, f"{row.kind} amounts differ by " \
                                                        f"{row.amount - row.p_amount}"
    elif status_class(row.status) != status_class(row.p_status):
        kind, detail = DiscrepancyKind.STATUS_MISMATCH, f"{row.status} here, {row.p_status} " \
                                                        f"at the provider"
    else:
        return None
    return Discrepancy(kind, row.provider, row.provider_id, row.currency, row.amount,
                       row.p_amount, detail, event, row.at)


def _event(version_event: str | None) -> str | None:
    """The provider event behind a ledger row (an API answer is not an event)."""
    return None if not version_event or version_event.startswith("api:") else version_event


def _amount(body: dict[str, Any], key: str) -> int:
    value = (body.get("amounts") or {}).get(key)
    return int(value["amount"]) if isinstance(value, dict) else 0


def _add_decision(totals: dict[str, Totals], kind: str, outcome: str, body: dict[str, Any]
                  ) -> None:
    t = totals[body.get("currency") or "USD"]
    fee = _amount(body, "fee")
    deductions = sum(int(i["amount"]["amount"]) for i in body.get("line_items") or []
                     if i.get("kind") == "deduction")
    if outcome == "late_fee":
        t.late_fees += fee
    else:
        t.fees_retained += fee
    t.deductions_retained += deductions
    if outcome == "service_credit":
        t.service_credits += _amount(body, "credit")
    if kind == "overpayment":
        t.overpayments_refunded += _amount(body, "refund")
        t.overpayments_credited += _amount(body, "credit")
