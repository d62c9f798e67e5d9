"""``GET /metrics``: the Prometheus text exposition of every process's metrics and queue lag.

Open unless ``GATEWAY_METRICS_TOKEN`` is set; then it takes ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth import bearer_token
from gateway.responses import error
from service.scrape import scrape_registry

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response | tuple[Response, int]:
    container = current_app.extensions["gateway"]
    expected = container.settings.metrics_token
    if expected:
        token = bearer_token()
        if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            return error(401, "unauthorized", "send 'Authorization: Bearer <metrics token>'")
    body = generate_latest(scrape_registry(container))
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)
