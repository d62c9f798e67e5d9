"""The layout's rules, read from the source: production never imports the sandbox, the policy
core imports nothing that does I/O, metric definitions are a leaf, and no two modules import
each other in a circle. Imports inside functions count for the first two rules (a lazy import is
still a dependency) but not for circles (deferring an import is how a circle is broken)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("adapters", "cli", "gateway", "ledger", "migrations", "policy", "reports", "sandbox",
        "service", "workers")
# Code that runs in production: none of it may reach the sandbox tooling (fakes, samples,
# simulator, development certificates, the demo) or the command line.
PRODUCTION = ("adapters", "gateway", "ledger", "migrations", "policy", "reports", "service",
              "workers")
# ``python -m gateway`` runs the command line: its ``__main__`` is an entry point that nothing
# imports (Python runs it only as a script), so it reaches the CLI without production reaching it.
ENTRY_POINTS = frozenset({"gateway.__main__"})
# What the pure policy core may not import: storage, queues, the network, processes, our I/O.
POLICY_FORBIDDEN = ("sqlalchemy", "redis", "rq", "flask", "requests", "stripe", "paypalrestsdk",
                    "socket", "http", "urllib", "subprocess", "smtplib", "psycopg", "alembic",
                    "adapters", "cli", "gateway", "ledger", "reports", "sandbox", "service",
                    "workers")


def _modules() -> dict[str, Path]:
    found = {}
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """Absolute module names ``path`` imports (``from a import b`` gives a.b if that is ours)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names
                         if f"{node.module}.{a.name}" in MODULES)
    return names


def _root(name: str) -> str:
    return name.split(".")[0]


def test_the_layout_is_what_the_readme_says():
    """The packages exist: production wiring, the command line and the sandbox apart."""
    for package in OURS:
        assert (ROOT / package / "__init__.py").exists(), package
    assert "sandbox.fake_providers" in MODULES and "sandbox.samples" in MODULES
    assert "cli.main" in MODULES


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                           if _root(m) in PRODUCTION and m not in ENTRY_POINTS))
def test_production_never_imports_the_sandbox_or_the_cli(module):
    """Whatever can move money never imports what only fakes it."""
    bad = {n for n in _imports(MODULES[module], top_level_only=False)
           if _root(n) in ("sandbox", "cli")}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_entry_points_are_imported_by_nothing():
    """``gateway.__main__`` may reach the CLI only because no module imports it."""
    for module, path in MODULES.items():
        assert not _imports(path, top_level_only=False) & ENTRY_POINTS, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _root(m) == "policy"))
def test_the_policy_core_imports_nothing_that_does_io(module):
    """No storage, queue, network or process library, and none of our I/O packages."""
    bad = {n for n in _imports(MODULES[module], top_level_only=False)
           if _root(n) in POLICY_FORBIDDEN}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_metric_definitions_are_a_leaf():
    """service.metrics defines metrics and imports none of our modules but the logs' scope."""
    ours = {n for n in _imports(MODULES["service.metrics"], top_level_only=False)
            if _root(n) in OURS}
    assert ours <= {"service.logs"}, ours


def test_no_two_modules_import_each_other_in_a_circle():
    """Module-level imports among our modules form no cycle."""
    graph = {m: {n for n in _imports(p, top_level_only=True) if n in MODULES and n != m}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
