"""Cases to and from JSON: validated against ``case_schema.json``, errors name the field.

This is the boundary where untrusted input becomes a Case; ``evaluate`` trusts what it gets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from policy.case import (
    Account,
    Case,
    DisputeState,
    Identity,
    Invoice,
    Order,
    OrderType,
    Payment,
    ReasonCode,
    Request,
    RequestKind,
    ServiceState,
    Uptime,
    UptimeCause,
    UptimeSource,
    Usage,
)
from policy.errors import CaseError
from policy.money import Money
from policy.timing import EARLIEST, LATEST, UTC_ZONE, UnknownZone, local_midnight, zone

Json = dict[str, Any]


@cache
def case_schema() -> Json:
    """The Case JSON schema (read once, on first use)."""
    text = resources.files("policy").joinpath("case_schema.json").read_text(encoding="utf-8")
    schema: Json = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(case_schema())


def case_from_json(data: Mapping[str, Any]) -> Case:
    """Validate ``data`` against the Case schema and build a Case; raise ``CaseError`` naming
    the field."""
    if not isinstance(data, Mapping):
        raise CaseError("", f"a Case must be a JSON object, got {type(data).__name__}")
    error = best_match(_validator().iter_errors(dict(data)))
    if error is not None:
        raise _case_error(error)
    return _Builder().case(data)


def _case_error(error: ValidationError) -> CaseError:
    path = [str(p) for p in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        # The stubs type validator_value as object; for "required" it is the list of names.
        required: list[str] = list(error.validator_value)  # type: ignore[arg-type]
        missing = [k for k in required if k not in instance]
        return CaseError(".".join(path + missing[:1]), "is required")
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = schema.get("properties", {})
        extra = sorted(k for k in instance if k not in allowed)
        return CaseError(".".join(path + extra[:1]), "is not a known field")
    return CaseError(".".join(path), error.message)


class _Builder:
    """Turns schema-valid JSON into Case objects, checking what a schema cannot express."""

    def __init__(self) -> None:
        self.tz = UTC_ZONE

    def case(self, data: Mapping[str, Any]) -> Case:
        name = data.get("time_zone", "UTC")
        try:
            self.tz = zone(name)
        except UnknownZone as exc:
            raise CaseError("time_zone", str(exc)) from None
        case = Case(
            time_zone=name,
            request=self.request(data["request"]),
            account=self.account(data["account"]),  # required by the schema
            order=self.order(data["order"]) if "order" in data else None,
            usage=self.usage(data["usage"]) if "usage" in data else None,
            payment=self.payment(data["payment"]) if "payment" in data else None,
            uptime=self.uptime(data["uptime"]) if "uptime" in data else None,
        )
        return case

    def request(self, d: Mapping[str, Any]) -> Request:
        return Request(
            kind=RequestKind(d["kind"]),
            received_at=_datetime(d["received_at"], "request.received_at"),
            reason=d.get("reason", ""),
            reason_code=ReasonCode(d.get("reason_code", "other")),
            immediate=d.get("immediate", False),
            invoice_number=d.get("invoice_number"),
            identity=Identity(**d.get("identity", {})),
        )

    def account(self, d: Mapping[str, Any]) -> Account:
        invoices = tuple(self.invoice(inv, f"account.invoices.{i}")
                         for i, inv in enumerate(d.get("invoices", [])))
        numbers = [inv.number for inv in invoices]
        if len(set(numbers)) != len(numbers):
            raise CaseError("account.invoices", "invoice numbers must be unique")
        credit = d.get("credit_balance")
        return Account(
            prior_guarantee_refunds=_int(d.get("prior_guarantee_refunds", 0),
                                         "account.prior_guarantee_refunds"),
            suspended_for_breach=d.get("suspended_for_breach", False),
            violations=_int(d.get("violations", 0), "account.violations"),
            invoices=invoices,
            credit_balance=_money(credit, "account.credit_balance") if credit else None,
            in_collection=d.get("in_collection", False),
        )

    def invoice(self, d: Mapping[str, Any], where: str) -> Invoice:
        notified = d.get("notified_at")
        return Invoice(
            number=d["number"],
            amount=_money(d["amount"], f"{where}.amount"),
            due_at=_due(d["due_at"], f"{where}.due_at", self.tz),
            paid=d.get("paid", False),
            notified_at=_datetime(notified, f"{where}.notified_at") if notified else None,
        )

    def order(self, d: Mapping[str, Any]) -> Order:
        state = d.get("service_state")
        return Order(
            type=OrderType(d["type"]),
            product_category=d["product_category"],
            ordered_at=_datetime(d["ordered_at"], "order.ordered_at"),
            amount=_money(d["amount"], "order.amount"),
            term_months=_int(d.get("term_months", 1), "order.term_months"),
            auto_renew=d.get("auto_renew", False),
            next_billing_at=(_due(d["next_billing_at"], "order.next_billing_at", self.tz)
                             if "next_billing_at" in d else None),
            payment_provider=d.get("payment_provider", ""),
            payment_method=d.get("payment_method", ""),
            addons=tuple(d.get("addons", ())),
            service_state=ServiceState(state) if state else None,
            service_date=_opt_datetime(d, "service_date", "order"),
            **_refund_position(d, "order", amount=_money(d["amount"], "order.amount")),
        )

    def usage(self, d: Mapping[str, Any]) -> Usage:
        return Usage(bandwidth_bytes=_int(d.get("bandwidth_bytes", 0), "usage.bandwidth_bytes"),
                     sessions=_int(d.get("sessions", 0), "usage.sessions"),
                     used_since_renewal=d.get("used_since_renewal", False))

    def payment(self, d: Mapping[str, Any]) -> Payment:
        amount = _money(d["amount"], "payment.amount")
        over = _money(d["overpaid_amount"], "payment.overpaid_amount")
        if over.currency != amount.currency:
            raise CaseError("payment.overpaid_amount.currency",
                            f"must equal payment.amount.currency ({amount.currency})")
        if over.amount > amount.amount:
            raise CaseError("payment.overpaid_amount.amount", "cannot exceed payment.amount.amount")
        return Payment(amount=amount,
                       received_at=_datetime(d["received_at"], "payment.received_at"),
                       overpaid_amount=over, provider=d.get("provider", ""),
                       via_subscription=d.get("via_subscription", False),
                       **_refund_position(d, "payment", amount=amount))

    def uptime(self, d: Mapping[str, Any]) -> Uptime:
        raw = d["measured_percent"]
        try:
            measured = Decimal(str(raw))
        except InvalidOperation as exc:
            raise CaseError("uptime.measured_percent", f"not a number: {raw!r}") from exc
        if not measured.is_finite():  # NaN passes the schema's bounds: it fails every test
            raise CaseError("uptime.measured_percent", f"not a number: {raw!r}")
        # 0 to 100 otherwise: the schema's bounds, and its pattern for a string
        return Uptime(measured_percent=measured,
                      incident_at=_datetime(d["incident_at"], "uptime.incident_at"),
                      cause=UptimeCause(d.get("cause", "other")),
                      source=UptimeSource(d.get("source", "merchant_monitoring")))


def _refund_position(d: Mapping[str, Any], where: str, amount: Money) -> dict[str, Any]:
    """``refundable`` (in the payment's currency, at most its amount) and ``dispute``."""
    out: dict[str, Any] = {}
    if "refundable" in d:
        left = _money(d["refundable"], f"{where}.refundable")
        if left.currency != amount.currency:
            raise CaseError(f"{where}.refundable.currency",
                            f"must equal {where}.amount.currency ({amount.currency})")
        if left.amount > amount.amount:
            raise CaseError(f"{where}.refundable.amount", f"cannot exceed {where}.amount.amount")
        out["refundable"] = left
    if "dispute" in d:
        out["dispute"] = DisputeState(d["dispute"])
    return out


def _position_json(refundable: Money | None, dispute: DisputeState | None) -> Json:
    out: Json = {}
    if refundable is not None:
        out["refundable"] = money_json(refundable)
    if dispute is not None:
        out["dispute"] = dispute.value
    return out


def _int(value: Any, where: str) -> int:
    # JSON Schema counts 5.0 as an integer; minor units and counts must be real ints.
    if not isinstance(value, int) or isinstance(value, bool):
        raise CaseError(where, f"must be a whole number, got {value!r}")
    return value


def _money(d: Mapping[str, Any], where: str) -> Money:
    return Money(_int(d["amount"], f"{where}.amount"), d["currency"])


def _datetime(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CaseError(where, f"not a valid ISO 8601 date-time: {text!r}") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise CaseError(where, "must carry a timezone offset (Z or +hh:mm)")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise CaseError(where, f"{text!r} is outside the calendar in UTC") from None
    if not EARLIEST <= value < LATEST:
        raise CaseError(where, f"{text!r} is not between 2000 and 2100")
    return value



def _due(text: str, where: str, tz: ZoneInfo) -> datetime:
    """A due date: a date-time, or a date on the merchant's calendar (due from its midnight)."""
    if len(text) != 10:
        return _datetime(text, where)
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise CaseError(where, f"not a valid date: {text!r}") from exc
    value = local_midnight(day, tz)
    if not EARLIEST <= value < LATEST:
        raise CaseError(where, f"{text!r} is not between 2000 and 2100")
    return value


def _opt_datetime(d: Mapping[str, Any], key: str, where: str) -> datetime | None:
    return _datetime(d[key], f"{where}.{key}") if key in d else None


def case_to_json(case: Case) -> Json:
    """The JSON form of ``case`` (the inverse of ``case_from_json``); optional empty parts
    omitted."""
    out: Json = {"request": _request_json(case.request), "account": _account_json(case.account)}
    if case.time_zone != "UTC":
        out["time_zone"] = case.time_zone
    if case.order is not None:
        out["order"] = _order_json(case.order)
    if case.usage is not None:
        u = case.usage
        out["usage"] = {"bandwidth_bytes": u.bandwidth_bytes, "sessions": u.sessions,
                        "used_since_renewal": u.used_since_renewal}
    if case.payment is not None:
        p = case.payment
        out["payment"] = {"amount": money_json(p.amount), "received_at": iso(p.received_at),
                          "overpaid_amount": money_json(p.overpaid_amount), "provider": p.provider,
                          "via_subscription": p.via_subscription}
        if not p.provider:
            del out["payment"]["provider"]
        out["payment"].update(_position_json(p.refundable, p.dispute))
    if case.uptime is not None:
        t = case.uptime
        out["uptime"] = {"measured_percent": str(t.measured_percent),
                         "incident_at": iso(t.incident_at), "cause": t.cause.value,
                         "source": t.source.value}
    return out


def _request_json(r: Request) -> Json:
    out: Json = {"kind": r.kind.value, "received_at": iso(r.received_at), "reason": r.reason,
                 "reason_code": r.reason_code.value, "immediate": r.immediate}
    if r.invoice_number is not None:
        out["invoice_number"] = r.invoice_number
    identity = {k: getattr(r.identity, k) for k in Identity.__dataclass_fields__}
    out["identity"] = {k: v for k, v in identity.items() if v is not None}
    return out


def _account_json(a: Account) -> Json:
    out: Json = {"prior_guarantee_refunds": a.prior_guarantee_refunds,
                 "suspended_for_breach": a.suspended_for_breach, "violations": a.violations,
                 "invoices": [_invoice_json(i) for i in a.invoices],
                 "in_collection": a.in_collection}
    if a.credit_balance is not None:
        out["credit_balance"] = money_json(a.credit_balance)
    return out


def _invoice_json(i: Invoice) -> Json:
    out: Json = {"number": i.number, "amount": money_json(i.amount), "due_at": iso(i.due_at),
                 "paid": i.paid}
    if i.notified_at is not None:
        out["notified_at"] = iso(i.notified_at)
    return out


def _order_json(o: Order) -> Json:
    out: Json = {"type": o.type.value, "product_category": o.product_category,
                 "ordered_at": iso(o.ordered_at), "amount": money_json(o.amount),
                 "term_months": o.term_months, "auto_renew": o.auto_renew,
                 "addons": list(o.addons)}
    optional = {"next_billing_at": iso(o.next_billing_at) if o.next_billing_at else None,
                "payment_provider": o.payment_provider or None,
                "payment_method": o.payment_method or None,
                "service_state": o.service_state.value if o.service_state else None,
                "service_date": iso(o.service_date) if o.service_date else None}
    out.update({k: v for k, v in optional.items() if v is not None})
    out.update(_position_json(o.refundable, o.dispute))
    return out


def money_json(m: Money) -> Json:
    """``{"amount": int, "currency": str}``."""
    return {"amount": m.amount, "currency": m.currency}


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

