"""PAYPAL-TRANSMISSION-TIME tolerance: a captured delivery cannot be replayed later.

The transmission time is signed, so a replay carries the time of its capture. The verifier refuses
one more than ``tolerance`` seconds old (``stale_transmission``) or ahead (``future_transmission``),
and one that is not a date-time (``malformed_header``), before any certificate is fetched. The
clock is injected and read once per delivery, for the tolerance and the certificate alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import responses

from gateway.signatures.paypal import (
    DEFAULT_TOLERANCE,
    PayPalVerifier,
    check_transmission_time,
    transmission_time,
)
from service.config import load_settings
from service.errors import ConfigError, VerificationError
from tests.support.paypal import REFUND_EVENT, WEBHOOK_ID, sent_at, serve_cert, verifier_at

# A fixed "now" inside the shared dev certificate's validity, in whole seconds like the header.
NOW = datetime.now(UTC).replace(microsecond=0)
TOLERANCE = 300


@pytest.fixture
def no_network():
    """Any request is refused and recorded: ``len(calls) == 0`` proves nothing was fetched."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def refusal(verifier: PayPalVerifier, headers: dict[str, str]) -> str:
    with pytest.raises(VerificationError) as caught:
        verifier.verify(headers, REFUND_EVENT, WEBHOOK_ID)
    return caught.value.code


# --- The boundary -------------------------------------------------------------------------------


def test_the_default_tolerance_is_stripes_300_seconds():
    assert DEFAULT_TOLERANCE == 300
    assert load_settings({}).paypal_tolerance == 300


def test_exactly_the_tolerance_old_is_accepted(signer, rsps):
    serve_cert(rsps, signer)
    verifier_at(signer, NOW).verify(sent_at(signer, NOW - timedelta(seconds=TOLERANCE)),
                               REFUND_EVENT, WEBHOOK_ID)


def test_one_second_older_than_the_tolerance_is_refused_before_any_fetch(signer, no_network):
    headers = sent_at(signer, NOW - timedelta(seconds=TOLERANCE + 1))
    assert refusal(verifier_at(signer, NOW), headers) == "stale_transmission"
    assert len(no_network.calls) == 0


def test_a_delivery_captured_a_day_ago_is_refused(signer, no_network):
    """The replay this closes: a genuine, validly signed delivery, sent again much later."""
    headers = sent_at(signer, NOW - timedelta(days=1))
    assert refusal(verifier_at(signer, NOW), headers) == "stale_transmission"
    assert len(no_network.calls) == 0


def test_exactly_the_tolerance_ahead_is_accepted(signer, rsps):
    """A sender's clock a little ahead of ours is tolerated, as far as the tolerance."""
    serve_cert(rsps, signer)
    verifier_at(signer, NOW).verify(sent_at(signer, NOW + timedelta(seconds=TOLERANCE)),
                               REFUND_EVENT, WEBHOOK_ID)


def test_one_second_further_ahead_than_the_tolerance_is_refused(signer, no_network):
    headers = sent_at(signer, NOW + timedelta(seconds=TOLERANCE + 1))
    assert refusal(verifier_at(signer, NOW), headers) == "future_transmission"
    assert len(no_network.calls) == 0


def test_a_time_far_in_the_future_is_refused(signer, no_network):
    """A time signed far ahead would otherwise stay replayable until then."""
    headers = sent_at(signer, NOW + timedelta(days=365))
    assert refusal(verifier_at(signer, NOW), headers) == "future_transmission"
    assert len(no_network.calls) == 0


@pytest.mark.parametrize("tolerance", [1, 60, 3600])
def test_the_configured_tolerance_is_the_boundary(signer, tolerance):
    """Whatever the tolerance, its own value passes the time check and one second more fails."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        serve_cert(mock, signer)
        verifier = verifier_at(signer, NOW, tolerance=tolerance)
        for sign in (-1, 1):
            verifier.verify(sent_at(signer, NOW + sign * timedelta(seconds=tolerance)),
                            REFUND_EVENT, WEBHOOK_ID)
        assert refusal(verifier, sent_at(signer, NOW - timedelta(seconds=tolerance + 1))) == (
            "stale_transmission")
        assert refusal(verifier, sent_at(signer, NOW + timedelta(seconds=tolerance + 1))) == (
            "future_transmission")


def test_the_default_clock_is_utc_whatever_the_machines_zone(signer, rsps, monkeypatch):
    """A delivery sent now is accepted by a verifier on a machine in New York: a local,
    zone-less clock read as UTC would put it hours in the future."""
    import time

    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    serve_cert(rsps, signer)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        PayPalVerifier(signer.ca_pem).verify(sent_at(signer, datetime.now(UTC)), REFUND_EVENT,
                                             WEBHOOK_ID)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_negative_tolerance_is_a_programming_error(signer):
    with pytest.raises(ValueError, match="^tolerance must not be negative, got -1$"):
        PayPalVerifier(signer.ca_pem, tolerance=-1)


def test_a_tolerance_of_zero_accepts_only_the_current_second(signer, rsps):
    serve_cert(rsps, signer)
    verifier_at(signer, NOW, tolerance=0).verify(sent_at(signer, NOW), REFUND_EVENT, WEBHOOK_ID)
    headers = sent_at(signer, NOW - timedelta(seconds=1))
    assert refusal(verifier_at(signer, NOW, tolerance=0), headers) == "stale_transmission"


# --- Malformed times ----------------------------------------------------------------------------

MALFORMED = {
    "words": "yesterday",
    "epoch seconds": "1490904245",
    "no zone": "2017-03-30T20:04:05",
    "space for T": "2017-03-30 20:04:05Z",
    "date only": "2017-03-30",
    "no seconds": "2017-03-30T20:04Z",
    "RFC 2822": "Thu, 30 Mar 2017 20:04:05 GMT",
    "month 13": "2017-13-30T20:04:05Z",
    "30 February": "2017-02-30T20:04:05Z",
    "hour 24": "2017-03-30T24:00:00Z",
    "leap second": "2016-12-31T23:59:60Z",
    "offset hour 24": "2017-03-30T20:04:05+24:00",
    "offset minute 60": "2017-03-30T20:04:05+05:60",
    "offset without colon": "2017-03-30T20:04:05+0200",
    "two zones": "2017-03-30T20:04:05Z+00:00",
    "year 0": "0000-01-01T00:00:00Z",
    "before year 1 in UTC": "0001-01-01T00:00:00+01:00",
    "after year 9999 in UTC": "9999-12-31T23:59:59-01:00",
    "fraction too long": "2017-03-30T20:04:05.1234567890Z",
    "empty fraction": "2017-03-30T20:04:05.Z",
    "leading space": " 2017-03-30T20:04:05Z",
    "trailing text": "2017-03-30T20:04:05Z; replay",
    "fullwidth digits": "\uff12\uff10\uff11\uff17-03-30T20:04:05Z",
    "arabic-indic digits": "\u0662\u0660\u0661\u0667-03-30T20:04:05Z",
    "huge": "9" * 5000,
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_transmission_time_that_is_not_a_date_time_is_refused_before_any_fetch(
        signer, no_network, value):
    headers = sent_at(signer, NOW) | {"PAYPAL-TRANSMISSION-TIME": value}
    with pytest.raises(VerificationError) as caught:
        verifier_at(signer, NOW).verify(headers, REFUND_EVENT, WEBHOOK_ID)
    assert caught.value.code == "malformed_header"
    assert "PAYPAL-TRANSMISSION-TIME" in caught.value.message
    assert len(caught.value.message) < 200  # a huge header is not echoed whole
    assert len(no_network.calls) == 0


def test_a_malformed_transmission_time_is_echoed_to_its_first_64_characters():
    with pytest.raises(VerificationError) as caught:
        transmission_time("9" * 5000)
    assert caught.value.message == (f"PAYPAL-TRANSMISSION-TIME {'9' * 64!r} is not a date-time "
                                    "like 2017-03-30T20:04:05Z")


def test_a_missing_transmission_time_is_still_a_missing_header(signer, no_network):
    headers = sent_at(signer, NOW)
    del headers["PAYPAL-TRANSMISSION-TIME"]
    assert refusal(verifier_at(signer, NOW), headers) == "missing_header"


@pytest.mark.parametrize(("value", "instant"), [
    ("2017-03-30T20:04:05Z", datetime(2017, 3, 30, 20, 4, 5, tzinfo=UTC)),
    ("2017-03-30T22:04:05+02:00", datetime(2017, 3, 30, 20, 4, 5, tzinfo=UTC)),
    ("2017-03-30T15:34:05-04:30", datetime(2017, 3, 30, 20, 4, 5, tzinfo=UTC)),
    ("2017-03-30T20:04:05.5Z", datetime(2017, 3, 30, 20, 4, 5, 500000, tzinfo=UTC)),
    ("2017-03-30T20:04:05.123456789Z",
     datetime(2017, 3, 30, 20, 4, 5, 123456, tzinfo=UTC)),
])
def test_rfc_3339_times_with_an_offset_or_a_fraction_are_read(value, instant):
    """PayPal sends ``...Z``; any RFC 3339 offset names the same instant."""
    assert transmission_time(value) == instant


@pytest.mark.parametrize(("value", "instant"), [
    ("2017-03-30T23:04:05+23:00", datetime(2017, 3, 30, 0, 4, 5, tzinfo=UTC)),
    ("2017-03-30T20:04:05-23:59", datetime(2017, 3, 31, 20, 3, 5, tzinfo=UTC)),
    ("2017-03-30T20:04:05+05:59", datetime(2017, 3, 30, 14, 5, 5, tzinfo=UTC)),
], ids=["+23:00", "-23:59", "+05:59"])
def test_the_largest_offsets_are_read(value, instant):
    """An offset's hours run to 23 and its minutes to 59 (24 and 60 are malformed)."""
    assert transmission_time(value) == instant


@pytest.mark.parametrize(("sent", "code", "why"), [
    (NOW - timedelta(seconds=TOLERANCE + 1), "stale_transmission", "old"),
    (NOW + timedelta(seconds=TOLERANCE + 1), "future_transmission", "ahead"),
], ids=["old", "ahead"])
def test_a_time_outside_the_tolerance_says_which_side_and_by_how_much(sent, code, why):
    value = sent.strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(VerificationError) as caught:
        check_transmission_time(value, NOW, TOLERANCE)
    assert (caught.value.code, caught.value.message) == (
        code, f"PAYPAL-TRANSMISSION-TIME {value} is more than {TOLERANCE} seconds {why}")


def test_an_offset_counts_towards_the_age():
    """12:00+02:00 is 10:00 UTC: two hours old at 12:00 UTC, whatever the digits say."""
    noon = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(VerificationError) as caught:
        check_transmission_time("2024-06-01T12:00:00+02:00", noon, TOLERANCE)
    assert caught.value.code == "stale_transmission"
    check_transmission_time("2024-06-01T14:00:00+02:00", noon, TOLERANCE)


# --- The order of the checks and the clock ------------------------------------------------------


def test_the_time_is_checked_before_the_certificate_url(signer, no_network):
    """A stale delivery naming a hostile URL is refused for its time, and nothing is fetched."""
    headers = sent_at(signer, NOW - timedelta(hours=1)) | {
        "PAYPAL-CERT-URL": "https://evil.example/v1/notifications/certs/CERT-1"}
    assert refusal(verifier_at(signer, NOW), headers) == "stale_transmission"
    assert len(no_network.calls) == 0


def test_the_clock_is_read_once_per_delivery(signer, rsps):
    """One reading decides both the tolerance and the certificate's validity."""
    serve_cert(rsps, signer)
    readings: list[datetime] = []

    def clock() -> datetime:
        readings.append(NOW)
        return NOW

    verifier = PayPalVerifier(signer.ca_pem, clock=clock)
    verifier.verify(sent_at(signer, NOW), REFUND_EVENT, WEBHOOK_ID)
    verifier.verify(sent_at(signer, NOW), REFUND_EVENT, WEBHOOK_ID)
    assert len(readings) == 2


def test_a_naive_clock_is_taken_as_utc(signer, rsps):
    serve_cert(rsps, signer)
    verifier = PayPalVerifier(signer.ca_pem, clock=lambda: NOW.replace(tzinfo=None))
    verifier.verify(sent_at(signer, NOW - timedelta(seconds=TOLERANCE)), REFUND_EVENT, WEBHOOK_ID)


# --- The setting --------------------------------------------------------------------------------


def test_gateway_paypal_tolerance_sets_the_tolerance():
    assert load_settings({"GATEWAY_PAYPAL_TOLERANCE": "60"}).paypal_tolerance == 60


@pytest.mark.parametrize("raw", ["0", "-5", "3601", "soon", "1.5"])
def test_a_bad_gateway_paypal_tolerance_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="GATEWAY_PAYPAL_TOLERANCE"):
        load_settings({"GATEWAY_PAYPAL_TOLERANCE": raw})
