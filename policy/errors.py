"""The policy core's own errors: a bad Case, a bad pack, a bad call. Each names what was wrong."""

from __future__ import annotations


class PolicyError(Exception):
    """Base of every error the policy core raises."""


class CaseError(PolicyError, ValueError):
    """A Case that does not match the schema; ``field`` is a dotted path such as
    ``order.amount``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field or '(case)'}: {message}")
        self.field = field
        self.message = message


class PackError(PolicyError, ValueError):
    """A policy pack that cannot be loaded; ``key`` is the dotted TOML key that is wrong."""

    def __init__(self, pack: str, key: str, message: str) -> None:
        super().__init__(f"pack {pack!r}, {key or '(pack)'}: {message}")
        self.pack = pack
        self.key = key
        self.message = message


class EvaluationError(PolicyError, ValueError):
    """``evaluate`` was called wrongly (for example with a naive ``now``)."""
