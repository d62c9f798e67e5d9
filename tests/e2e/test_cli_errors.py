"""The command line's error convention, on the real command (`python -m gateway` in a process of
its own): every user error is one line on standard error naming what was wrong, exit status 2,
no traceback, and a command that reads the ledger never creates one."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import pytest

from cli.main import _parser
from ledger.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
PERIOD = ["--merchant", "theopenhost", "--from", "2026-01-01", "--to", "2026-02-01"]
MERCHANTS = "cloudbehind, digitalcare, oneclick, theopenhost"
NO_LEDGER = "no ledger in the data directory"


@dataclass(frozen=True)
class Row:
    """``gateway ARGV`` run in an empty directory, with GATEWAY_DATA_DIR at ``data``:
    ``migrated`` (a ledger at head), ``missing`` (a directory that does not exist) or None
    (unset: ./var of the empty working directory)."""

    argv: list[str]
    status: int
    says: list[str]
    data: str | None = "migrated"
    env: tuple[tuple[str, str], ...] = ()


ROWS = {
    "report: --provider-export that is not there": Row(
        ["report", "reconcile", *PERIOD, "--provider-export", "/nope.csv"], 2,
        ["--provider-export /nope.csv: no such file"]),
    "report: --from after --to": Row(
        ["report", "reconcile", "--merchant", "theopenhost", "--from", "2026-03-01",
         "--to", "2026-02-01"], 2, ["--to 2026-02-01 must be after --from 2026-03-01"]),
    "report: --from equal to --to": Row(
        ["report", "reconcile", "--merchant", "theopenhost", "--from", "2026-03-01",
         "--to", "2026-03-01"], 2, ["must be after --from"]),
    "report: --output in a directory that is not there": Row(
        ["report", "reconcile", *PERIOD, "--output", "/nope/dir/r.csv",
         "--provider-export", "{header_only}"], 2,
        ["--output /nope/dir/r.csv", "the directory /nope/dir does not exist"]),
    "report: --output that is a directory": Row(
        ["report", "reconcile", *PERIOD, "--output", "{cwd}",
         "--provider-export", "{header_only}"], 2, ["is a directory"]),
    "report: an export of neither provider's shape": Row(
        ["report", "reconcile", *PERIOD, "--provider-export", "{not_an_export}"], 2,
        ["unrecognised export", "missing columns"]),
    "report: a date that is not one": Row(
        ["report", "reconcile", "--merchant", "theopenhost", "--from", "2026-02-30",
         "--to", "2026-03-01"], 2, ["report reconcile: argument --from", "'2026-02-30'"]),
    "report: an unknown merchant, naming the configured ones": Row(
        ["report", "reconcile", "--merchant", "nosuch", "--from", "2026-01-01",
         "--to", "2026-02-01"], 2, ["unknown merchant 'nosuch'", MERCHANTS]),
    "report: a --base-url that is not an http(s) address": Row(
        ["report", "reconcile", *PERIOD, "--base-url", "ftp://x"], 2,
        ["--base-url must be an http(s) address", "'ftp://x'"]),
    "report: no ledger in the data directory": Row(
        ["report", "reconcile", *PERIOD, "--provider-export", "{header_only}"], 2,
        [NO_LEDGER, "gateway db upgrade"], data="missing"),
    "backfill: --from after --to": Row(
        ["backfill", "--merchant", "theopenhost", "--provider", "stripe",
         "--from", "2026-03-01", "--to", "2026-02-01"], 2, ["must be after --from"]),
    "backfill: an unknown merchant": Row(
        ["backfill", "--merchant", "nosuch", "--provider", "stripe",
         "--from", "2026-01-01", "--to", "2026-02-01"], 2, ["unknown merchant 'nosuch'",
                                                            MERCHANTS]),
    "backfill: no ledger": Row(
        ["backfill", *PERIOD, "--provider", "stripe", "--list"], 2, [NO_LEDGER],
        data="missing"),
    "policy evaluate: a Case file that is not there": Row(
        ["policy", "evaluate", "--merchant", "theopenhost", "/nonexistent.json"], 2,
        ["/nonexistent.json: no such file"]),
    "policy evaluate: a Case file that is not JSON": Row(
        ["policy", "evaluate", "--merchant", "theopenhost", "{not_json}"], 2,
        ["is not JSON"]),
    "policy evaluate: an unknown merchant": Row(
        ["policy", "evaluate", "--merchant", "nosuch", "/nonexistent.json"], 2,
        ["unknown merchant 'nosuch'", MERCHANTS]),
    "policy evaluate: --at that is not a time": Row(
        ["policy", "evaluate", "--merchant", "theopenhost", "--at", "soon", "{not_json}"], 2,
        ["--at 'soon' is not an ISO 8601 time"]),
    "inbox: run from another directory, no data directory set": Row(
        ["inbox"], 2, [NO_LEDGER, "var", "GATEWAY_DATA_DIR", "gateway db upgrade"], data=None),
    "inbox: a status that does not exist": Row(
        ["inbox", "--status", "bogus"], 2,
        ["'bogus' is not an inbox status", "pending, processed, ignored, retry, dead"]),
    "inbox: a limit below 1": Row(["inbox", "--limit", "0"], 2, ["--limit", "above 0"]),
    "replay: an event id the inbox does not hold": Row(
        ["replay", "evt_nope"], 2, ["the inbox holds no event evt_nope", "nothing was replayed"]),
    "replay: neither ids nor --failed": Row(["replay"], 2, ["name event ids"]),
    "replay: no ledger": Row(["replay", "--failed"], 2, [NO_LEDGER], data="missing"),
    "simulate: an unknown merchant": Row(
        ["simulate", "stripe", "charge.succeeded", "--merchant", "nosuch",
         "--url", "http://127.0.0.1:1"], 2, ["unknown merchant 'nosuch'", MERCHANTS]),
    "simulate: an event type with no sample": Row(
        ["simulate", "stripe", "charge.nope", "--merchant", "theopenhost",
         "--url", "http://127.0.0.1:1"], 2, ["no sample for stripe charge.nope", "known:"]),
    "simulate: no gateway listening": Row(
        ["simulate", "stripe", "charge.succeeded", "--merchant", "theopenhost",
         "--url", "http://127.0.0.1:1"], 2, ["could not deliver", "127.0.0.1:1"]),
    "db upgrade: a database that does not answer": Row(
        ["db", "upgrade"], 2, ["the database postgresql://nobody:***@127.0.0.1:1/none cannot "
                               "be reached"],
        env=(("DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:1/none"),)),
    "no command at all": Row([], 2, ["required: COMMAND", "gateway --help"]),
    "an unknown command": Row(["nosuch"], 2, ["invalid choice: 'nosuch'"]),
    "an option a command does not take": Row(
        ["inbox", "--bogus"], 2, ["gateway: inbox: unrecognized arguments: --bogus",
                                  "gateway inbox --help"]),
    "an option a nested command does not take": Row(
        ["db", "upgrade", "--bogus"], 2, ["gateway: db upgrade: unrecognized arguments: "
                                          "--bogus"]),
}


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A migrated data directory, a missing one, and the input files the rows name."""
    base = tmp_path_factory.mktemp("cli")
    migrated = base / "migrated"
    upgrade(f"sqlite:///{migrated / 'gateway.db'}")
    header_only = base / "empty-export.csv"
    export = ROOT / "tests" / "fixtures" / "exports" / "stripe_balance_history.csv"
    header_only.write_text(export.read_text().splitlines()[0] + "\n")
    (base / "odd.csv").write_text("a,b,c\n1,2,3\n")
    (base / "case.json").write_text("{not json")
    return {"migrated": migrated, "missing": base / "missing", "header_only": header_only,
            "not_an_export": base / "odd.csv", "not_json": base / "case.json"}


def _gateway(argv: list[str], cwd: Path, data_dir: Path | None,
             extra: tuple[tuple[str, str], ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GATEWAY_") and k not in ("DATABASE_URL", "REDIS_URL", "PORT")}
    env.update({"LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), **dict(extra)})
    if data_dir is not None:
        env["GATEWAY_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "gateway", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", list(ROWS))
def test_a_user_error_is_one_line_and_exit_status_2(name, places, tmp_path):
    """Exit status as documented, exactly one line on standard error, no traceback."""
    row = ROWS[name]
    names = {k: str(v) for k, v in places.items()} | {"cwd": str(tmp_path)}
    argv = [arg.format(**names) for arg in row.argv]
    data_dir = places[row.data] if row.data else None
    result = _gateway(argv, tmp_path, data_dir, row.env)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == row.status, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gateway: "), lines[0]
    for text in row.says:
        assert text in lines[0], (text, lines[0])
    assert "secret" not in result.stderr  # a password in a database URL is never shown
    # Nothing was created on the way: not ./var, not the missing data directory.
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    assert not places["missing"].exists()


def test_gateway_help_lists_every_command():
    """`python -m gateway --help` works and names every command, each with its help."""
    result = _gateway(["--help"], ROOT, None)
    assert result.returncode == 0, result.stderr
    commands = _commands(_parser())
    assert {"report", "backfill", "serve", "inbox", "replay"} <= set(commands)
    for name in commands:
        assert f"    {name} " in result.stdout, name


def test_every_option_of_every_command_has_help_text():
    """No option or argument leaves a reader guessing what it does."""
    missing: list[str] = []
    for prog, parser in _all_parsers(_parser()):
        for action in parser._actions:
            if _is_subcommands(action):
                described = {a.dest for a in action._choices_actions if a.help}
                missing += [f"{prog} {name}" for name in action.choices if name not in described]
            elif not action.help:
                missing.append(f"{prog} {action.dest}")
    assert not missing, missing


def _is_subcommands(action: argparse.Action) -> TypeGuard[argparse._SubParsersAction[Any]]:
    return isinstance(action, argparse._SubParsersAction)


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if _is_subcommands(action):
            return dict(action.choices)
    return {}


def _all_parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for child in _commands(parser).values():
        found += _all_parsers(child)
    return found
