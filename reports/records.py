"""The two sides of a reconciliation, as plain data.

A ``ProviderRecord`` is one money movement as a provider reports it (from its API or from the
export finance downloads); a ``Discrepancy`` is one thing that does not match. Amounts are
positive integers of minor units; ``kind`` says which way the money went.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


class RecordKind(StrEnum):
    PAYMENT = "payment"  # a Stripe charge, a PayPal sale or capture: money in
    REFUND = "refund"  # money back to the customer
    DISPUTE = "dispute"  # a chargeback or reversal
    FEE = "fee"  # the provider's own fee (not matched to ledger entries; totalled)
    OTHER = "other"  # payouts, adjustments, transfers: listed, not matched


class ProviderRecord(NamedTuple):
    """A tuple, not a dataclass: a million are built per report, and a tuple is built in a
    third of the time a frozen dataclass takes."""

    provider: str  # stripe | paypal
    kind: RecordKind
    provider_id: str  # ch_..., re_..., a PayPal transaction id
    amount: int  # minor units, >= 0
    currency: str  # ISO 4217, upper case
    status: str  # the provider's status, lower case (succeeded, pending, failed, completed)
    created_at: datetime  # UTC
    related_id: str | None = None  # a refund's payment
    source: str = "api"  # api | stripe_balance_csv | paypal_activity_csv


class DiscrepancyKind(StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"  # the provider moved money we never recorded
    MISSING_AT_PROVIDER = "missing_at_provider"  # we recorded money the provider did not move
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    UNSOLICITED_REFUND = "unsolicited_refund"  # a refund no decision of ours asked for
    ACTION_NOT_EXECUTED = "action_not_executed"  # a decision's action never carried out
    ACTION_STUCK = "action_stuck"  # an action started and never finished
    MISSED_EVENT = "missed_event"  # an event the provider sent that the inbox never received


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: DiscrepancyKind
    provider: str
    provider_id: str
    currency: str
    ledger_amount: int | None
    provider_amount: int | None
    detail: str
    event_id: str | None = None  # the inbox event behind our entry, for the report's links
    occurred_at: datetime | None = None
