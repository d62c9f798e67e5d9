"""Named crash points for fault-injection tests of real processes.

``GATEWAY_CRASH_AT=after_provider_call`` makes a worker SIGKILL itself at that point, as a power
cut or an OOM kill would, so that tests can prove recovery at each step of an action without
patching any code. Unset in production; reading one environment variable costs nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({"before_provider_call", "after_provider_call", "after_ledger_write"})


def crash_point(name: str) -> None:
    """SIGKILL this process if ``GATEWAY_CRASH_AT`` names ``name``."""
    assert name in POINTS, name
    if os.environ.get("GATEWAY_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
