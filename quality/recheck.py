"""Run the survivors of the last mutation run against tests written since: which do they kill?

    .venv/bin/python quality/recheck.py MODULE [MODULE ...] --tests TEST_FILE [TEST_FILE ...]

MODULE as ``quality/mutate`` takes it (``reports/reconcile.py``, ``adapters``). For every mutant
of those modules that the last run of ``quality/mutate`` left alive (survived, or no test called
it), the given test files run with that mutant active (mutmut's ``MUTANT_UNDER_TEST``), in a
copy of the run's ``mutants/`` tree with the test files copied in at their own paths. It prints
each mutant's verdict, then the ones still alive. The unmutated tests run first and must pass.
Slow mutants are cut off after ``--timeout`` seconds and counted as killed, as mutmut does.

``--database-url URL --redis-url URL`` run the tests on PostgreSQL (and that Redis) instead of
the suite's defaults: for mutants of code that runs only on PostgreSQL, which the mutation run
(SQLite) cannot kill. ``--only NAME ...`` limits the run to those survivors. With ``MUTATE_WORK``
set as it was for ``quality/mutate``, the survivors of that run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The run to recheck: quality/mutate's, or the one it ran with MUTATE_WORK set.
TREE = ROOT / os.environ.get("MUTATE_WORK", "quality/.work").rstrip("/") / "tree"
ALIVE = {0, 5, 33}  # survived; no tests (pytest's "no tests ran", mutmut's own code)


def dotted(module: str) -> str:
    """``workers/actions.py`` (or ``workers/actions.py:plan_actions``, as quality/mutate takes
    it: a selected function's survivors are the file's) as ``workers.actions``."""
    return module.partition(":")[0].rstrip("/").removesuffix(".py").replace("/", ".")


def current_files(paths: list[str], modules: list[str]) -> list[Path]:
    """``--current``: files of the checkout, relative to it, none of them a module rechecked."""
    found = []
    for given in paths:
        path = (ROOT / given).resolve()
        if not path.is_file() or not path.is_relative_to(ROOT):
            raise SystemExit(f"quality/recheck.py: --current {given} is not a file of the checkout")
        relative = path.relative_to(ROOT)
        name = dotted(str(relative))
        if any(name == m or name.startswith(m + ".") for m in map(dotted, modules)):
            raise SystemExit(f"quality/recheck.py: --current {given} is the module rechecked")
        found.append(relative)
    return found


def survivors(modules: list[str]) -> list[str]:
    prefixes = [dotted(m) + "." for m in modules]
    found = []
    for meta in sorted((TREE / "mutants").rglob("*.py.meta")):
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code in ALIVE and any(key.startswith(p) for p in prefixes):
                found.append(key)
    return sorted(found)


def run(tree: Path, tests: list[str], mutant: str, timeout: float,
        services: dict[str, str], extra: list[str]) -> str:
    env = {**os.environ, "MUTANT_UNDER_TEST": mutant}
    env.pop("TEST_DATABASE_URL", None)
    env.pop("TEST_REDIS_URL", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # see quality/mutate: compiling is most of the cost
    env.update(services)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
             "-p", "quality.mutation_plugin", *extra, *tests],
            cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "killed (timeout)"
    if done.returncode == 0:
        return "alive"
    if done.returncode == 1:
        return "killed"
    return f"error (pytest exit {done.returncode}): {done.stdout[-300:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="+")
    parser.add_argument("--tests", nargs="+", required=True, help="test files, from the root")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--database-url", help="PostgreSQL for the tests (TEST_DATABASE_URL)")
    parser.add_argument("--redis-url", help="Redis for the tests (TEST_REDIS_URL)")
    parser.add_argument("--only", nargs="+", default=None, help="these survivors only")
    parser.add_argument("-k", dest="keyword", help="pytest's -k: tests the run's tree cannot "
                        "pass (a fix made since the run) left out")
    parser.add_argument("--current", nargs="+", default=[], metavar="FILE",
                        help="files (not the module rechecked) taken from the checkout as they "
                        "are now, for new tests that need a change made since the run")
    args = parser.parse_args()
    services = {name: value for name, value in (("TEST_DATABASE_URL", args.database_url),
                                                ("TEST_REDIS_URL", args.redis_url)) if value}
    if not (TREE / "mutants").is_dir():
        raise SystemExit("quality/recheck.py: no mutation run to recheck (quality/mutate first)")
    current = current_files(args.current, args.modules)
    names = survivors(args.modules)
    if args.only is not None:
        names = [name for name in names if name in set(args.only)]
    print(f"{len(names)} mutants alive in {', '.join(args.modules)}")
    with tempfile.TemporaryDirectory(prefix="recheck-") as scratch:
        tree = Path(scratch) / "mutants"
        shutil.copytree(TREE / "mutants", tree, symlinks=True)
        for path in current:
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, tree / path)
        for test in args.tests:
            (tree / test).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / test, tree / test)
        extra = ["-k", args.keyword] if args.keyword else []
        baseline = run(tree, args.tests, "", args.timeout, services, extra)
        if baseline != "alive":
            raise SystemExit(f"the tests fail unmutated: {baseline}")
        alive = []
        for name in names:
            verdict = run(tree, args.tests, name, args.timeout, services, extra)
            print(f"{verdict:>16}  {name}", flush=True)
            if verdict == "alive":
                alive.append(name)
    print(f"\n{len(names) - len(alive)} of {len(names)} killed; still alive:")
    print("\n".join(alive) or "(none)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
