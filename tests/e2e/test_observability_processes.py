"""Real processes: gunicorn's two workers and an RQ worker add their metrics up in one /metrics,
and every line they write is JSON."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sandbox import samples
from tests.e2e.conftest import process_env, procfile_line, wait_ready, worker_command
from tests.support import stripe as sig
from tests.support.outages import free_port

pytestmark = pytest.mark.slow
EVENTS = 12


def _counter(base: str, name: str, **labels: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _post(base: str, event: dict[str, Any]) -> None:
    raw = sig.body_of(event)
    resp = requests.post(f"{base}/webhooks/theopenhost/stripe", data=raw, timeout=5,
                         headers={"Stripe-Signature": sig.signature(raw),
                                  "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # fails on any line that is not JSON


def test_web_and_worker_metrics_add_up_and_every_line_is_json(container, spawn, tmp_path):
    """Twelve deliveries over gunicorn's two workers and their drains by an RQ worker: every
    scrape counts all of them, whichever process answers, and all output is JSON."""
    port = free_port()
    env = process_env(container.settings, PORT=str(port), LOG_LEVEL="INFO")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([procfile_line("web")], env, "web", shell=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    events = [samples.stripe_event("charge.succeeded", samples.Scenario(key=f"mp-{i}"))
              for i in range(EVENTS)]
    for event in events:
        _post(base, event)
    received = {_counter(base, "gateway_webhooks_received_total", merchant="theopenhost")
                for _ in range(6)}
    assert received == {EVENTS}

    spawn(worker_command(), env, "worker")
    deadline = time.monotonic() + 30
    while _counter(base, "gateway_events_processed_total", outcome="processed") < EVENTS:
        assert time.monotonic() < deadline, "the worker's counts never reached /metrics"
        time.sleep(0.3)

    web, worker = _json_lines(tmp_path / "web-0.log"), _json_lines(tmp_path / "worker-1.log")
    # An accepted delivery has no line of its own (the metrics count it); its access line names
    # the merchant and the event.
    access = [line for line in web if line["logger"] == "gunicorn.access"]
    assert {line["event_id"] for line in access if line["merchant"] == "theopenhost"} == {
        e["id"] for e in events}
    assert any(line["logger"] == "gunicorn.error" for line in web)
    applied = [line for line in worker if line["logger"] == "workers.drain"]
    assert {line["event_id"] for line in applied} == {e["id"] for e in events}
    assert any(line["logger"].startswith("rq.") for line in worker)
