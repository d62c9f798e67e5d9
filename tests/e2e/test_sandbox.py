"""`gateway sandbox` as a user meets it: started on its own, it prints tokens, ids and ready
commands; the printed refund request is decided and refunded, the waiting review approved, the
printed `report reconcile` and `backfill --list` succeed against it; Ctrl-C (SIGINT) stops every
process it started, the embedded Redis included, and gunicorn leaves no control socket in the
home directory. `gateway fakes` serves the fake providers alone until SIGTERM."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from service.embedded_redis import stop_embedded_redis
from tests.support.outages import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="finds the sandbox's processes in /proc")


def _env(home: Path) -> dict[str, str]:
    """A user's shell: no gateway settings, a home of its own (where gunicorn's default control
    socket would go), no XDG runtime directory."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GATEWAY_", "PROMETHEUS_")) and k not in (
               "REDIS_URL", "DATABASE_URL", "XDG_RUNTIME_DIR", "LOG_LEVEL", "LOG_FORMAT")}
    env["HOME"] = str(home)
    return env


def _until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def _session(leader: int) -> set[int]:
    """Every process in the session ``leader`` started (the sandbox runs in one of its own)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[3]) == leader:  # after ")": state, ppid, pgrp, session
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _curl(line: str, **replace: str) -> requests.Response:
    """Run a printed curl line with requests: its URL, -H headers and -d body."""
    for name, value in replace.items():
        line = line.replace(f"<{name}>", value)
    args = shlex.split(line)
    assert args[:2] == ["curl", "-s"], line
    url, headers, body = args[2], {}, None
    rest = iter(args[3:])
    for flag in rest:
        value = next(rest)
        if flag == "-H":
            name, _, header = value.partition(": ")
            headers[name] = header
        else:
            assert flag == "-d", line
            body = value
    if body is None:
        return requests.get(url, headers=headers, timeout=10)
    return requests.post(url, data=body, headers=headers, timeout=10)


def _command(printed: str) -> tuple[dict[str, str], list[str]]:
    """A printed `VAR=... gateway ...` command as (its variables, the gateway arguments)."""
    words = shlex.split(printed.replace("\\\n", " "))
    variables = dict(w.split("=", 1) for w in words if re.fullmatch(r"[A-Z_]+=.*", w))
    args = [w for w in words if not re.fullmatch(r"[A-Z_]+=.*", w)]
    assert args[0] == "gateway", printed
    return variables, args[1:]


def _gateway(env: dict[str, str], printed: str) -> subprocess.CompletedProcess[str]:
    variables, args = _command(printed)
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env={**env, **variables},
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def _printed(log: Path) -> str:
    text = log.read_text(errors="replace")
    return text if "backfill" in text else ""


def _lines(text: str, comment: str) -> str:
    """The command printed under the ``# comment`` line that contains ``comment``."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("#")
              and comment in line)
    command = lines[at + 1].strip()
    if command.endswith("\\"):
        command += "\n" + lines[at + 2].strip()
    return command


def test_the_sandbox_serves_refunds_reviews_reports_and_backfill_then_stops_everything(
        tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    data_dir = tmp_path / "sandbox"
    port, fakes_port = free_port(), free_port()
    log = tmp_path / "sandbox.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "sandbox", "--data-dir", str(data_dir),
             "--port", str(port), "--fakes-port", str(fakes_port)],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started: set[int] = set()
    try:
        text = _until(lambda: proc.poll() is None and _printed(log) or (
            proc.poll() is not None and pytest.fail(f"the sandbox exited: {log.read_text()}")),
            "the sandbox to print its commands", timeout=180)
        started = _session(proc.pid) | {int((data_dir / "redis" / "redis.pid").read_text())}
        assert f"http://127.0.0.1:{port}" in text and f"http://127.0.0.1:{fakes_port}" in text
        token = re.search(r"theopenhost\s+(test-admin-\S+)", text)
        assert token is not None, text

        filed = _curl(_lines(text, "file a refund request"))
        assert filed.status_code == 202, filed.text
        request_id = filed.json()["id"]
        shown = _until(lambda: (r := _curl(_lines(text, "its decision"), id=request_id).json())
                       and r["decision"] and all(a["status"] == "succeeded"
                                                 for a in r["decision"]["actions"]) and r,
                       "the refund request to be decided and refunded")
        assert shown["decision"]["decision"]["outcome"] == "full_refund"
        assert [a["kind"] for a in shown["decision"]["actions"]] == ["refund"]

        waiting = _curl(_lines(text, "decisions waiting")).json()["reviews"]
        assert len(waiting) == 1
        approved = _curl(_lines(text, "approve the one waiting"))
        assert approved.status_code == 200, approved.text
        assert approved.json()["decision"]["id"] == waiting[0]["id"]
        decision_url = f"http://127.0.0.1:{port}/v1/decisions/{waiting[0]['id']}"
        _until(lambda: [a["status"] for a in requests.get(
            decision_url, headers={"Authorization": f"Bearer {token[1]}"}, timeout=10
        ).json()["actions"]] == ["succeeded"], "the approved refund to be made")

        report = _gateway(env, _lines(text, "reconcile the ledger"))
        assert report.returncode == 0, report.stderr + report.stdout
        assert report.stdout.splitlines()[0].startswith("kind,provider,provider_id")
        assert "0 discrepancies" in report.stderr
        listed = _gateway(env, _lines(text, "never reached the gateway"))
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout == ""
        _report_over_http(f"http://127.0.0.1:{port}", token[1], report.stdout)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            status = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stop_embedded_redis(data_dir)
            raise
    assert status == 0, log.read_text()
    assert len(started) >= 6, started  # sandbox, gunicorn and its workers, worker, clock, Redis
    left = _until(lambda: not [p for p in started if _alive(p)] or None, "processes to exit",
                  timeout=20) and [p for p in started if _alive(p)]
    assert left == [], f"still running: {left}"
    assert not (home / ".gunicorn").exists(), "gunicorn wrote a control socket in the home"


def _report_over_http(base: str, token: str, csv: str) -> None:
    """The same report as a job: the worker reads the fakes too, and answers what the CLI did."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "report-1"}
    today = datetime.now(UTC).date()
    period = {"from": (today - timedelta(days=30)).isoformat(),
              "to": (today + timedelta(days=1)).isoformat()}
    started = requests.post(f"{base}/v1/reports/reconciliation", headers=headers, timeout=10,
                            json=period)
    assert started.status_code == 202, started.text
    url = f"{base}{started.headers['Location']}?format=csv"
    answer = _until(lambda: (r := requests.get(url, headers=headers, timeout=10)).status_code
                    != 202 and r, "the report job")
    assert answer.status_code == 200, answer.text
    assert answer.text.splitlines()[0] == csv.splitlines()[0]
    assert len(answer.text.splitlines()) == 1, answer.text  # no discrepancy


@pytest.mark.parametrize("how", ["SIGTERM to the sandbox", "Ctrl-C in a terminal"])
def test_a_stop_signal_leaves_no_process_running(tmp_path, how):
    """SIGTERM as a supervisor sends it, or a terminal's Ctrl-C, which reaches the sandbox and
    every process of its group at once."""
    data_dir = tmp_path / "sandbox"
    log = tmp_path / "sandbox.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "sandbox", "--data-dir", str(data_dir),
             "--port", str(free_port()), "--fakes-port", str(free_port())],
            env=_env(tmp_path), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        _until(lambda: _printed(log) or proc.poll() is not None, "the sandbox", timeout=180)
        assert proc.poll() is None, log.read_text()
        started = _session(proc.pid) | {int((data_dir / "redis" / "redis.pid").read_text())}
    finally:
        if how.startswith("SIGTERM"):
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        status = proc.wait(timeout=60)
    assert status == 0, log.read_text()
    # Generous: on a loaded machine gunicorn's workers and Redis (writing its append-only file)
    # take their time; what matters is that none is left.
    deadline = time.monotonic() + 60
    while left := [p for p in started if _alive(p)]:
        assert time.monotonic() < deadline, f"still running: {_cmdlines(left)}"
        time.sleep(0.2)


def _cmdlines(pids: Any) -> dict[int, str]:
    out = {}
    for pid in pids:
        try:
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            out[pid] = "?"
    return out


def test_gateway_fakes_serves_the_fake_providers_until_sigterm(tmp_path):
    port = free_port()
    merchants = tmp_path / "merchants.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "fakes", "--port", str(port), "--merchants-out",
         str(merchants)], env=_env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}" in proc.stdout.readline()
        answer = requests.get(f"http://127.0.0.1:{port}/v1/refunds", timeout=10,
                              headers={"Authorization": "Bearer sk_test_x"})
        assert answer.status_code == 200 and answer.json()["data"] == []
        assert f'api_base = "http://127.0.0.1:{port}"' in merchants.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert status == 0
