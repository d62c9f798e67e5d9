"""The evaluation time: any timezone-aware datetime, decided in UTC; anything else refused."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest

from policy import EvaluationError, case_from_json, evaluate

from .builders import NOW, T0, case, order, pack


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: a datetime with it is still naive."""

    def utcoffset(self, dt):
        return None

    def dst(self, dt):
        return None

    def tzname(self, dt):
        return None


def _decide(now):
    return evaluate(pack("theopenhost"), case_from_json(case("refund", T0, order=order())), now)


def test_a_decision_at_another_offset_is_the_decision_at_the_same_instant_in_utc():
    """The same instant given at +14:00 decides exactly as in UTC, with decided_at in UTC."""
    east = NOW.astimezone(timezone(timedelta(hours=14)))
    decision = _decide(east)
    assert decision == _decide(NOW)
    assert decision.decided_at.tzinfo is UTC and decision.decided_at == NOW


def test_the_machines_time_zone_does_not_change_the_decision(monkeypatch):
    """Converting a non-UTC evaluation time never goes through the machine's local zone."""
    monkeypatch.setenv("TZ", "America/St_Johns")
    time.tzset()
    try:
        decision = _decide(NOW.astimezone(timezone(timedelta(hours=2))))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert decision.decided_at.tzinfo is UTC and decision == _decide(NOW)


@pytest.mark.parametrize("now", [datetime(2025, 6, 1), datetime(2025, 6, 1, tzinfo=NoOffset()),
                                 "2025-06-01T00:00:00Z", NOW.date()],
                         ids=["naive", "tzinfo without offset", "string", "date"])
def test_an_evaluation_time_that_is_not_timezone_aware_is_refused(now):
    """evaluate raises EvaluationError, saying what it needs, for a time that is not aware."""
    with pytest.raises(EvaluationError, match="now must be a timezone-aware datetime"):
        _decide(now)
