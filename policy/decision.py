"""The Decision: outcome, amounts, line items, dates and the cited reasons behind them.

Amounts are ``Money`` in the decision's currency (zero when nothing moves). When money is at stake
(``at_stake`` is set) the decision keeps ``refund + credit + retained == at_stake``; fees and
charges are never negative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from policy.case_json import iso, money_json
from policy.frozen import builder
from policy.money import Money


class Outcome(StrEnum):
    FULL_REFUND = "full_refund"
    PARTIAL_REFUND = "partial_refund"
    ACCOUNT_CREDIT = "account_credit"
    SERVICE_CREDIT = "service_credit"
    DENY = "deny"
    NEEDS_REVIEW = "needs_review"
    CANCEL_AT_PERIOD_END = "cancel_at_period_end"
    CANCEL_NEXT_PERIOD = "cancel_next_period"
    CANCEL_IMMEDIATELY = "cancel_immediately"
    CANCEL_BLOCKED = "cancel_blocked"
    LATE_FEE = "late_fee"
    NO_ACTION = "no_action"


@dataclass(frozen=True, slots=True)
class Reason:
    """One clause applied to the facts: ``holds`` is whether the case satisfies it."""

    clause: str
    text: str
    holds: bool
    detail: str


@dataclass(frozen=True, slots=True)
class LineItem:
    """One amount inside a decision (a deduction, a fee, a charge) and the clause behind it."""

    kind: str
    label: str
    amount: Money
    clause: str


@dataclass(frozen=True, slots=True)
class Decision:
    pack: str
    request_kind: str
    outcome: Outcome
    decided_at: datetime
    currency: str
    at_stake: Money | None
    refund: Money
    credit: Money
    fee: Money
    charge: Money
    retained: Money
    proposed_refund: Money | None
    line_items: tuple[LineItem, ...]
    effective_at: datetime | None
    access_until: datetime | None
    balance_due_by: datetime | None
    notice_by: datetime | None
    flags: tuple[str, ...]
    reasons: tuple[Reason, ...]
    # The clause the outcome rests on, cited on the actions that carry it out (a refund's
    # metadata, a credit's ledger entry, the reports' totals by clause): the one granting the
    # money or setting the date, or the one the case fails for a denial or a review.
    basis: str | None

    @property
    def failed(self) -> tuple[Reason, ...]:
        """The reasons whose clause the case does not satisfy."""
        return tuple(r for r in self.reasons if not r.holds)


# Hot-path constructors (see ``policy.frozen.builder``): they return exactly what ``Reason(...)``,
# ``LineItem(...)`` and ``Decision(...)`` return, in about half the time.
new_reason: Callable[[str, str, bool, str], Reason] = builder(Reason)
new_line_item: Callable[[str, str, Money, str], LineItem] = builder(LineItem)
new_decision: Callable[..., Decision] = builder(Decision)


def _opt_money(m: Money | None) -> dict[str, Any] | None:
    return money_json(m) if m is not None else None


def _opt_iso(d: datetime | None) -> str | None:
    return iso(d) if d is not None else None


def decision_to_json(decision: Decision) -> dict[str, Any]:
    """A JSON-serialisable dict with a stable key order; datetimes ISO 8601 UTC."""
    d = decision
    return {
        "pack": d.pack,
        "request_kind": d.request_kind,
        "outcome": d.outcome.value,
        "basis": d.basis,
        "decided_at": iso(d.decided_at),
        "currency": d.currency,
        "amounts": {
            "at_stake": _opt_money(d.at_stake),
            "refund": money_json(d.refund),
            "credit": money_json(d.credit),
            "fee": money_json(d.fee),
            "charge": money_json(d.charge),
            "retained": money_json(d.retained),
            "proposed_refund": _opt_money(d.proposed_refund),
        },
        "line_items": [{"kind": li.kind, "label": li.label, "amount": money_json(li.amount),
                        "clause": li.clause} for li in d.line_items],
        "dates": {
            "effective_at": _opt_iso(d.effective_at),
            "access_until": _opt_iso(d.access_until),
            "balance_due_by": _opt_iso(d.balance_due_by),
            "notice_by": _opt_iso(d.notice_by),
        },
        "flags": list(d.flags),
        "reasons": [{"clause": r.clause, "holds": r.holds, "detail": r.detail, "text": r.text}
                    for r in d.reasons],
    }


def explain(decision: Decision) -> str:
    """A readable multi-line account of the decision for people (support, auditors)."""
    d = decision
    lines = [f"Decision: {d.outcome.value} ({d.request_kind}, pack {d.pack}, "
             f"at {iso(d.decided_at)})"]
    if d.basis is not None:
        lines.append(f"Under: {d.basis}")
    amounts = [("at stake", d.at_stake), ("refund", d.refund), ("credit", d.credit),
               ("fee", d.fee), ("charge", d.charge), ("retained", d.retained),
               ("proposed refund", d.proposed_refund)]
    shown = [f"{name} {m}" for name, m in amounts
             if m is not None and (m.amount or name == "refund")]
    lines.append("Amounts: " + ", ".join(shown))
    lines.extend(f"  - {li.label}: {li.amount} [{li.clause}]" for li in d.line_items)
    dates = [("effective", d.effective_at), ("access until", d.access_until),
             ("balance due by", d.balance_due_by), ("notice by", d.notice_by)]
    lines.extend(f"{name.capitalize()}: {iso(v)}" for name, v in dates if v is not None)
    if d.flags:
        lines.append("Flags: " + ", ".join(d.flags))
    lines.append("Reasons:")
    for r in d.reasons:
        mark = "holds" if r.holds else "FAILS"
        lines.append(f"  [{mark}] {r.clause}: {r.detail}")
        lines.append(f"      \u201c{r.text}\u201d")
    return "\n".join(lines)
