"""Every calendar rule of the four seeds, read on the merchant's own calendar.

Each rule is checked at its local boundary minute in four time zones: UTC; Pacific/Kiritimati
(UTC+14) and Australia/Sydney (UTC+11, then +10 after its daylight-saving change on 6 April
2025), east of Greenwich; America/New_York, whose clocks go forward on 9 March 2025, inside
every window below. The last minute of the last allowed local day is in; the first minute of the
next local day is out. Read in UTC instead, the eastern zones would still accept the first
minute of the next day, and New York would refuse its last evening.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from policy import CaseError, Outcome, case_from_json, case_to_json

from .builders import GIB, case, decide, identity, money, order

ZONES = ["UTC", "Pacific/Kiritimati", "Australia/Sydney", "America/New_York"]
START = date(2025, 3, 3)  # windows from here cross New York's change on 9 March
SYDNEY_START = date(2025, 4, 1)  # and from here Sydney's on 6 April


def local(zone: str, day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone))


def start_day(zone: str) -> date:
    return SYDNEY_START if zone == "Australia/Sydney" else START


def in_zone(data: dict[str, Any], zone: str) -> dict[str, Any]:
    return data | {"time_zone": zone}


# Builders: (zone, start of the window, the claim) -> Case JSON. Datetimes are written with the
# zone's own offset ("+14:00", "-05:00"): a Case may carry any offset.
def vpn_new(zone: str, start: datetime, claim: datetime) -> dict[str, Any]:
    return in_zone(case("refund", claim, order=order(
        product_category="vpn", amount=money(5999), ordered_at=start.isoformat()),
        usage={"bandwidth_bytes": GIB, "sessions": 10}), zone)


def vpn_renewal(zone: str, start: datetime, claim: datetime) -> dict[str, Any]:
    return in_zone(case("refund", claim, order=order(
        type="renewal", auto_renew=True, term_months=6, product_category="vpn",
        amount=money(5999), ordered_at=start.isoformat()),
        usage={"bandwidth_bytes": 0, "sessions": 0, "used_since_renewal": False}), zone)


def hosting_signup(zone: str, start: datetime, claim: datetime) -> dict[str, Any]:
    return in_zone(case("refund", claim, order=order(ordered_at=start.isoformat())), zone)


def service_issue(zone: str, start: datetime, claim: datetime) -> dict[str, Any]:
    return in_zone(case("refund", claim, request_extra={"reason_code": "provider_fault"},
                        order=order(product_category="technical_support",
                                    service_state="completed", service_date=start.isoformat())),
                   zone)


# (seed clause, pack, builder, last allowed day counted from the start, outcome in, outcome out)
WINDOWS: list[tuple[str, str, Callable[..., dict[str, Any]], int, Outcome, Outcome]] = [
    ("002 §new.1 within 7 days of the order date", "cloudbehind", vpn_new, 7,
     Outcome.FULL_REFUND, Outcome.DENY),
    ("002 §renewal.1 within 14 days of the renewal date", "cloudbehind", vpn_renewal, 14,
     Outcome.FULL_REFUND, Outcome.DENY),
    ("003 §1.1f until 16 days have passed since sign-up", "theopenhost", hosting_signup, 15,
     Outcome.FULL_REFUND, Outcome.DENY),
    ("001 §1 within 7 days of the service date", "digitalcare", service_issue, 7,
     Outcome.NEEDS_REVIEW, Outcome.DENY),
]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("rule", "pack_name", "build", "last_day", "inside", "outside"), WINDOWS,
                         ids=[w[0].split(" ", 2)[1] + " " + w[1] for w in WINDOWS])
def test_a_window_of_days_ends_at_local_midnight(rule: str, pack_name: str,
                                                 build: Callable[..., dict[str, Any]],
                                                 last_day: int, inside: Outcome,
                                                 outside: Outcome, zone: str) -> None:
    start = local(zone, start_day(zone), 20, 30)  # late in the local day: UTC may differ
    last = start.date() + timedelta(days=last_day)
    in_time = local(zone, last, 23, 59)
    too_late = local(zone, last + timedelta(days=1), 0, 0)
    kept = decide(pack_name, build(zone, start, in_time), now=in_time)
    lost = decide(pack_name, build(zone, start, too_late), now=too_late)
    assert (kept.outcome, lost.outcome) == (inside, outside), rule
    # The reason says which local dates were compared, and on whose calendar.
    window = [r for r in kept.reasons if "calendar day" in r.detail]
    assert window and f"{start.date()} to {last}, {zone} dates" in window[0].detail


@pytest.mark.parametrize("zone", ZONES)
def test_oneclick_notice_is_before_the_25th_of_the_local_month(zone: str) -> None:
    """000 §1: "prior to the 25th of a calendar month"; a cancellation on time takes effect at
    the start of the next local month, a late one a month later (one more month billed)."""
    def cancel(at: datetime) -> dict[str, Any]:
        return in_zone(case("cancellation", at, request_extra={"identity": identity()},
                            order=order(product_category="managed_services",
                                        amount=money(20000))), zone)
    on_24th = local(zone, date(2025, 3, 24), 23, 59)
    on_25th = local(zone, date(2025, 3, 25), 0, 0)
    kept = decide("oneclick", cancel(on_24th), now=on_24th)
    late = decide("oneclick", cancel(on_25th), now=on_25th)
    assert kept.outcome is Outcome.CANCEL_AT_PERIOD_END and kept.charge.amount == 0
    assert kept.effective_at == local(zone, date(2025, 4, 1), 0, 0).astimezone(UTC)
    assert late.outcome is Outcome.CANCEL_NEXT_PERIOD and late.charge.amount == 20000
    assert late.effective_at == local(zone, date(2025, 5, 1), 0, 0).astimezone(UTC)
    assert f"(2025-03-24, {zone}; must be before day 25)" in " ".join(
        r.detail for r in kept.reasons)


@pytest.mark.parametrize("zone", ZONES)
def test_theopenhost_notice_is_3_local_days_before_a_date_only_due_date(zone: str) -> None:
    """003 §1.2d/e: the invoice due on 10 March (New York's clocks change on the 9th) must be
    cancelled by 7 March, local time; the due date begins at local midnight."""
    def cancel(at: datetime) -> dict[str, Any]:
        data = case("cancellation", at, order=order(next_billing_at="2025-03-10"))
        data["account"] = {"invoices": [{"number": "INV-3", "amount": money(1000),
                                         "due_at": "2025-02-10", "paid": True}]}
        return in_zone(data, zone)
    due = local(zone, date(2025, 3, 10), 0, 0).astimezone(UTC)
    last_minute = local(zone, date(2025, 3, 7), 23, 59)
    next_minute = local(zone, date(2025, 3, 8), 0, 0)
    kept = decide("theopenhost", cancel(last_minute), now=last_minute)
    late = decide("theopenhost", cancel(next_minute), now=next_minute)
    assert (kept.outcome, kept.effective_at) == (Outcome.CANCEL_AT_PERIOD_END, due)
    assert late.outcome is Outcome.CANCEL_NEXT_PERIOD and late.charge.amount == 12000
    assert late.effective_at == local(zone, date(2025, 4, 10), 0, 0).astimezone(UTC)
    assert (f"received 2025-03-07, 3 calendar day(s) before the invoice due date 2025-03-10 "
            f"({zone} dates; needs at least 3)") in " ".join(r.detail for r in kept.reasons)


@pytest.mark.parametrize("zone", ZONES)
def test_a_date_only_due_date_is_overdue_24_hours_after_its_local_midnight(zone: str) -> None:
    """003 §1.6 on a date-only due date: due from local midnight, overdue 24 hours later."""
    def overdue(at: datetime) -> dict[str, Any]:
        data = case("overdue_invoice", at, request_extra={"invoice_number": "INV-9"})
        data["account"] = {"invoices": [{"number": "INV-9", "amount": money(1000),
                                         "due_at": "2025-03-10", "paid": False,
                                         "notified_at": "2025-02-20T00:00:00Z"}]}
        return in_zone(data, zone)
    due = local(zone, date(2025, 3, 10), 0, 0)
    before = due + timedelta(hours=24) - timedelta(minutes=1)
    assert decide("theopenhost", overdue(before), now=before).outcome is Outcome.NO_ACTION
    at = due + timedelta(hours=24)
    assert decide("theopenhost", overdue(at), now=at).outcome is Outcome.LATE_FEE


def test_the_time_zone_round_trips_and_must_be_an_iana_name() -> None:
    data = in_zone(hosting_signup("Australia/Sydney", local("UTC", START, 9, 0),
                                  local("UTC", START, 10, 0)), "Australia/Sydney")
    assert case_to_json(case_from_json(data))["time_zone"] == "Australia/Sydney"
    assert "time_zone" not in case_to_json(case_from_json(data | {"time_zone": "UTC"}))
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "Europe/"):
        with pytest.raises(CaseError) as err:
            case_from_json(data | {"time_zone": bad})
        assert err.value.field == "time_zone"


def test_a_date_only_due_date_must_be_a_real_date() -> None:
    data = case("overdue_invoice", local("UTC", START, 9, 0),
                request_extra={"invoice_number": "INV-9"})
    data["account"] = {"invoices": [{"number": "INV-9", "amount": money(1000),
                                     "due_at": "2025-02-30"}]}
    with pytest.raises(CaseError) as err:
        case_from_json(data)
    assert err.value.field == "account.invoices.0.due_at"
