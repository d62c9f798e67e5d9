"""Each shipped pack as the engine reads it: every term, with its value and the clause it cites,
compared with ``tests/fixtures/packs/<name>.json``.

The fixture is the reading of the merchant's document in one place: a change to a pack, or to
how packs are read (a default, a key's name, a rounding, a derived duration), shows up here as a
difference to review, term by term. Written again, after such a review, with
``.venv/bin/python -m tests.unit.policy.test_pack_terms``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from policy import available_packs, load_pack
from policy.pack import Clause

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "packs"


def plain(value: Any) -> Any:
    """``value`` as JSON: a clause as its citation (the texts are checked against the seeds
    elsewhere), a duration in seconds, a set sorted, every field of a term, derived ones too."""
    if isinstance(value, Clause):
        return value.citation
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted((plain(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return {"seconds": value.total_seconds()}
    return value


def terms(name: str) -> dict[str, Any]:
    pack = load_pack(name)
    out: dict[str, Any] = plain(pack)
    out["families"] = list(pack.families)
    return out


@pytest.mark.parametrize("name", ["cloudbehind", "digitalcare", "oneclick", "theopenhost"])
def test_every_term_of_a_shipped_pack_is_read_as_its_fixture_says(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    assert terms(name) == expected


def test_every_shipped_pack_has_its_fixture() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == available_packs()


if __name__ == "__main__":
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for pack_name in available_packs():
        (FIXTURES / f"{pack_name}.json").write_text(
            json.dumps(terms(pack_name), indent=1, ensure_ascii=False, sort_keys=True) + "\n",
            encoding="utf-8")
