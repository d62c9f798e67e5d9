"""The pure policy core: facts and the time in, a cited Decision out. No I/O, no clock, no globals.

Entry points: ``load_pack`` / ``available_packs`` (merchant rules as data), ``case_from_json`` /
``case_to_json`` (the validated Case boundary), ``evaluate`` (the decision) and
``decision_to_json`` / ``explain`` (its machine and human forms).
"""

from policy.case import Case
from policy.case_json import case_from_json, case_to_json
from policy.decision import Decision, LineItem, Outcome, Reason, decision_to_json, explain
from policy.engine import evaluate
from policy.errors import CaseError, EvaluationError, PackError, PolicyError
from policy.pack import Pack, available_packs, load_pack

__all__ = [
    "Case",
    "CaseError",
    "Decision",
    "EvaluationError",
    "LineItem",
    "Outcome",
    "Pack",
    "PackError",
    "PolicyError",
    "Reason",
    "available_packs",
    "case_from_json",
    "case_to_json",
    "decision_to_json",
    "evaluate",
    "explain",
    "load_pack",
]
