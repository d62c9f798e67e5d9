"""Packs as data (loading, validation, verbatim clauses) and the Decision's output forms."""

from __future__ import annotations

import json
import tomllib
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from policy import (
    EvaluationError,
    PackError,
    available_packs,
    case_from_json,
    decision_to_json,
    evaluate,
    explain,
    load_pack,
)
from policy.pack import parse_pack

from .builders import NOW, T0, case, decide, order

# The merchant documents the packs implement, kept beside the docs that interpret them.
SEEDS = Path(__file__).resolve().parents[3] / "docs" / "seeds"


def test_the_four_seed_merchants_ship_as_packs() -> None:
    """available_packs lists exactly the four seed packs, and each loads."""
    assert available_packs() == ["cloudbehind", "digitalcare", "oneclick", "theopenhost"]
    assert [load_pack(n).seed for n in available_packs()] == ["002", "001", "000", "003"]


@pytest.mark.parametrize("name", ["cloudbehind", "digitalcare", "oneclick", "theopenhost"])
def test_every_clause_text_is_quoted_verbatim_from_its_seed(name: str) -> None:
    """Each clause text in a pack appears character for character in the seed document."""
    pack = load_pack(name)
    seed = next(SEEDS.glob(f"{pack.seed}_*.txt")).read_text(encoding="utf-8")
    assert [ref for ref, c in pack.clauses.items() if c.text not in seed] == []


def raw(name: str) -> dict[str, Any]:
    text = resources.files("policy").joinpath(f"packs/{name}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@pytest.mark.parametrize(("mutate", "key"), [
    (lambda d: d["late_fee"].pop("percent"), "late_fee.percent"),
    (lambda d: d["late_fee"].update(percent=35), "late_fee.percent"),
    (lambda d: d["overpayment"].update(refund_clause="9.9"), "overpayment.refund_clause"),
    (lambda d: d["cancellation"].update(colour="red"), "cancellation.colour"),
    (lambda d: d["guarantee"][0]["window"].update(end="sometimes"), "guarantee[0].window.end"),
    (lambda d: d["money"].update(fee_rounding="ROUND_NICELY"), "money.fee_rounding"),
    (lambda d: d["guarantee"][0]["deductions"]["ssl_certificate"].update(usd=1),
     "guarantee[0].deductions.ssl_certificate.usd"),
], ids=["missing key", "wrong type", "unknown clause", "unknown key", "bad choice",
        "bad rounding", "lower-case currency"])
def test_a_bad_pack_raises_an_error_naming_the_key(mutate: Any, key: str) -> None:
    """PackError carries the dotted key that is wrong."""
    data = raw("theopenhost")
    mutate(data)
    with pytest.raises(PackError) as info:
        parse_pack("theopenhost", data)
    assert info.value.key == key


def test_an_unknown_pack_name_is_refused() -> None:
    """load_pack names the available packs when asked for one that does not exist."""
    with pytest.raises(PackError, match="available"):
        load_pack("nosuchmerchant")


def test_a_new_merchant_is_configured_without_code() -> None:
    """A pack with a 30-day window reuses the guarantee family unchanged."""
    data = raw("theopenhost")
    data["pack"]["merchant"] = "Another host"
    data["guarantee"][0]["window"]["days"] = 30
    pack = parse_pack("anotherhost", data)
    d = evaluate(pack, case_from_json(case("refund", T0 + timedelta(days=20), order=order())), NOW)
    assert d.outcome.value == "full_refund" and d.pack == "anotherhost"


def test_evaluate_rejects_a_naive_now() -> None:
    """now must carry a timezone."""
    pack = load_pack("theopenhost")
    c = case_from_json(case("refund", T0, order=order()))
    with pytest.raises(EvaluationError):
        evaluate(pack, c, datetime(2025, 6, 1))


def test_a_non_utc_now_is_normalised_to_utc() -> None:
    """The same instant in another zone gives the same decision."""
    pack = load_pack("theopenhost")
    c = case_from_json(case("refund", T0, order=order()))
    plus2 = NOW.astimezone(timezone(timedelta(hours=2)))
    assert evaluate(pack, c, plus2) == evaluate(pack, c, NOW)


def test_a_request_dated_after_now_goes_to_review() -> None:
    """A request from the future means a clock is wrong; a person checks."""
    d = decide("theopenhost", case("refund", NOW + timedelta(days=1), order=order()))
    assert d.outcome.value == "needs_review"


def test_decision_json_is_serialisable_with_a_stable_key_order() -> None:
    """Amounts are {amount, currency}, datetimes ISO 8601 UTC, and keys come in a fixed order."""
    d = decide("theopenhost", case("refund", T0 + timedelta(days=2),
                                   order=order(addons=["ssl_certificate"])))
    out = decision_to_json(d)
    assert list(out) == ["pack", "request_kind", "outcome", "basis", "decided_at", "currency",
                         "amounts", "line_items", "dates", "flags", "reasons"]
    assert out["amounts"]["refund"] == {"amount": 11000, "currency": "USD"}
    assert out["decided_at"] == "2025-06-01T00:00:00Z"
    assert json.loads(json.dumps(out)) == out


def test_explain_shows_outcome_amounts_and_each_cited_clause_with_its_text() -> None:
    """The human form lists every reason with citation and quoted clause text."""
    d = decide("theopenhost", case("refund", T0 + timedelta(days=20), order=order()))
    text = explain(d)
    assert text.startswith("Decision: deny")
    assert "003 §1.1f" in text and "Once 16 days have passed" in text
