"""Fixtures for the hostile-input suite: the shared app, with settings a module may adjust.

A module sets ``SETTINGS = {...}`` to override settings (the rate-limit tests shorten the window).
By default the failure limit is set so high that it never blocks, yet is counted on every
refusal: fuzzing fails on purpose, hundreds of times, from one address.

Every log record the suite produces (at INFO and above, as in production, and at whatever lower
level a test asks for) is kept, as the JSON line the process would write and as its message and
traceback before the formatter's redaction; at the end of the session none may hold a secret or
token of any settings the suite ran with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import Settings, load_settings
from service.logs import JsonFormatter
from tests.conftest import make_settings
from tests.security.fuzz import TALLY

# Every secret and token of the settings the suite's tests ran with (see ``settings``).
CONFIGURED_SECRETS: set[str] = set()


def configured_secrets(settings: Settings) -> set[str]:
    """Admin tokens, Stripe webhook secrets and API keys, PayPal credentials, the metrics token."""
    out = {settings.metrics_token}
    for m in settings.merchants.values():
        out |= {m.admin_token, *m.stripe.webhook_secrets, m.stripe.api_key, m.paypal.client_id,
                m.paypal.client_secret}
    return {s for s in out if s}


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str, redis_url: str,
             paypal_ca_file: Path) -> Settings:
    overrides = {"signature_failure_limit": 1_000_000, **getattr(request.module, "SETTINGS", {})}
    made = make_settings(tmp_path, database_url, redis_url, paypal_ca_file, **overrides)
    CONFIGURED_SECRETS.update(configured_secrets(made))
    return made


class _KeptLines(logging.Handler):
    """Keeps what each record would write, and what it held before redaction."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.formatter_ = JsonFormatter()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.formatter_.format(record))
        self.lines.append(record.getMessage())
        if record.exc_info:
            self.lines.append(self.formatter_.formatException(record.exc_info))


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log_line() -> Iterator[None]:
    """Over the whole suite: every log line is searched for every configured secret and token."""
    CONFIGURED_SECRETS.update(configured_secrets(load_settings({})))  # the default merchants
    kept = _KeptLines()
    root, engine_log = logging.getLogger(), logging.getLogger("sqlalchemy.engine")
    levels = root.level, engine_log.level
    root.addHandler(kept)
    root.setLevel(logging.INFO)
    engine_log.setLevel(logging.WARNING)  # as configure_logging does in every process
    try:
        yield
    finally:
        root.removeHandler(kept)
        root.setLevel(levels[0])
        engine_log.setLevel(levels[1])
    assert kept.lines, "the suite should have logged (its refusals, at least)"
    leaked = sorted(s for s in CONFIGURED_SECRETS if any(s in line for line in kept.lines))
    assert not leaked, (f"{len(leaked)} configured secret(s) in the suite's log lines, "
                        f"e.g. {leaked[0][:10]}...")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY:
        terminalreporter.write_sep("-", "hostile inputs sent")
        for name, count in sorted(TALLY.items()):
            terminalreporter.write_line(f"{count:6d}  {name}")
        terminalreporter.write_line(f"{sum(TALLY.values()):6d}  in all")
