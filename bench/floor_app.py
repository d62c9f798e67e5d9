"""The ingest benchmark's floor: a bare Flask app that answers every webhook POST with 200.

Run under the same gunicorn settings as the gateway (the Procfile's web line), it measures what
the web server, Flask and the load generator cost on this machine before any verification,
storage or enqueueing.
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.post("/webhooks/<merchant>/<provider>")
def receive(merchant: str, provider: str) -> tuple[str, int]:
    return "", 200


@app.get("/healthz")
def healthz() -> tuple[str, int]:
    return "ok", 200
