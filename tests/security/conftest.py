"""Fixtures for the hostile-input suite: the shared app, with settings a module may adjust.

A module sets ``SETTINGS = {...}`` to override settings (the rate-limit tests shorten the window).
By default the failure limit is set so high that it never blocks, yet is counted on every
refusal: fuzzing fails on purpose, hundreds of times, from one address.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Settings
from tests.conftest import make_settings
from tests.security.fuzz import TALLY


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str, redis_url: str,
             paypal_ca_file: Path) -> Settings:
    overrides = {"signature_failure_limit": 1_000_000, **getattr(request.module, "SETTINGS", {})}
    return make_settings(tmp_path, database_url, redis_url, paypal_ca_file, **overrides)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY:
        terminalreporter.write_sep("-", "hostile inputs sent")
        for name, count in sorted(TALLY.items()):
            terminalreporter.write_line(f"{count:6d}  {name}")
        terminalreporter.write_line(f"{sum(TALLY.values()):6d}  in all")
