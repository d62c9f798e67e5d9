"""Policy packs: one merchant's rules as data (``policy/packs/<name>.toml``), validated at load.

A pack says which rule families apply (a family applies when its table is present) and gives
their parameters: windows, thresholds, percentages, per-currency amount tables, schedules and the
clause each check cites. Everything ``evaluate`` needs is parsed and typed here, once, so that
evaluation does no parsing. The format is described in ``docs/policies.md``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)
from importlib import resources
from itertools import pairwise
from typing import Any

from policy.case import (
    IDENTITY_KEYS,
    OrderType,
    ReasonCode,
    ServiceState,
    UptimeCause,
    UptimeSource,
)
from policy.decision import Reason
from policy.errors import PackError
from policy.money import is_payable
from policy.timing import DAY, HOUR, describe

_ROUNDINGS = frozenset({ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP,
                        ROUND_UP})
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Clause:
    """A clause of the merchant's policy: its citation (``003 §1.1f``) and verbatim text."""

    citation: str
    text: str


@dataclass(frozen=True, slots=True)
class Limit:
    """A number (days, bytes, sessions, ...) and the clause that sets it."""

    value: int
    clause: Clause


@dataclass(frozen=True, slots=True)
class Window:
    """A claim window in calendar days (UTC) after a start date; ``inclusive`` keeps day
    ``days``."""

    days: int
    inclusive: bool
    clause: Clause
    limit: str = field(init=False, repr=False, compare=False)  # "day 7 included", for reasons

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit",
                           f"day {self.days} {'included' if self.inclusive else 'excluded'}")


@dataclass(frozen=True, slots=True)
class IdentityRule:
    """Identity details to give: each group needs at least one of its keys."""

    groups: tuple[tuple[str, ...], ...]
    reason_required: bool
    verified_required: bool
    invoice_in_last: int
    clause: Clause
    procedure_clause: Clause | None
    # The Reason for a request that gives every detail, built once when the pack loads.
    satisfied: Reason = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "satisfied", Reason(self.clause.citation, self.clause.text, True,
                                                     "all required details given"))


@dataclass(frozen=True, slots=True)
class AmountTable:
    """A fixed amount per currency in minor units (the seeds state USD; others must be
    configured)."""

    label: str
    amounts: Mapping[str, int]
    clause: Clause


@dataclass(frozen=True, slots=True)
class CategorySet:
    categories: frozenset[str]
    clause: Clause


@dataclass(frozen=True, slots=True)
class GuaranteeTerms:
    order_types: frozenset[OrderType]
    window: Window
    eligible: CategorySet | None
    excluded: CategorySet | None
    not_suspended: Clause | None
    max_violations: Limit | None
    max_prior_refunds: Limit | None
    identity: IdentityRule | None
    bandwidth_below: Limit | None
    max_sessions: Limit | None
    unused_since_renewal: Clause | None
    excluded_providers: CategorySet | None
    deductions: Mapping[str, AmountTable]
    deductions_note: Clause | None
    partial_over_bandwidth: Limit | None
    partial_charge: str
    terms_offered: tuple[frozenset[int], Clause] | None
    auto_renew: Clause | None
    reminder: Limit | None
    outside_window: Clause | None
    # The clause granting the refund when every check holds, cited as the decision's basis
    # (002 "You are entitled to a full refund on a new order if..."); None: the claim window's.
    grant: Clause | None
    offered: str = field(init=False, repr=False, compare=False)  # "[1, 6, 12]": the terms offered

    def __post_init__(self) -> None:
        offered = "" if self.terms_offered is None else str(sorted(self.terms_offered[0]))
        object.__setattr__(self, "offered", offered)


@dataclass(frozen=True, slots=True)
class CancellationTerms:
    notice_kind: str
    notice_value: int
    notice_clause: Clause
    late_clause: Clause
    late_charge: str
    identity: IdentityRule | None
    outstanding: Clause | None
    immediate: Clause | None
    forfeit: tuple[frozenset[str], str, Clause] | None
    past_due: Limit | None
    access: Clause | None
    auto_renew: Clause | None
    # Derived once from the notice rule for the reasons: the notice as a duration, what it is
    # counted back from, and what it needs in words ("at least 2d 00:00:00" or "any").
    notice: timedelta = field(init=False, repr=False, compare=False)
    notice_what: str = field(init=False, repr=False, compare=False)
    notice_needs: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        notice = self.notice_value * DAY
        object.__setattr__(self, "notice", notice)
        object.__setattr__(self, "notice_what", "invoice due date"
                           if self.notice_kind == "before_due" else "next billing date")
        object.__setattr__(self, "notice_needs",
                           "at least " + describe(notice) if self.notice_value else "any")


@dataclass(frozen=True, slots=True)
class ServiceRefundTerms:
    window: Window
    window_exempt: frozenset[ReasonCode]
    non_refundable_states: frozenset[ServiceState]
    state_clause: Clause
    deny_reasons: Mapping[ReasonCode, Clause]
    review_reasons: Mapping[ReasonCode, Clause]
    before_initiation: str


@dataclass(frozen=True, slots=True)
class RefundReviewTerms:
    clause: Clause
    deny_reasons: Mapping[ReasonCode, Clause]
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LateFeeTerms:
    grace_hours: int
    overdue_clause: Clause
    percent: Decimal
    floor: AmountTable
    notice_days: Limit | None
    support: Clause | None
    collection_cap: AmountTable | None
    # Derived once: the grace period and the notice period as durations, the latter in words.
    grace: timedelta = field(init=False, repr=False, compare=False)
    notice: timedelta = field(init=False, repr=False, compare=False)
    notice_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        notice = (self.notice_days.value if self.notice_days is not None else 0) * DAY
        object.__setattr__(self, "grace", self.grace_hours * HOUR)
        object.__setattr__(self, "notice", notice)
        object.__setattr__(self, "notice_text", describe(notice))


@dataclass(frozen=True, slots=True)
class OverpaymentTerms:
    providers: CategorySet
    require_subscription: bool
    max_age_days: int
    refund_clause: Clause
    credit_clause: Clause
    fee_percent: Decimal
    fee_clause: Clause
    fee_on_credit: bool
    credit_note: Clause | None
    # Derived once for the reasons and the age check: "paypal, stripe", and max_age_days as a
    # duration.
    providers_listed: str = field(init=False, repr=False, compare=False)
    max_age: timedelta = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "providers_listed", ", ".join(sorted(self.providers.categories)))
        object.__setattr__(self, "max_age", self.max_age_days * DAY)


@dataclass(frozen=True, slots=True)
class Band:
    """Uptime at or above ``from_percent`` (and below the next band up) earns ``credit_percent``."""

    from_percent: Decimal
    credit_percent: Decimal


@dataclass(frozen=True, slots=True)
class Schedule:
    categories: frozenset[str]
    bands: tuple[Band, ...]
    clause: Clause
    daily_percent: Decimal | None
    day_rounding: str


@dataclass(frozen=True, slots=True)
class UptimeTerms:
    guarantee_percent: Decimal
    guarantee_clause: Clause
    schedules: tuple[Schedule, ...]
    excluded: CategorySet | None
    cap_percent: Decimal
    cap_clause: Clause
    excluded_causes: CategorySet | None
    accepted_sources: CategorySet | None
    claim_hours: Limit
    identity: IdentityRule | None
    days_per_month: int
    credit_note: Clause | None
    claim_window: timedelta = field(init=False, repr=False, compare=False)  # claim_hours as time

    def __post_init__(self) -> None:
        object.__setattr__(self, "claim_window", self.claim_hours.value * HOUR)


@dataclass(frozen=True, slots=True)
class Pack:
    name: str
    seed: str
    merchant: str
    clauses: Mapping[str, Clause]
    fee_rounding: str
    credit_rounding: str
    guarantee: tuple[GuaranteeTerms, ...]
    non_refundable: tuple[CategorySet, ...]
    service_refund: ServiceRefundTerms | None
    refund_review: RefundReviewTerms | None
    cancellation: CancellationTerms | None
    late_fee: LateFeeTerms | None
    overpayment: OverpaymentTerms | None
    uptime: UptimeTerms | None

    @property
    def families(self) -> tuple[str, ...]:
        """The rule families this pack configures."""
        present = {"guarantee": bool(self.guarantee), "non_refundable": bool(self.non_refundable),
                   "service_refund": self.service_refund is not None,
                   "refund_review": self.refund_review is not None,
                   "cancellation": self.cancellation is not None,
                   "late_fee": self.late_fee is not None,
                   "overpayment": self.overpayment is not None, "uptime": self.uptime is not None}
        return tuple(k for k, v in present.items() if v)


class _Table:
    """A TOML table being read: typed getters that name the key, and a check for unknown keys."""

    def __init__(self, ctx: _Context, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ctx.error(path, "must be a table")
        self.ctx, self.data, self.path, self.seen = ctx, data, path, set[str]()

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self.seen.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.ctx.error(self.key(key), "is required")
        return default

    def typed(self, key: str, kind: type, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is not default and (not isinstance(value, kind)
                                     or isinstance(value, bool) != (kind is bool)):
            raise self.ctx.error(self.key(key), f"must be a {kind.__name__}, got {value!r}")
        return value

    def integer(self, key: str, default: Any = _MISSING, minimum: int = 0) -> int:
        value: int = self.typed(key, int, default)
        if value < minimum:
            raise self.ctx.error(self.key(key), f"must be at least {minimum}")
        return value

    def text(self, key: str, default: Any = _MISSING, choices: frozenset[str] | None = None) -> str:
        value: str = self.typed(key, str, default)
        if choices is not None and value not in choices:
            raise self.ctx.error(self.key(key), f"must be one of {sorted(choices)}, got {value!r}")
        return value

    def flag(self, key: str, default: Any = _MISSING) -> bool:
        value: bool = self.typed(key, bool, default)
        return value

    def decimal(self, key: str, default: Any = _MISSING) -> Decimal:
        value = self.typed(key, str, default)
        if value is None:
            return default  # type: ignore[no-any-return]  # the caller's own default, as given
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise self.ctx.error(self.key(key),
                                 f"must be a decimal string, got {value!r}") from None
        if not result.is_finite() or result < 0:
            raise self.ctx.error(self.key(key), "must be a finite, non-negative decimal")
        return result

    def strs(self, key: str, default: Any = _MISSING) -> tuple[str, ...]:
        value = self.typed(key, list, default)
        if not all(isinstance(v, str) for v in value):
            raise self.ctx.error(self.key(key), "must be a list of strings")
        return tuple(value)

    def months(self, key: str) -> frozenset[int]:
        """A non-empty list of term lengths in whole months, each at least 1."""
        value = self.typed(key, list)
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                for v in value):
            raise self.ctx.error(self.key(key), f"must be a non-empty list of whole months "
                                                f"(1 or more), got {value!r}")
        return frozenset(value)

    def sub(self, key: str) -> _Table | None:
        value = self.raw(key, None)
        return None if value is None else _Table(self.ctx, value, self.key(key))

    def table(self, key: str) -> _Table:
        """A sub-table the pack must have."""
        return _Table(self.ctx, self.raw(key), self.key(key))

    def subs(self, key: str) -> list[_Table]:
        value = self.raw(key, [])
        if not isinstance(value, list):
            raise self.ctx.error(self.key(key), "must be an array of tables")
        return [_Table(self.ctx, v, f"{self.key(key)}[{i}]") for i, v in enumerate(value)]

    def clause(self, key: str = "clause") -> Clause:
        ref = self.text(key)
        if ref not in self.ctx.clauses:
            raise self.ctx.error(self.key(key), f"names no clause in [clauses]: {ref!r}")
        return self.ctx.clauses[ref]

    def opt_clause(self, key: str) -> Clause | None:
        return self.clause(key) if key in self.data else None

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise self.ctx.error(self.key(extra[0]), "is not a known key")


class _Context:
    def __init__(self, name: str) -> None:
        self.name = name
        self.clauses: dict[str, Clause] = {}

    def error(self, key: str, message: str) -> PackError:
        return PackError(self.name, key, message)


def _closed(table: _Table | None, read: Any) -> Any:
    """Read a sub-table with ``read`` and reject keys it did not use; None for an optional
    one the pack leaves out."""
    if table is None:
        return None
    result = read(table)
    table.done()
    return result


def _limit(key: str) -> Any:
    return lambda t: Limit(t.integer(key), t.clause())


def _category_set(t: _Table, key: str = "categories") -> CategorySet:
    return CategorySet(frozenset(t.strs(key)), t.clause())


def _window(t: _Table) -> Window:
    end = t.text("end", choices=frozenset({"inclusive", "exclusive"}))
    return Window(t.integer("days"), end == "inclusive", t.clause())


def _identity(t: _Table) -> IdentityRule:
    groups = t.typed("require", list, [])
    for i, group in enumerate(groups):
        if not isinstance(group, list) or not group or not set(group) <= IDENTITY_KEYS:
            raise t.ctx.error(f"{t.key('require')}[{i}]",
                              f"must be a non-empty list of identity keys {sorted(IDENTITY_KEYS)}")
    return IdentityRule(tuple(tuple(g) for g in groups), t.flag("reason_required", False),
                        t.flag("verified_required", False), t.integer("invoice_in_last", 0),
                        t.clause(), t.opt_clause("procedure_clause"))


def _amounts(t: _Table, label: str) -> AmountTable:
    amounts: dict[str, int] = {}
    for code in sorted(set(t.data) - {"clause", "label"}):
        if not is_payable(code):  # ISO 4217 codes are upper case: `usd` is none
            raise t.ctx.error(t.key(code), "is not an upper-case ISO 4217 currency code")
        amounts[code] = t.integer(code)
    return AmountTable(t.text("label", label), amounts, t.clause())


def _reason_map(t: _Table | None) -> dict[ReasonCode, Clause]:
    if t is None:
        return {}
    out: dict[ReasonCode, Clause] = {}
    for code in list(t.data):
        if code not in set(ReasonCode):
            raise t.ctx.error(t.key(code), f"is not a reason code {sorted(ReasonCode)}")
        out[ReasonCode(code)] = t.clause(code)
    t.done()
    return out


def _guarantee(t: _Table) -> GuaranteeTerms:
    order_types = t.strs("order_types")
    if not order_types or not set(order_types) <= set(OrderType):
        raise t.ctx.error(t.key("order_types"), f"must list some of {sorted(OrderType)}")
    deductions = {}
    deduction_table = t.sub("deductions")
    if deduction_table is not None:
        for addon in deduction_table.data:
            deductions[addon] = _closed(_Table(t.ctx, deduction_table.raw(addon),
                                               deduction_table.key(addon)),
                                        lambda d, a=addon: _amounts(d, a))
    terms = _closed(t.sub("terms_offered"),
                    lambda s: (s.months("months"), s.clause()))
    return GuaranteeTerms(
        order_types=frozenset(OrderType(o) for o in order_types),
        window=_closed(t.table("window"), _window),
        eligible=_closed(t.sub("eligible"), _category_set),
        excluded=_closed(t.sub("excluded"), _category_set),
        not_suspended=_closed(t.sub("not_suspended"), lambda s: s.clause()),
        max_violations=_closed(t.sub("violations"), _limit("max")),
        max_prior_refunds=_closed(t.sub("prior_refunds"), _limit("max")),
        identity=_closed(t.sub("identity"), _identity),
        bandwidth_below=_closed(t.sub("bandwidth"), _limit("below_bytes")),
        max_sessions=_closed(t.sub("sessions"), _limit("max")),
        unused_since_renewal=_closed(t.sub("unused_since_renewal"), lambda s: s.clause()),
        excluded_providers=_closed(t.sub("excluded_providers"),
                                   lambda s: _category_set(s, "providers")),
        deductions=deductions,
        deductions_note=t.opt_clause("deductions_clause"),
        partial_over_bandwidth=_closed(t.sub("partial_over_bandwidth"), _limit("min_term_months")),
        partial_charge=t.text("partial_charge", "months_started",
                             frozenset({"months_started"})),
        terms_offered=terms,
        auto_renew=_closed(t.sub("auto_renew"), lambda s: s.clause()),
        reminder=_closed(t.sub("reminder"), _limit("days_before")),
        outside_window=t.opt_clause("outside_window_clause"),
        grant=t.opt_clause("grant_clause"),
    )


def _cancellation(t: _Table) -> CancellationTerms:
    notice = t.table("notice")
    kind = notice.text("kind", choices=frozenset({"day_of_month", "before_due", "before_billing"}))
    value = (notice.integer("day", minimum=1) if kind == "day_of_month"
             else notice.integer("days", 0))
    if kind == "day_of_month" and value > 28:
        raise t.ctx.error(notice.key("day"), "must be 1..28 so that every month has it")
    notice_clause, late_clause = notice.clause(), notice.clause("late_clause")
    notice.done()
    forfeit = _closed(t.sub("forfeit"), lambda s: (frozenset(s.strs("addons")), s.text("flag"),
                                                   s.clause()))
    return CancellationTerms(
        notice_kind=kind, notice_value=value, notice_clause=notice_clause, late_clause=late_clause,
        late_charge=t.text("late_charge", "month", frozenset({"month", "term"})),
        identity=_closed(t.sub("identity"), _identity),
        outstanding=_closed(t.sub("outstanding"), lambda s: s.clause()),
        immediate=_closed(t.sub("immediate"), lambda s: s.clause()),
        forfeit=forfeit,
        past_due=_closed(t.sub("past_due"), _limit("grace_days")),
        access=_closed(t.sub("access"), lambda s: s.clause()),
        auto_renew=_closed(t.sub("auto_renew"), lambda s: s.clause()),
    )


def _service_refund(t: _Table) -> ServiceRefundTerms:
    states = t.strs("non_refundable_states")
    if not set(states) <= set(ServiceState):
        raise t.ctx.error(t.key("non_refundable_states"),
                          f"must list some of {sorted(ServiceState)}")
    exempt = t.strs("window_exempt", [])
    if not set(exempt) <= set(ReasonCode):
        raise t.ctx.error(t.key("window_exempt"), f"must list reason codes {sorted(ReasonCode)}")
    return ServiceRefundTerms(
        window=_closed(t.table("window"), _window),
        window_exempt=frozenset(ReasonCode(r) for r in exempt),
        non_refundable_states=frozenset(ServiceState(s) for s in states),
        state_clause=t.clause("state_clause"),
        deny_reasons=_reason_map(t.sub("deny")),
        review_reasons=_reason_map(t.sub("review")),
        before_initiation=t.text("before_initiation", choices=frozenset({"full_refund",
                                                                         "needs_review"})),
    )


def _refund_review(t: _Table) -> RefundReviewTerms:
    return RefundReviewTerms(t.clause(), _reason_map(t.sub("deny")), t.strs("flags", []))


def _late_fee(t: _Table) -> LateFeeTerms:
    return LateFeeTerms(
        grace_hours=t.integer("grace_hours"), overdue_clause=t.clause("overdue_clause"),
        percent=t.decimal("percent"),
        floor=_closed(t.table("floor"), lambda s: _amounts(s, "late fee minimum")),
        notice_days=_closed(t.sub("notice"), _limit("days_before_due")),
        support=_closed(t.sub("support_withheld"), lambda s: s.clause()),
        collection_cap=_closed(t.sub("collection_fee_cap"),
                               lambda s: _amounts(s, "debt collection fee cap")),
    )


def _overpayment(t: _Table) -> OverpaymentTerms:
    return OverpaymentTerms(
        providers=_category_set(t, "providers"),
        require_subscription=t.flag("require_subscription"),
        max_age_days=t.integer("max_age_days"), refund_clause=t.clause("refund_clause"),
        credit_clause=t.clause("credit_clause"), fee_percent=t.decimal("fee_percent"),
        fee_clause=t.clause("fee_clause"), fee_on_credit=t.flag("fee_on_credit"),
        credit_note=t.opt_clause("credit_note_clause"),
    )


def _schedule(t: _Table) -> Schedule:
    bands = []
    for b in t.subs("bands"):
        bands.append(Band(b.decimal("from"), b.decimal("credit")))
        b.done()
    if not bands or any(x.from_percent <= y.from_percent
                        for x, y in pairwise(bands)):
        raise t.ctx.error(t.key("bands"), "must list bands from the highest 'from' down")
    rounding = t.text("day_rounding", "ceiling", frozenset({"ceiling", "floor"}))
    daily = t.decimal("daily_percent_below_lowest", None)
    return Schedule(frozenset(t.strs("categories")), tuple(bands), t.clause(), daily, rounding)


def _uptime(t: _Table) -> UptimeTerms:
    schedules = []
    for s in t.subs("schedule"):
        schedules.append(_schedule(s))
        s.done()
    return UptimeTerms(
        guarantee_percent=t.decimal("guarantee_percent"),
        guarantee_clause=t.clause("guarantee_clause"), schedules=tuple(schedules),
        excluded=_closed(t.sub("excluded"), _category_set),
        cap_percent=t.decimal("cap_percent"), cap_clause=t.clause("cap_clause"),
        excluded_causes=_closed(t.sub("excluded_causes"), lambda s: _category_set(s, "causes")),
        accepted_sources=_closed(t.sub("accepted_sources"), lambda s: _category_set(s, "sources")),
        claim_hours=_closed(t.table("claim_window"), _limit("hours")),
        identity=_closed(t.sub("identity"), _identity),
        days_per_month=t.integer("days_per_month", minimum=1),
        credit_note=t.opt_clause("credit_note_clause"),
    )


def _check_vocabulary(ctx: _Context, uptime: UptimeTerms | None) -> None:
    if uptime is None:
        return
    if uptime.excluded_causes and not uptime.excluded_causes.categories <= set(UptimeCause):
        raise ctx.error("uptime.excluded_causes.causes", f"must list some of {sorted(UptimeCause)}")
    if uptime.accepted_sources and not uptime.accepted_sources.categories <= set(UptimeSource):
        raise ctx.error("uptime.accepted_sources.sources",
                        f"must list some of {sorted(UptimeSource)}")


def parse_pack(name: str, data: Mapping[str, Any]) -> Pack:
    """Build a Pack from parsed TOML ``data``; raise ``PackError`` naming the offending key."""
    ctx = _Context(name)
    root = _Table(ctx, data, "")
    head = _Table(ctx, root.raw("pack"), "pack")
    seed, merchant = head.text("seed"), head.text("merchant")
    rounding = _Table(ctx, root.raw("money"), "money")
    fee_rounding = rounding.text("fee_rounding", choices=_ROUNDINGS)
    credit_rounding = rounding.text("credit_rounding", choices=_ROUNDINGS)
    head.done()
    rounding.done()
    clauses = _Table(ctx, root.raw("clauses"), "clauses")
    for ref in clauses.data:
        ctx.clauses[ref] = Clause(f"{seed} §{ref}", clauses.text(ref))
    pack = Pack(
        name=name, seed=seed, merchant=merchant, clauses=dict(ctx.clauses),
        fee_rounding=fee_rounding, credit_rounding=credit_rounding,
        guarantee=tuple(_closed(g, _guarantee) for g in root.subs("guarantee")),
        non_refundable=tuple(_closed(n, _category_set) for n in root.subs("non_refundable")),
        service_refund=_closed(root.sub("service_refund"), _service_refund),
        refund_review=_closed(root.sub("refund_review"), _refund_review),
        cancellation=_closed(root.sub("cancellation"), _cancellation),
        late_fee=_closed(root.sub("late_fee"), _late_fee),
        overpayment=_closed(root.sub("overpayment"), _overpayment),
        uptime=_closed(root.sub("uptime"), _uptime),
    )
    _check_vocabulary(ctx, pack.uptime)
    root.done()
    return pack


def _packs_dir() -> Any:
    return resources.files("policy").joinpath("packs")


def available_packs() -> list[str]:
    """The names of the packs shipped in ``policy/packs`` (sorted)."""
    return sorted(p.name[:-5] for p in _packs_dir().iterdir() if p.name.endswith(".toml"))


def load_pack(name: str) -> Pack:
    """Read and validate ``policy/packs/{name}.toml``; raise ``PackError`` naming the key."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise PackError(name, "", "a pack name is letters, digits and underscores")
    source = _packs_dir().joinpath(f"{name}.toml")
    if not source.is_file():
        raise PackError(name, "", f"no such pack; available: {available_packs()}")
    return pack_from_toml(name, source.read_text(encoding="utf-8"))


def pack_from_toml(name: str, text: str) -> Pack:
    """Parse and validate a pack's TOML ``text``; raise ``PackError`` naming the key, or the
    pack as a whole when the text is not TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PackError(name, "", f"not valid TOML: {exc}") from exc
    return parse_pack(name, data)
