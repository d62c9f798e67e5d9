"""Every numeric setting is checked at start-up against one table: type and range, with errors
that name the variable, the value and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.config import NUMERIC_SETTINGS, Numeric, load_settings
from service.errors import ConfigError

ROWS = {row.variable: row for row in NUMERIC_SETTINGS}
README = Path(__file__).resolve().parents[2] / "README.md"


def _refused(env: dict[str, str], row: Numeric, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert row.variable in message and repr(value) in message, message
    assert row.allowed() in message, message


def test_the_table_covers_the_numeric_variables_the_issue_names():
    """Partitions, batch size, timeouts, limits, body limit, ports, retry base, attempts."""
    assert {"GATEWAY_PARTITIONS", "GATEWAY_BATCH_SIZE", "GATEWAY_DB_BUSY_TIMEOUT",
            "GATEWAY_PAYPAL_CERT_TIMEOUT", "GATEWAY_SIGNATURE_FAILURE_LIMIT",
            "GATEWAY_BODY_LIMIT", "GATEWAY_METRICS_PORT", "PORT", "GATEWAY_RETRY_BASE_SECONDS",
            "GATEWAY_MAX_ATTEMPTS", "GATEWAY_STRIPE_TOLERANCE", "GATEWAY_SWEEP_AFTER_SECONDS",
            "GATEWAY_DRAIN_LOCK_SECONDS", "GATEWAY_SIGNATURE_FAILURE_WINDOW",
            "GATEWAY_TRUSTED_PROXIES"} <= set(ROWS)


@pytest.mark.parametrize("row", NUMERIC_SETTINGS, ids=lambda r: r.variable)
@pytest.mark.parametrize("value", ["lots", "", "1e3", "0x10", "1_000", "١٢", "nan", "inf", "--1"])
def test_a_value_that_is_not_a_number_is_refused_naming_the_variable(row, value):
    """Words, exponents, hex, underscores, non-ASCII digits, nan and inf are all refused (an
    empty value means unset, so it is the one accepted)."""
    env = {row.variable: value}
    if value == "":
        assert getattr(load_settings(env), row.field) == getattr(load_settings({}), row.field)
        return
    _refused(env, row, value)


@pytest.mark.parametrize("row", [r for r in NUMERIC_SETTINGS if r.kind is int],
                         ids=lambda r: r.variable)
def test_a_whole_number_setting_refuses_a_fraction(row):
    _refused({row.variable: "2.5"}, row, "2.5")


@pytest.mark.parametrize("row", NUMERIC_SETTINGS, ids=lambda r: r.variable)
def test_out_of_range_values_are_refused_naming_the_variable_and_the_range(row):
    """Just below the lowest allowed value, just above the highest, and negative numbers."""
    step = 1 if row.kind is int else 0.5
    below = row.low if row.above_low else row.low - step
    for value in {_text(below), _text(row.high + step), "-5"}:
        _refused({row.variable: value}, row, value)


@pytest.mark.parametrize("row", NUMERIC_SETTINGS, ids=lambda r: r.variable)
def test_the_boundary_values_are_accepted(row):
    """The lowest and highest allowed values load, as numbers of the field's type."""
    lowest = row.low + 0.001 if row.above_low else row.low
    for value in (lowest, row.high):
        loaded = getattr(load_settings({row.variable: _text(value)}), row.field)
        assert loaded == value and isinstance(loaded, row.kind)
    # surrounding blanks are forgiven (an env file's trailing space), signs are read
    assert getattr(load_settings({row.variable: f" +{_text(row.high)} "}), row.field) == row.high


def test_the_issues_examples():
    """GATEWAY_PARTITIONS=0 (a ZeroDivisionError in partition_of) and a negative batch size."""
    with pytest.raises(ConfigError, match=r"GATEWAY_PARTITIONS must be a whole number from 1 to "
                                          r"\d+, got '0'"):
        load_settings({"GATEWAY_PARTITIONS": "0"})
    with pytest.raises(ConfigError, match="GATEWAY_BATCH_SIZE .* got '-100'"):
        load_settings({"GATEWAY_BATCH_SIZE": "-100"})


def test_zero_means_off_where_the_table_says_so():
    """The failure limit and trusted proxies take 0 (no limit, none) and say so when refusing."""
    assert load_settings({"GATEWAY_SIGNATURE_FAILURE_LIMIT": "0"}).signature_failure_limit == 0
    assert load_settings({"GATEWAY_TRUSTED_PROXIES": "0"}).trusted_proxies == 0
    with pytest.raises(ConfigError, match=r"from 0 \(no limit\)"):
        load_settings({"GATEWAY_SIGNATURE_FAILURE_LIMIT": "-1"})


def test_unset_optional_ports_stay_unset():
    settings = load_settings({})
    assert settings.metrics_port is None and settings.port is None


def test_overrides_are_held_to_the_same_ranges():
    """A caller that builds settings in code gets the same checks, naming the variable."""
    with pytest.raises(ConfigError, match="GATEWAY_PARTITIONS"):
        load_settings({}, partitions=0)
    with pytest.raises(ConfigError, match="GATEWAY_MAX_ATTEMPTS"):
        load_settings({}, max_attempts=True)  # a bool is not a number of attempts
    with pytest.raises(ConfigError, match="GATEWAY_PAYPAL_CERT_TIMEOUT"):
        load_settings({}, paypal_cert_timeout=0.0)
    assert load_settings({}, partitions=3).partitions == 3


def test_the_defaults_are_inside_their_ranges():
    settings = load_settings({})
    for row in NUMERIC_SETTINGS:
        row.check(getattr(settings, row.field))


def test_the_readme_documents_every_variable_with_its_range():
    """The Configuration section's table names each variable and the range the code enforces."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for row in NUMERIC_SETTINGS:
        line = next((ln for ln in section.splitlines() if f"`{row.variable}`" in ln), None)
        assert line is not None, f"{row.variable} missing from the README's Configuration"
        low, high = _text(row.low), _text(row.high)
        assert re.search(rf"\b{re.escape(low)}\b.*\b{re.escape(high)}\b", line), (row, line)


def _text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
