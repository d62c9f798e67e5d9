"""Waiting for something another process does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(done: Callable[[], T], what: str, timeout: float = 60, every: float = 0.2) -> T:
    """``done()``'s first truthy answer, asked every ``every`` seconds; fails the test after
    ``timeout`` seconds, naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = done()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
