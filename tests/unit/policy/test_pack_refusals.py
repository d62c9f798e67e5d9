"""Every way a pack can be wrong is refused at load, naming the pack, the dotted key and what is
wrong, so that a merchant's configuration mistake is found before any event is decided; and the
values at the edges of what is allowed load.

Each row changes one value of a shipped pack (parsed TOML) and expects one PackError."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import timedelta
from importlib import resources
from typing import Any

import pytest

from policy import PackError, load_pack
from policy import case as vocabulary
from policy.pack import pack_from_toml, parse_pack
from policy.timing import describe

Change = Callable[[dict[str, Any]], Any]


def raw(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("policy").joinpath(f"packs/{name}.toml")
                         .read_text(encoding="utf-8"))


def refusal(name: str, change: Change) -> PackError:
    data = raw(name)
    change(data)
    with pytest.raises(PackError) as info:
        parse_pack(name, data)
    assert info.value.pack == name
    return info.value


def _parent(data: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The table or array holding the dotted path's last part (``guarantee.0.window.end``),
    and that part (a number for an array)."""
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part) if isinstance(node, list) else part]
    return node, int(last) if isinstance(node, list) else last


def _set(path: str, value: Any) -> Change:
    def change(data: dict[str, Any]) -> None:
        node, key = _parent(data, path)
        node[key] = value
    return change


def _drop(path: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        node, key = _parent(data, path)
        del node[key]
    return change


MONTHS = "must be a non-empty list of whole months (1 or more), got "
ROUNDINGS = ("must be one of ['ROUND_CEILING', 'ROUND_DOWN', 'ROUND_FLOOR', 'ROUND_HALF_EVEN', "
             "'ROUND_HALF_UP', 'ROUND_UP'], got ")

REFUSALS: list[tuple[str, str, Change, str, str]] = [
    # id, pack, change, key, message
    ("a table that is not one", "theopenhost", _set("late_fee", "35%"),
     "late_fee", "must be a table"),
    ("the pack's head not a table", "theopenhost", _set("pack", []), "pack", "must be a table"),
    ("a required key missing", "theopenhost", _drop("late_fee.grace_hours"),
     "late_fee.grace_hours", "is required"),
    ("the money table missing", "oneclick", _drop("money"), "money", "is required"),
    ("the clauses missing", "oneclick", _drop("clauses"), "clauses", "is required"),
    ("the clauses not a table", "oneclick", _set("clauses", ["1", "1a"]), "clauses",
     "must be a table"),
    ("a clause's text not text", "theopenhost", lambda d: d["clauses"].update({"1.1": 11}),
     "clauses.1.1", "must be a str, got 11"),
    ("a number as text", "theopenhost", _set("late_fee.grace_hours", "24"),
     "late_fee.grace_hours", "must be a int, got '24'"),
    ("a flag as a number", "theopenhost", _set("overpayment.require_subscription", 1),
     "overpayment.require_subscription", "must be a bool, got 1"),
    ("a number as a flag", "theopenhost", _set("late_fee.grace_hours", True),
     "late_fee.grace_hours", "must be a int, got True"),
    ("a percentage as a number", "theopenhost", _set("late_fee.percent", 35),
     "late_fee.percent", "must be a str, got 35"),
    ("a negative number", "theopenhost", _set("late_fee.grace_hours", -1),
     "late_fee.grace_hours", "must be at least 0"),
    ("no days in a month", "theopenhost", _set("uptime.days_per_month", 0),
     "uptime.days_per_month", "must be at least 1"),
    ("a choice not offered", "theopenhost", _set("guarantee.0.window.end", "sometimes"),
     "guarantee[0].window.end", "must be one of ['exclusive', 'inclusive'], got 'sometimes'"),
    ("a rounding not offered", "oneclick", _set("money.credit_rounding", "ROUND_05UP"),
     "money.credit_rounding", ROUNDINGS + "'ROUND_05UP'"),
    ("a late charge not offered", "oneclick", _set("cancellation.late_charge", "year"),
     "cancellation.late_charge", "must be one of ['month', 'term'], got 'year'"),
    ("a decimal that is not one", "theopenhost", _set("late_fee.percent", "35%"),
     "late_fee.percent", "must be a decimal string, got '35%'"),
    ("a negative decimal", "theopenhost", _set("overpayment.fee_percent", "-5"),
     "overpayment.fee_percent", "must be a finite, non-negative decimal"),
    ("an infinite decimal", "theopenhost", _set("uptime.cap_percent", "Infinity"),
     "uptime.cap_percent", "must be a finite, non-negative decimal"),
    ("a decimal that is no number", "theopenhost", _set("uptime.guarantee_percent", "NaN"),
     "uptime.guarantee_percent", "must be a finite, non-negative decimal"),
    ("a list with a number in it", "oneclick", _set("refund_review.flags", ["credit_to_card", 1]),
     "refund_review.flags", "must be a list of strings"),
    ("a list that is not one", "oneclick", _set("refund_review.flags", "credit_to_card"),
     "refund_review.flags", "must be a list, got 'credit_to_card'"),
    ("no terms offered", "cloudbehind", _set("guarantee.1.terms_offered.months", []),
     "guarantee[1].terms_offered.months", MONTHS + "[]"),
    ("a term of no months", "cloudbehind", _set("guarantee.1.terms_offered.months", [1, 0]),
     "guarantee[1].terms_offered.months", MONTHS + "[1, 0]"),
    ("a term as a flag", "cloudbehind", _set("guarantee.1.terms_offered.months", [True]),
     "guarantee[1].terms_offered.months", MONTHS + "[True]"),
    ("a term as text", "cloudbehind", _set("guarantee.1.terms_offered.months", ["1"]),
     "guarantee[1].terms_offered.months", MONTHS + "['1']"),
    ("guarantees not an array", "cloudbehind", lambda d: d.update(guarantee=d["guarantee"][0]),
     "guarantee", "must be an array of tables"),
    ("a guarantee not a table", "cloudbehind", _set("guarantee.1", "renewal"),
     "guarantee[1]", "must be a table"),
    ("a clause not in the pack", "theopenhost", _set("overpayment.fee_clause", "1.7z"),
     "overpayment.fee_clause", "names no clause in [clauses]: '1.7z'"),
    ("an optional clause not in the pack", "theopenhost",
     _set("overpayment.credit_note_clause", "9"),
     "overpayment.credit_note_clause", "names no clause in [clauses]: '9'"),
    ("a key the reader does not know", "digitalcare", _set("cancellation.colour", "red"),
     "cancellation.colour", "is not a known key"),
    ("the first of two unknown keys", "digitalcare",
     lambda d: d["cancellation"].update(zeta=1, alpha=2),
     "cancellation.alpha", "is not a known key"),
    ("an unknown key at the top", "digitalcare", _set("refunds", {}), "refunds",
     "is not a known key"),
    ("an unknown key in the head", "digitalcare", _set("pack.currency", "usd"), "pack.currency",
     "is not a known key"),
    ("an unknown key in a sub-table", "digitalcare", _set("cancellation.access.days", 3),
     "cancellation.access.days", "is not a known key"),
    ("an unknown key in a band", "theopenhost", _set("uptime.schedule.0.bands.0.to", "100"),
     "uptime.schedule[0].bands[0].to", "is not a known key"),
    ("an identity group empty", "theopenhost",
     _set("cancellation.identity.require", [["main_domain"], []]),
     "cancellation.identity.require[1]",
     f"must be a non-empty list of identity keys {sorted(vocabulary.IDENTITY_KEYS)}"),
    ("an identity key unknown", "theopenhost",
     _set("cancellation.identity.require", [["main_domain", "shoe_size"]]),
     "cancellation.identity.require[0]",
     f"must be a non-empty list of identity keys {sorted(vocabulary.IDENTITY_KEYS)}"),
    ("an identity group not a list", "theopenhost",
     _set("cancellation.identity.require", ["main_domain"]),
     "cancellation.identity.require[0]",
     f"must be a non-empty list of identity keys {sorted(vocabulary.IDENTITY_KEYS)}"),
    ("a currency in lower case", "theopenhost", _set("late_fee.floor", {"usd": 500,
                                                                       "clause": "1.5"}),
     "late_fee.floor.usd", "is not an upper-case ISO 4217 currency code"),
    ("a currency that is none", "theopenhost", _set("late_fee.floor", {"XYZ": 500,
                                                                      "clause": "1.5"}),
     "late_fee.floor.XYZ", "is not an upper-case ISO 4217 currency code"),
    ("an amount as text", "theopenhost", _set("late_fee.floor", {"USD": "5.00",
                                                                 "clause": "1.5"}),
     "late_fee.floor.USD", "must be a int, got '5.00'"),
    ("a negative amount", "theopenhost", _set("late_fee.collection_fee_cap",
                                              {"USD": -1, "clause": "1.3a"}),
     "late_fee.collection_fee_cap.USD", "must be at least 0"),
    ("a deduction not a table", "theopenhost", _set("guarantee.0.deductions.ssl_certificate", 1000),
     "guarantee[0].deductions.ssl_certificate", "must be a table"),
    ("a reason code unknown", "digitalcare", _set("service_refund.review.bad_weather", "1.a"),
     "service_refund.review.bad_weather", f"is not a reason code {sorted(vocabulary.ReasonCode)}"),
    ("a reason citing no clause", "digitalcare", _set("service_refund.deny.user_error", "7"),
     "service_refund.deny.user_error", "names no clause in [clauses]: '7'"),
    ("a guarantee for no order", "cloudbehind", _set("guarantee.0.order_types", []),
     "guarantee[0].order_types", f"must list some of {sorted(vocabulary.OrderType)}"),
    ("a guarantee for an unknown order", "cloudbehind",
     _set("guarantee.0.order_types", ["new", "upgrade"]),
     "guarantee[0].order_types", f"must list some of {sorted(vocabulary.OrderType)}"),
    ("a guarantee with no window", "cloudbehind", _drop("guarantee.0.window"),
     "guarantee[0].window", "is required"),
    ("a service refund with no window", "digitalcare", _drop("service_refund.window"),
     "service_refund.window", "is required"),
    ("a late fee with no minimum", "theopenhost", _drop("late_fee.floor"),
     "late_fee.floor", "is required"),
    ("an uptime guarantee with no claim window", "theopenhost", _drop("uptime.claim_window"),
     "uptime.claim_window", "is required"),
    ("a window not a table", "digitalcare", _set("service_refund.window", 7),
     "service_refund.window", "must be a table"),
    ("a cancellation with no notice rule", "oneclick", _drop("cancellation.notice"),
     "cancellation.notice", "is required"),
    ("a notice of an unknown kind", "oneclick", _set("cancellation.notice.kind", "weekly"),
     "cancellation.notice.kind",
     "must be one of ['before_billing', 'before_due', 'day_of_month'], got 'weekly'"),
    ("a notice day every month lacks", "oneclick", _set("cancellation.notice.day", 29),
     "cancellation.notice.day", "must be 1..28 so that every month has it"),
    ("a notice day 0", "oneclick", _set("cancellation.notice.day", 0),
     "cancellation.notice.day", "must be at least 1"),
    ("a notice of negative days", "theopenhost", _set("cancellation.notice.days", -1),
     "cancellation.notice.days", "must be at least 0"),
    ("a notice in days for a day of the month", "oneclick",
     _set("cancellation.notice.days", 3),
     "cancellation.notice.days", "is not a known key"),
    ("a notice's late clause missing", "oneclick", _drop("cancellation.notice.late_clause"),
     "cancellation.notice.late_clause", "is required"),
    ("an unknown service state", "digitalcare",
     _set("service_refund.non_refundable_states", ["initiated", "abandoned"]),
     "service_refund.non_refundable_states",
     f"must list some of {sorted(vocabulary.ServiceState)}"),
    ("an unknown exempt reason", "digitalcare", _set("service_refund.window_exempt", ["whim"]),
     "service_refund.window_exempt", f"must list reason codes {sorted(vocabulary.ReasonCode)}"),
    ("no uptime bands", "theopenhost", _set("uptime.schedule.0.bands", []),
     "uptime.schedule[0].bands", "must list bands from the highest 'from' down"),
    ("bands from the lowest up", "theopenhost",
     _set("uptime.schedule.0.bands", [{"from": "95", "credit": "100"},
                                      {"from": "99.5", "credit": "70"}]),
     "uptime.schedule[0].bands", "must list bands from the highest 'from' down"),
    ("two bands from one value", "theopenhost",
     _set("uptime.schedule.1.bands", [{"from": "99.5", "credit": "10"},
                                      {"from": "99.50", "credit": "20"}]),
     "uptime.schedule[1].bands", "must list bands from the highest 'from' down"),
    ("a day rounding not offered", "theopenhost", _set("uptime.schedule.0.day_rounding", "up"),
     "uptime.schedule[0].day_rounding", "must be one of ['ceiling', 'floor'], got 'up'"),
    ("an unknown outage cause", "theopenhost",
     _set("uptime.excluded_causes.causes", ["denial_of_service", "solar_flare"]),
     "uptime.excluded_causes.causes", f"must list some of {sorted(vocabulary.UptimeCause)}"),
    ("an unknown uptime source", "theopenhost",
     _set("uptime.accepted_sources.sources", ["customer_says_so"]),
     "uptime.accepted_sources.sources", f"must list some of {sorted(vocabulary.UptimeSource)}"),
    ("a partial charge not offered", "cloudbehind", _set("guarantee.0.partial_charge", "days"),
     "guarantee[0].partial_charge", "must be one of ['months_started'], got 'days'"),
]


@pytest.mark.parametrize(("pack", "change", "key", "message"),
                         [row[1:] for row in REFUSALS], ids=[row[0] for row in REFUSALS])
def test_a_wrong_pack_is_refused_naming_the_key_and_what_is_wrong(
        pack: str, change: Change, key: str, message: str) -> None:
    error = refusal(pack, change)
    assert (error.key, error.message) == (key, message)


EDGES: list[tuple[str, str, Change, Callable[[Any], Any], Any]] = [
    # id, pack, change, what to read from the Pack, what it reads
    ("a notice on the 28th", "oneclick", _set("cancellation.notice.day", 28),
     lambda p: p.cancellation.notice_value, 28),
    ("a notice on the 1st", "oneclick", _set("cancellation.notice.day", 1),
     lambda p: p.cancellation.notice_value, 1),
    ("no grace at all", "theopenhost", _set("late_fee.grace_hours", 0),
     lambda p: p.late_fee.grace_hours, 0),
    ("a fee of nothing", "theopenhost", _set("overpayment.fee_percent", "0"),
     lambda p: p.overpayment.fee_percent, 0),
    ("a one-day month", "theopenhost", _set("uptime.days_per_month", 1),
     lambda p: p.uptime.days_per_month, 1),
    ("a one-month term", "cloudbehind", _set("guarantee.1.terms_offered.months", [1]),
     lambda p: p.guarantee[1].offered, "[1]"),
    ("every order type", "cloudbehind", _set("guarantee.0.order_types", ["new", "renewal"]),
     lambda p: p.guarantee[0].order_types, frozenset(vocabulary.OrderType)),
    ("every identity key in one group", "theopenhost",
     _set("cancellation.identity.require", [sorted(vocabulary.IDENTITY_KEYS)]),
     lambda p: p.cancellation.identity.groups, (tuple(sorted(vocabulary.IDENTITY_KEYS)),)),
    ("no identity required", "theopenhost", _drop("cancellation.identity.require"),
     lambda p: p.cancellation.identity.groups, ()),
    ("every outage cause", "theopenhost",
     _set("uptime.excluded_causes.causes", sorted(vocabulary.UptimeCause)),
     lambda p: p.uptime.excluded_causes.categories, frozenset(vocabulary.UptimeCause)),
    ("every uptime source", "theopenhost",
     _set("uptime.accepted_sources.sources", sorted(vocabulary.UptimeSource)),
     lambda p: p.uptime.accepted_sources.categories, frozenset(vocabulary.UptimeSource)),
    ("no uptime vocabulary", "theopenhost",
     lambda d: (d["uptime"].pop("excluded_causes"), d["uptime"].pop("accepted_sources")),
     lambda p: (p.uptime.excluded_causes, p.uptime.accepted_sources), (None, None)),
    ("a floor rounding", "theopenhost", _set("uptime.schedule.0.day_rounding", "floor"),
     lambda p: p.uptime.schedules[0].day_rounding, "floor"),
    ("a daily credit below the lowest band", "theopenhost",
     _set("uptime.schedule.0.daily_percent_below_lowest", "5"),
     lambda p: p.uptime.schedules[0].daily_percent, 5),
    ("a term's late charge", "oneclick", _set("cancellation.late_charge", "term"),
     lambda p: p.cancellation.late_charge, "term"),
    ("a deduction in two currencies", "theopenhost",
     _set("guarantee.0.deductions.ssl_certificate.EUR", 900),
     lambda p: dict(p.guarantee[0].deductions["ssl_certificate"].amounts),
     {"USD": 1000, "EUR": 900}),
    ("a notice before billing with no days given", "cloudbehind",
     _drop("cancellation.notice.days"),
     lambda p: (p.cancellation.notice_value, p.cancellation.notice_needs), (0, "any")),
    ("a late cancellation's charge not given", "oneclick", _drop("cancellation.late_charge"),
     lambda p: p.cancellation.late_charge, "month"),
    ("a late fee with no notice rule", "theopenhost", _drop("late_fee.notice"),
     lambda p: (p.late_fee.notice_days, p.late_fee.notice, p.late_fee.notice_text),
     (None, timedelta(0), describe(timedelta(0)))),
    ("overpayments of two providers", "theopenhost", _set("overpayment.providers",
                                                         ["stripe", "paypal"]),
     lambda p: p.overpayment.providers_listed, "paypal, stripe"),
    ("a deduction with no label of its own", "theopenhost",
     _drop("guarantee.0.deductions.ssl_certificate.label"),
     lambda p: p.guarantee[0].deductions["ssl_certificate"].label, "ssl_certificate"),
]


@pytest.mark.parametrize(("pack", "change", "read", "expected"),
                         [row[1:] for row in EDGES], ids=[row[0] for row in EDGES])
def test_a_value_at_the_edge_of_what_is_allowed_loads(
        pack: str, change: Change, read: Callable[[Any], Any], expected: Any) -> None:
    data = raw(pack)
    change(data)
    assert read(parse_pack(pack, data)) == expected


@pytest.mark.parametrize(("name", "message"), [
    ("../theopenhost", "a pack name is letters, digits and underscores"),
    ("theopenhost.toml", "a pack name is letters, digits and underscores"),
    ("théopenhost", "a pack name is letters, digits and underscores"),
    ("", "a pack name is letters, digits and underscores"),
    ("no_such_pack", "no such pack; available: "
                     "['cloudbehind', 'digitalcare', 'oneclick', 'theopenhost']"),
])
def test_a_pack_name_that_names_no_shipped_pack_is_refused(name: str, message: str) -> None:
    with pytest.raises(PackError) as info:
        load_pack(name)
    assert (info.value.pack, info.value.key, info.value.message) == (name, "", message)


def test_a_pack_that_is_not_toml_is_refused_as_a_whole() -> None:
    with pytest.raises(PackError) as info:
        pack_from_toml("broken", "[pack\nseed = '003'\n")
    error = info.value
    assert (error.pack, error.key) == ("broken", "")
    assert error.message.startswith("not valid TOML: ") and "line 1" in error.message
    assert str(error) == f"pack 'broken', (pack): {error.message}"
