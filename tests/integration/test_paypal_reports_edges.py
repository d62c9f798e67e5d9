"""PayPal's reporting reads at their edges (``adapters/paypal_reports.py``), against PayPal's API
faked with `responses` (and a local server that never answers): the times a search names and
reads in UTC whatever the machine's zone, the errors a bad answer gives, the pagination link
followed exactly, and the reads' timeout."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from adapters.base import ErrorCode
from adapters.paypal_reports import PayPalReports, initiated_at
from service.config import PayPalSettings
from service.errors import ProviderError

PAYPAL = "https://api-m.sandbox.paypal.com"
SEARCH = f"{PAYPAL}/v1/reporting/transactions"
EVENTS = f"{PAYPAL}/v1/notifications/webhooks-events"
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


def _reports(api_base: str = PAYPAL, timeout: float = 30.0) -> PayPalReports:
    return PayPalReports(PayPalSettings(client_id="id-reports", client_secret="secret-reports",
                                        api_base=api_base), timeout=timeout)


def _token() -> None:
    responses.post(f"{PAYPAL}/v1/oauth2/token", json={
        "access_token": "A21-reports", "token_type": "Bearer", "expires_in": 3600})



# --- times -------------------------------------------------------------------------------------


@responses.activate
@pytest.mark.usefixtures("new_york")
def test_a_search_names_its_window_in_utc_on_a_machine_in_another_zone():
    _token()
    responses.get(SEARCH, json={"transaction_details": [], "total_pages": 1})
    assert list(_reports().transactions(JAN, FEB)) == []
    query = parse_qs(urlsplit(str(responses.calls[1].request.url)).query)
    assert (query["start_date"], query["end_date"]) == (["2026-01-01T00:00:00Z"],
                                                        ["2026-02-01T00:00:00Z"])


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize(("given", "expected"), [
    ("2026-01-10T12:00:00", datetime(2026, 1, 10, 12, tzinfo=UTC)),  # no offset: UTC
    ("2026-01-10T12:00:00-0700", datetime(2026, 1, 10, 19, tzinfo=UTC)),
    ("2026-01-10T12:00:00+0000", datetime(2026, 1, 10, 12, tzinfo=UTC)),
])
def test_an_initiation_date_is_read_as_a_utc_time(given, expected):
    """A date without an offset is UTC (never the machine's zone), and every date comes back
    in UTC."""
    read = initiated_at({"transaction_initiation_date": given})
    assert read == expected and read.tzinfo is UTC


@pytest.mark.parametrize(("info", "shown"), [
    ({"transaction_id": "T-1"}, "''"),
    ({"transaction_id": "T-1", "transaction_initiation_date": "yesterday"}, "'yesterday'"),
])
def test_an_unreadable_initiation_date_is_an_error_naming_the_transaction(info, shown):
    with pytest.raises(ProviderError) as refused:
        initiated_at(info)
    error = refused.value
    assert (error.provider, error.code, error.retryable) == (
        "paypal", ErrorCode.INVALID_REQUEST, False)
    assert str(error) == (
        f"paypal: transaction T-1 has no readable transaction_initiation_date: {shown}")


# --- the webhook events' pagination ------------------------------------------------------------


@responses.activate
def test_a_next_link_without_a_query_is_followed_exactly():
    _token()
    next_href = f"{EVENTS}/page-2"
    responses.get(EVENTS, json={"events": [{"id": "WH-1"}], "links": [
        {"href": next_href, "rel": "next", "method": "GET"}]})
    responses.get(next_href, json={"events": [{"id": "WH-2"}], "links": []})
    events = list(_reports().webhook_events(JAN, FEB))
    assert [e["id"] for e in events] == ["WH-1", "WH-2"]
    assert responses.calls[2].request.url == next_href


@responses.activate
def test_a_next_link_to_another_host_is_a_paypal_error_naming_both_hosts():
    _token()
    responses.get(EVENTS, json={"events": [], "links": [
        {"href": "https://elsewhere.example/v1/notifications/webhooks-events?page=2",
         "rel": "next"}]})
    with pytest.raises(ProviderError) as refused:
        list(_reports().webhook_events(JAN, FEB))
    error = refused.value
    assert (error.provider, error.code, error.retryable) == (
        "paypal", ErrorCode.INVALID_REQUEST, False)
    assert str(error) == ("paypal: next link points away from api-m.sandbox.paypal.com: "
                          "elsewhere.example")


# --- the timeout -------------------------------------------------------------------------------


def test_paypal_that_does_not_answer_fails_the_read_within_its_timeout(silent_server: str):
    """The reports' timeout reaches the HTTP client: a report waits seconds, never for ever."""
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        list(_reports(silent_server, timeout=0.5).transactions(JAN, FEB))
    assert time.monotonic() - started < 5
    assert raised.value.code == ErrorCode.UNAVAILABLE and raised.value.retryable
