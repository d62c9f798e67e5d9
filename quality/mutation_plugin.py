"""pytest plugin loaded by quality/mutate's runs: the same Hypothesis examples for every mutant.

Hypothesis otherwise draws new examples on each run and replays failures it saved from earlier
runs, so a mutant could be killed in one run and survive the next. It also runs a mutant's
cheapest test files first, and gives a function that runs while the modules are imported the
tests of its whole module (see ``pytest_collection_finish``).
"""

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("mutation", derandomize=True, database=None)
settings.load_profile("mutation")


def _durations() -> dict[str, float]:
    """The seconds each test took in mutmut's clean run (its statistics file), if it has one."""
    path = Path("mutmut-stats.json")  # mutmut runs the tests from inside its mutants/ folder
    try:
        return dict(json.loads(path.read_text())["duration_by_test"])
    except (OSError, ValueError, KeyError):
        return {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Cheapest test files first: mutmut stops a mutant's run at its first failing test (-x).

    mutmut hands pytest a mutant's tests in no particular order, so a mutant that a 5 ms unit
    test kills could first wait for a minute of integration tests. A file's tests stay
    together (their module fixtures are set up once) and keep their order inside the file.
    """
    durations = _durations()
    if not durations:
        return
    cost: defaultdict[Path, float] = defaultdict(float)
    for item in items:
        cost[item.path] += durations.get(item.nodeid, 1.0)
    items.sort(key=lambda item: (cost[item.path], item.path))  # stable: a file keeps its order


# Functions that ran while the tests were being collected, that is when the project's modules
# were imported (tables of statements built once, packs loaded, decorators).
_AT_IMPORT: set[str] = set()


def pytest_collection_finish(session: pytest.Session) -> None:
    """In mutmut's statistics run, note the functions called during collection.

    mutmut maps a function to the tests during which it ran. A function that runs only at
    import time (``_OF_PAYMENT = {Refund: _of_payment(Refund), ...}``) runs before any test,
    and mutmut files it under the first test of the run, an unrelated one: its mutants would
    run against that test alone and "survive". ``pytest_sessionfinish`` gives such a function
    every test of its module instead: what imports the module depends on it.
    """
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    from mutmut.state import state

    _AT_IMPORT.update(state()._stats)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _AT_IMPORT:
        return
    from mutmut.state import state

    tests = state().tests_by_mangled_function_name
    of_module: defaultdict[str, set[str]] = defaultdict(set)
    for function, its_tests in tests.items():
        of_module[function.rpartition(".")[0]] |= its_tests
    for function in _AT_IMPORT:
        tests[function] |= of_module[function.rpartition(".")[0]]
