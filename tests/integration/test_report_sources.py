"""Provider records for reconciliation (APIs and exports), and backfilling missed events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from sqlalchemy import func, select

from adapters.paypal_reports import windows
from ledger.models import InboxEvent, InboxStatus
from reports.backfill import backfill, missed_events
from reports.records import ProviderRecord, RecordKind
from reports.sources import (
    ExportError,
    detect_export,
    paypal_activity_csv,
    paypal_transactions,
    stripe_balance_csv,
    stripe_balance_transactions,
)
from service.bootstrap import Container
from service.config import STRIPE_API_VERSION, Merchant, Settings
from service.errors import ProviderError
from tests.support import stripe as stripe_sig
from tests.support.delivery import deliver, settle
from tests.support.paypal import shared_signer
from workers.dispatch import list_key, partition_of

FIXTURES = Path(__file__).parent.parent / "fixtures"
EXPORTS = FIXTURES / "exports"
MERCHANT = "theopenhost"
STRIPE = "https://api.stripe.com"
PAYPAL = "https://api-m.sandbox.paypal.com"
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


def _at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def _merchant(settings: Settings) -> Merchant:
    merchant = settings.merchant(MERCHANT)
    assert merchant is not None
    return merchant


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def _query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def _stripe_page(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": has_more, "data": data}


def _txn(txn_id: str, txn_type: str, amount: int, fee: int, source: Any, created: datetime,
         *, currency: str = "usd", status: str = "available", category: str = "charge"
         ) -> dict[str, Any]:
    return {"id": txn_id, "object": "balance_transaction", "amount": amount,
            "available_on": _ts(created) + 2 * 86400, "created": _ts(created),
            "currency": currency, "description": None, "exchange_rate": None, "fee": fee,
            "fee_details": ([{"amount": fee, "application": None, "currency": currency,
                              "description": "Stripe processing fees", "type": "stripe_fee"}]
                            if fee else []),
            "net": amount - fee, "reporting_category": category, "source": source,
            "status": status, "type": txn_type}


STRIPE_PAGE_1 = [
    _txn("txn_3QmZr2CycnwLJWPw1aK9xYbT", "charge", 12000, 378,
         {"id": "ch_3QmZr2CycnwLJWPw1tVb8nQe", "object": "charge", "amount": 12000},
         _at(2026, 1, 5, 14, 3)),
    _txn("txn_3QnA7pCycnwLJWPw0Rf2LwQm", "refund", -2000, 0,
         {"id": "re_3QnA7pCycnwLJWPw0c4XgH1s", "object": "refund", "amount": 2000,
          "charge": "ch_3QmZr2CycnwLJWPw1tVb8nQe", "status": "succeeded"},
         _at(2026, 1, 6, 9, 12), status="pending", category="refund"),
    _txn("txn_1QpC5dCycnwLJWPwYh3nP9gS", "adjustment", -12000, 1500,
         {"id": "dp_1QpC5dCycnwLJWPwa7sM2xKt", "object": "dispute", "amount": 12000,
          "charge": "ch_3QmZr2CycnwLJWPw1tVb8nQe", "status": "needs_response"},
         _at(2026, 1, 10, 10), category="dispute"),
]
STRIPE_PAGE_2 = [
    _txn("txn_1QqD6eCycnwLJWPwZg4pR0hU", "stripe_fee", -200, 0, None, _at(2026, 1, 31, 23, 59),
         category="fee"),
    _txn("txn_1QoB4cCycnwLJWPwXk2mN8fR", "payout", -9622, 0,
         {"id": "po_1QoB4cCycnwLJWPwD3jK9sLq", "object": "payout", "amount": 9622},
         _at(2026, 1, 8), category="payout"),
    _txn("txn_3QnT1aCycnwLJWPw1Jp0sK7d", "charge", 5000, 180,
         {"id": "ch_3QnT1aCycnwLJWPw1Wm5rZ2u", "object": "charge", "amount": 5000},
         _at(2026, 1, 7, 1), currency="jpy"),
    _txn("txn_3QnU2bCycnwLJWPw0Hq1tL8e", "payment", 1000, 0,
         {"id": "py_3QnU2bCycnwLJWPw0Xn6sA3v", "object": "charge", "amount": 1000},
         _at(2026, 1, 7, 2)),
]


def _record(kind: RecordKind, provider_id: str, amount: int, currency: str, status: str,
            created_at: datetime, related_id: str | None = None, *, provider: str = "stripe",
            source: str = "api") -> ProviderRecord:
    return ProviderRecord(provider=provider, kind=kind, provider_id=provider_id, amount=amount,
                          currency=currency, status=status, created_at=created_at,
                          related_id=related_id, source=source)


CHARGE = "ch_3QmZr2CycnwLJWPw1tVb8nQe"


@responses.activate
def test_stripe_balance_transactions_page_through_stripe_and_map_every_type(
        settings: Settings) -> None:
    """Two pages with created bounds, limit, expanded sources and the cursor give every record."""
    url = f"{STRIPE}/v1/balance_transactions"
    responses.get(url, json=_stripe_page("/v1/balance_transactions", STRIPE_PAGE_1, True))
    responses.get(url, json=_stripe_page("/v1/balance_transactions", STRIPE_PAGE_2, False))

    records = list(stripe_balance_transactions(_merchant(settings).stripe, JAN, FEB))

    first, second = responses.calls
    bounds = {"created[gte]": [str(_ts(JAN))], "created[lt]": [str(_ts(FEB))],
              "limit": ["100"], "expand[0]": ["data.source"]}
    assert _query(first) == bounds
    assert _query(second) == {**bounds, "starting_after": ["txn_1QpC5dCycnwLJWPwYh3nP9gS"]}
    assert first.request.headers["Authorization"] == "Bearer sk_test_theopenhost_sandbox"
    assert {c.request.headers["Stripe-Version"] for c in responses.calls} == {STRIPE_API_VERSION}
    assert records == [
        _record(RecordKind.PAYMENT, CHARGE, 12000, "USD", "succeeded", _at(2026, 1, 5, 14, 3)),
        _record(RecordKind.FEE, f"{CHARGE}:fee", 378, "USD", "succeeded",
                _at(2026, 1, 5, 14, 3), CHARGE),
        _record(RecordKind.REFUND, "re_3QnA7pCycnwLJWPw0c4XgH1s", 2000, "USD", "succeeded",
                _at(2026, 1, 6, 9, 12), CHARGE),
        _record(RecordKind.DISPUTE, "dp_1QpC5dCycnwLJWPwa7sM2xKt", 12000, "USD", "succeeded",
                _at(2026, 1, 10, 10), CHARGE),
        _record(RecordKind.FEE, "dp_1QpC5dCycnwLJWPwa7sM2xKt:fee", 1500, "USD", "succeeded",
                _at(2026, 1, 10, 10), "dp_1QpC5dCycnwLJWPwa7sM2xKt"),
        _record(RecordKind.FEE, "txn_1QqD6eCycnwLJWPwZg4pR0hU", 200, "USD", "succeeded",
                _at(2026, 1, 31, 23, 59)),
        _record(RecordKind.OTHER, "po_1QoB4cCycnwLJWPwD3jK9sLq", 9622, "USD", "succeeded",
                _at(2026, 1, 8)),
        _record(RecordKind.PAYMENT, "ch_3QnT1aCycnwLJWPw1Wm5rZ2u", 5000, "JPY", "succeeded",
                _at(2026, 1, 7, 1)),
        _record(RecordKind.FEE, "ch_3QnT1aCycnwLJWPw1Wm5rZ2u:fee", 180, "JPY", "succeeded",
                _at(2026, 1, 7, 1), "ch_3QnT1aCycnwLJWPw1Wm5rZ2u"),
        _record(RecordKind.PAYMENT, "py_3QnU2bCycnwLJWPw0Xn6sA3v", 1000, "USD", "succeeded",
                _at(2026, 1, 7, 2)),
    ]


@responses.activate
def test_a_stripe_error_while_listing_is_translated_into_ours(settings: Settings) -> None:
    """A 401 from Stripe surfaces as our ProviderError, not as the SDK's exception."""
    responses.get(f"{STRIPE}/v1/balance_transactions", status=401, json={"error": {
        "type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_***"}})

    with pytest.raises(ProviderError) as raised:
        list(stripe_balance_transactions(_merchant(settings).stripe, JAN, FEB))
    assert raised.value.code == "authentication" and not raised.value.retryable


def _info(txn_id: str, code: str, value: str, currency: str, initiated: str, *,
          fee: str | None = None, status: str = "S", reference: str | None = None
          ) -> dict[str, Any]:
    info: dict[str, Any] = {
        "paypal_account_id": "6STWC2LSUYYYE", "transaction_id": txn_id,
        "transaction_event_code": code, "transaction_initiation_date": initiated,
        "transaction_updated_date": initiated,
        "transaction_amount": {"currency_code": currency, "value": value},
        "transaction_status": status, "protection_eligibility": "01"}
    if fee is not None:
        info["fee_amount"] = {"currency_code": currency, "value": fee}
    if reference:
        info["paypal_reference_id"], info["paypal_reference_id_type"] = reference, "TXN"
    return info


def _search_page(infos: list[dict[str, Any]], page: int, total_pages: int, start: str, end: str
                 ) -> dict[str, Any]:
    return {"transaction_details": [{"transaction_info": i} for i in infos],
            "account_number": "XZXSPECPDZHZU", "start_date": start, "end_date": end,
            "last_refreshed_datetime": "2026-03-02T01:59:59+0000", "page": page,
            "total_items": len(infos), "total_pages": total_pages, "links": []}


SALE = "8MC585209K746392H"


@responses.activate
def test_paypal_transactions_search_in_31_day_windows_page_by_page(settings: Settings) -> None:
    """Each window is paged with the documented parameters; a boundary transaction counts once."""
    responses.post(f"{PAYPAL}/v1/oauth2/token", json={
        "access_token": "A21-reports", "token_type": "Bearer", "expires_in": 32400})
    url = f"{PAYPAL}/v1/reporting/transactions"
    boundary = _info("7AB12345CD678901E", "T0006", "15.00", "USD", "2026-02-01T00:00:00+0000",
                     fee="-0.74")
    responses.get(url, json=_search_page([
        _info(SALE, "T0006", "120.00", "USD", "2026-01-05T06:03:10-0800", fee="-4.43"),
        _info("1JU08902781691411", "T1107", "-20.00", "USD", "2026-01-06T01:12:00-0800",
              fee="0.59", reference=SALE),
    ], 1, 2, "2026-01-01T00:00:00+0000", "2026-02-01T00:00:00+0000"))
    responses.get(url, json=_search_page([
        _info("3LK0Y4B8U58WXWM64", "T1201", "-50.00", "USD", "2026-01-10T02:00:00-0800",
              reference=SALE),
        _info("2VX42619E8403312A", "T0400", "-500.00", "USD", "2026-01-12T09:30:00-0800"),
        boundary,
    ], 2, 2, "2026-01-01T00:00:00+0000", "2026-02-01T00:00:00+0000"))
    responses.get(url, json=_search_page([
        boundary,
        _info("5TY05013RG002845M", "T0002", "1000", "JPY", "2026-02-07T17:00:00-0800",
              fee="-53"),
        _info("9GS80322F8732054K", "T1106", "-30.00", "EUR", "2026-02-16T12:00:00+0100",
              status="V", reference="52OCUMR306YZLU6W5"),
    ], 1, 1, "2026-02-01T00:00:00+0000", "2026-03-01T00:00:00+0000"))

    records = list(paypal_transactions(_merchant(settings).paypal, JAN, MAR))

    token, *searches = responses.calls
    assert token.request.url == f"{PAYPAL}/v1/oauth2/token"
    common = {"fields": ["transaction_info"], "page_size": ["500"]}
    january = {"start_date": ["2026-01-01T00:00:00Z"], "end_date": ["2026-02-01T00:00:00Z"]}
    february = {"start_date": ["2026-02-01T00:00:00Z"], "end_date": ["2026-03-01T00:00:00Z"]}
    assert [_query(c) for c in searches] == [
        {**january, **common, "page": ["1"]}, {**january, **common, "page": ["2"]},
        {**february, **common, "page": ["1"]}]
    assert all(c.request.headers["Authorization"] == "Bearer A21-reports" for c in searches)

    def pp(kind: RecordKind, pid: str, amount: int, currency: str, status: str,
           at: datetime, related: str | None = None) -> ProviderRecord:
        return _record(kind, pid, amount, currency, status, at, related, provider="paypal")

    assert records == [
        pp(RecordKind.PAYMENT, SALE, 12000, "USD", "completed", _at(2026, 1, 5, 14, 3, 10)),
        pp(RecordKind.FEE, f"{SALE}:fee", 443, "USD", "completed", _at(2026, 1, 5, 14, 3, 10),
           SALE),
        pp(RecordKind.REFUND, "1JU08902781691411", 2000, "USD", "completed",
           _at(2026, 1, 6, 9, 12), SALE),
        pp(RecordKind.DISPUTE, "3LK0Y4B8U58WXWM64", 5000, "USD", "completed",
           _at(2026, 1, 10, 10), SALE),
        pp(RecordKind.OTHER, "2VX42619E8403312A", 50000, "USD", "completed",
           _at(2026, 1, 12, 17, 30)),
        pp(RecordKind.PAYMENT, "7AB12345CD678901E", 1500, "USD", "completed", FEB),
        pp(RecordKind.FEE, "7AB12345CD678901E:fee", 74, "USD", "completed", FEB,
           "7AB12345CD678901E"),
        pp(RecordKind.PAYMENT, "5TY05013RG002845M", 1000, "JPY", "completed",
           _at(2026, 2, 8, 1)),
        pp(RecordKind.FEE, "5TY05013RG002845M:fee", 53, "JPY", "completed", _at(2026, 2, 8, 1),
           "5TY05013RG002845M"),
        pp(RecordKind.DISPUTE, "9GS80322F8732054K", 3000, "EUR", "reversed",
           _at(2026, 2, 16, 11), "52OCUMR306YZLU6W5"),
    ]


def test_a_long_period_is_split_into_consecutive_windows_of_at_most_31_days() -> None:
    """75 days make three windows that touch end to end and never exceed PayPal's limit."""
    end = JAN + timedelta(days=75)
    parts = list(windows(JAN, end, timedelta(days=31)))
    assert parts == [(JAN, JAN + timedelta(days=31)),
                     (JAN + timedelta(days=31), JAN + timedelta(days=62)),
                     (JAN + timedelta(days=62), end)]


def test_the_stripe_balance_history_export_gives_the_same_kinds_of_records() -> None:
    """Charges with their fees, a refund, a JPY charge, a payout, a dispute and a Stripe fee."""
    def csv_record(kind: RecordKind, pid: str, amount: int, currency: str, at: datetime,
                   related: str | None = None) -> ProviderRecord:
        return _record(kind, pid, amount, currency, "succeeded", at, related,
                       source="stripe_balance_csv")

    jpy = "ch_3QnT1aCycnwLJWPw1Wm5rZ2u"
    dispute = "dp_1QpC5dCycnwLJWPwa7sM2xKt"
    assert list(stripe_balance_csv(EXPORTS / "stripe_balance_history.csv")) == [
        csv_record(RecordKind.PAYMENT, CHARGE, 12000, "USD", _at(2026, 1, 5, 14, 3)),
        csv_record(RecordKind.FEE, f"{CHARGE}:fee", 378, "USD", _at(2026, 1, 5, 14, 3), CHARGE),
        csv_record(RecordKind.REFUND, "re_3QnA7pCycnwLJWPw0c4XgH1s", 2000, "USD",
                   _at(2026, 1, 6, 9, 12)),
        csv_record(RecordKind.PAYMENT, jpy, 5000, "JPY", _at(2026, 1, 7, 1)),
        csv_record(RecordKind.FEE, f"{jpy}:fee", 180, "JPY", _at(2026, 1, 7, 1), jpy),
        csv_record(RecordKind.OTHER, "po_1QoB4cCycnwLJWPwD3jK9sLq", 9622, "USD", _at(2026, 1, 8)),
        csv_record(RecordKind.DISPUTE, dispute, 12000, "USD", _at(2026, 1, 10, 10)),
        csv_record(RecordKind.FEE, f"{dispute}:fee", 1500, "USD", _at(2026, 1, 10, 10), dispute),
        csv_record(RecordKind.FEE, "txn_1QqD6eCycnwLJWPwZg4pR0hU", 200, "USD",
                   _at(2026, 1, 31, 23, 59)),
    ]


def test_the_paypal_activity_download_gives_records_in_utc() -> None:
    """Local PST/PDT times become UTC; a refund is a negative gross; a fee is a separate record."""
    def csv_record(kind: RecordKind, pid: str, amount: int, currency: str, status: str,
                   at: datetime, related: str | None = None) -> ProviderRecord:
        return _record(kind, pid, amount, currency, status, at, related, provider="paypal",
                       source="paypal_activity_csv")

    assert list(paypal_activity_csv(EXPORTS / "paypal_activity.csv")) == [
        csv_record(RecordKind.PAYMENT, SALE, 12000, "USD", "completed", _at(2026, 1, 5, 14, 3, 10)),
        csv_record(RecordKind.FEE, f"{SALE}:fee", 443, "USD", "completed",
                   _at(2026, 1, 5, 14, 3, 10), SALE),
        csv_record(RecordKind.REFUND, "1JU08902781691411", 2000, "USD", "completed",
                   _at(2026, 1, 6, 9, 12), SALE),
        csv_record(RecordKind.PAYMENT, "5TY05013RG002845M", 1000, "JPY", "completed",
                   _at(2026, 1, 8, 1)),
        csv_record(RecordKind.FEE, "5TY05013RG002845M:fee", 53, "JPY", "completed",
                   _at(2026, 1, 8, 1), "5TY05013RG002845M"),
        csv_record(RecordKind.DISPUTE, "3LK0Y4B8U58WXWM64", 3000, "EUR", "completed",
                   _at(2026, 1, 10, 10), "80K8522V3108G8764"),
        csv_record(RecordKind.OTHER, "2VX42619E8403312A", 50000, "USD", "completed",
                   _at(2026, 1, 12, 17, 30)),
        csv_record(RecordKind.PAYMENT, "0KC300922HX5SXD4I", 999, "USD", "pending",
                   _at(2026, 7, 1, 17)),
        csv_record(RecordKind.FEE, "0KC300922HX5SXD4I:fee", 64, "USD", "pending",
                   _at(2026, 7, 1, 17), "0KC300922HX5SXD4I"),
    ]


def test_detect_export_tells_the_two_exports_apart_by_their_header() -> None:
    """The Stripe and PayPal files are recognised from their column names alone."""
    assert detect_export(EXPORTS / "stripe_balance_history.csv") == "stripe_balance_csv"
    assert detect_export(EXPORTS / "paypal_activity.csv") == "paypal_activity_csv"


def test_an_unknown_export_is_refused_naming_the_missing_columns(tmp_path: Path) -> None:
    """A bank statement is neither export, and the error says which columns each would need."""
    bank = tmp_path / "bank.csv"
    bank.write_text("Date,Description,Amount,Currency\n2026-01-08,STRIPE PAYOUT,96.22,USD\n")

    with pytest.raises(ExportError) as raised:
        detect_export(bank)
    message = str(raised.value)
    assert "not a Stripe balance history export (missing columns: id, Type, Source, Fee, Net, " \
           "Created (UTC))" in message
    assert "not a PayPal activity download (missing columns: Time, TimeZone, Type, Status, " \
           "Gross, Fee, Net, Transaction ID)" in message


def test_a_parser_refuses_the_other_providers_export() -> None:
    """Reading the PayPal file as Stripe's fails before any record, naming what is missing."""
    with pytest.raises(ExportError, match=r"missing columns: id, Source, Amount, Created \(UTC\)"):
        next(stripe_balance_csv(EXPORTS / "paypal_activity.csv"))


def test_an_empty_file_is_not_an_export(tmp_path: Path) -> None:
    """A file with no header at all is refused with the columns it lacks."""
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ExportError, match="missing columns: Date, Time"):
        detect_export(empty)


# ------------------------------------------------------------------------------ missed events

def _stripe_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / "stripe" / f"{name}.json").read_text())
    return event


def _paypal_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / "paypal" / f"{name}.json").read_text())
    return event


def _deliver_stripe(client: Any, *events: dict[str, Any]) -> None:
    for event in events:
        assert stripe_sig.post(client, event).status_code == 200


def _inbox(container: Container, provider: str) -> list[InboxEvent]:
    settle(container)  # delivered events the Redis inbox holds, into the table
    with container.sessions() as s:
        return list(s.scalars(select(InboxEvent).where(InboxEvent.provider == provider)
                              .order_by(InboxEvent.id)))


def _serve_stripe_events(delivered: list[dict[str, Any]], missed: list[dict[str, Any]]) -> None:
    """Two pages of /v1/events, newest first, mixing delivered and missed events."""
    url = f"{STRIPE}/v1/events"
    page_1 = [missed[0], delivered[0], missed[1]]
    page_2 = [delivered[1], missed[2]]
    responses.get(url, json=_stripe_page("/v1/events", page_1, True))
    responses.get(url, json=_stripe_page("/v1/events", page_2, False))


STRIPE_DELIVERED = ("invoice.created", "customer.subscription.created")
STRIPE_MISSED = ("charge.refunded", "charge.succeeded", "invoice.finalized")


@responses.activate
def test_missed_stripe_events_are_exactly_those_the_inbox_never_received(
        client: Any, container: Container) -> None:
    """Events listed by Stripe over two pages, minus the two delivered as webhooks."""
    delivered = [_stripe_event(n) for n in STRIPE_DELIVERED]
    missed = [_stripe_event(n) for n in STRIPE_MISSED]
    _deliver_stripe(client, *delivered)
    _serve_stripe_events(delivered, missed)

    found = list(missed_events(container, MERCHANT, "stripe", JAN, FEB))

    assert found == [{"provider": "stripe", "event_id": e["id"], "event_type": e["type"],
                      "created_at": datetime.fromtimestamp(e["created"], UTC)}
                     for e in missed]
    first, second = responses.calls
    bounds = {"created[gte]": [str(_ts(JAN))], "created[lt]": [str(_ts(FEB))], "limit": ["100"]}
    assert _query(first) == bounds
    assert _query(second) == {**bounds, "starting_after": [missed[1]["id"]]}
    assert second.request.headers["Authorization"] == "Bearer sk_test_theopenhost_sandbox"


@responses.activate
def test_a_stripe_backfill_stores_missed_events_like_webhooks_once_and_enqueues_them(
        client: Any, container: Container) -> None:
    """Three rows appear, shaped as a delivery would make them, each pushed to its partition;
    a second run finds nothing to store."""
    delivered = [_stripe_event(n) for n in STRIPE_DELIVERED]
    missed = [_stripe_event(n) for n in STRIPE_MISSED]
    _deliver_stripe(client, *delivered)
    _serve_stripe_events(delivered, missed)

    assert backfill(container, MERCHANT, "stripe", JAN, FEB) == 3

    rows = {r.event_id: r for r in _inbox(container, "stripe")}
    assert len(rows) == 5
    for event in missed:
        row = rows[event["id"]]
        ref = event["data"]["object"]["id"]
        assert json.loads(row.raw_body) == event
        assert row.headers == {"X-Gateway-Backfill": "api"}
        assert (row.event_type, row.object_ref, row.livemode) == (event["type"], ref, False)
        assert row.status == InboxStatus.PENDING and row.deliveries == 1
        assert row.partition == partition_of(MERCHANT, ref, container.settings.partitions)
        created = datetime.fromtimestamp(event["created"], UTC)
        assert row.provider_created_at is not None
        assert row.provider_created_at.replace(tzinfo=UTC) == created
        queued = container.redis.lrange(list_key(row.partition), 0, -1)
        assert str(row.id).encode() in queued

    _serve_stripe_events(delivered, missed)
    assert backfill(container, MERCHANT, "stripe", JAN, FEB) == 0
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboxEvent)) == 5
        assert s.scalar(select(func.max(InboxEvent.deliveries))) == 1


PAYPAL_EVENTS_URL = f"{PAYPAL}/v1/notifications/webhooks-events"


def _serve_paypal_events(delivered: dict[str, Any], missed: list[dict[str, Any]]) -> str:
    """Two pages of webhook events joined by a ``rel=next`` link; returns that link."""
    next_href = (f"{PAYPAL_EVENTS_URL}?page_size=100&start_time=2026-01-01T00%3A00%3A00Z"
                 f"&end_time=2026-02-01T00%3A00%3A00Z&move_to=next&index_id=2")
    responses.post(f"{PAYPAL}/v1/oauth2/token", json={
        "access_token": "A21-events", "token_type": "Bearer", "expires_in": 32400})
    responses.get(PAYPAL_EVENTS_URL, json={"events": [delivered, missed[0]], "count": 2, "links": [
        {"href": next_href, "rel": "next", "method": "GET"}]})
    responses.get(PAYPAL_EVENTS_URL, json={"events": [missed[1]], "count": 1, "links": []})
    return next_href


@responses.activate
def test_missed_paypal_events_follow_the_next_link_and_skip_delivered_ones(
        client: Any, container: Container) -> None:
    """The listing is read over both pages with the bearer token; only undelivered events remain,
    and a backfill stores them once as sandbox (not live) events."""
    delivered = _paypal_event("PAYMENT.SALE.COMPLETED")
    missed = [_paypal_event("PAYMENT.CAPTURE.COMPLETED"), _paypal_event("PAYMENT.SALE.REFUNDED")]
    deliver(client, "paypal", delivered, shared_signer())
    next_href = _serve_paypal_events(delivered, missed)

    found = list(missed_events(container, MERCHANT, "paypal", JAN, FEB))

    assert [f["event_id"] for f in found] == [e["id"] for e in missed]
    assert found[0] == {"provider": "paypal", "event_id": missed[0]["id"],
                        "event_type": "PAYMENT.CAPTURE.COMPLETED",
                        "created_at": _at(2026, 1, 1, 0, 0, 4, 678000)}
    _token, first, second = responses.calls
    assert _query(first) == {"page_size": ["100"], "start_time": ["2026-01-01T00:00:00Z"],
                             "end_time": ["2026-02-01T00:00:00Z"]}
    assert second.request.url == next_href
    assert second.request.headers["Authorization"] == "Bearer A21-events"

    _serve_paypal_events(delivered, missed)
    assert backfill(container, MERCHANT, "paypal", JAN, FEB) == 2
    rows = {r.event_id: r for r in _inbox(container, "paypal")}
    assert len(rows) == 3
    for event in missed:
        row = rows[event["id"]]
        assert json.loads(row.raw_body) == event and row.livemode is False
        assert row.status == InboxStatus.PENDING
        assert row.headers == {"X-Gateway-Backfill": "api"}

    _serve_paypal_events(delivered, missed)
    assert backfill(container, MERCHANT, "paypal", JAN, FEB) == 0


@responses.activate
def test_a_next_link_to_another_host_is_refused_before_our_token_goes_there(
        container: Container) -> None:
    """PayPal's pagination link is followed only on the configured API host."""
    responses.post(f"{PAYPAL}/v1/oauth2/token", json={
        "access_token": "A21-events", "token_type": "Bearer", "expires_in": 32400})
    responses.get(PAYPAL_EVENTS_URL, json={"events": [], "count": 0, "links": [
        {"href": "https://evil.example/v1/notifications/webhooks-events?page=2", "rel": "next",
         "method": "GET"}]})

    with pytest.raises(ProviderError, match="evil.example"):
        list(missed_events(container, MERCHANT, "paypal", JAN, FEB))
    assert len(responses.calls) == 2
