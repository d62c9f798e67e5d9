"""The Flask app factory: defaults, then settings, then the container, then blueprints."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import admin, console, health, metrics, webhooks
from gateway.responses import http_error_body
from service.bootstrap import Container, build
from service.config import PayPalVerification, Settings
from service.errors import VerificationError
from service.logs import start_request

log = logging.getLogger(__name__)


def create_app(config: Settings | None = None, container: Container | None = None) -> Flask:
    """Build the web app. With no arguments, settings come from the environment."""
    container = container or build(config)
    _read_paypal_anchors(container)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = container.settings.body_limit
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider's, not the base
    app.extensions["gateway"] = container
    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(console.bp)
    app.before_request(start_request)  # log lines name the merchant a view binds, no other
    app.register_error_handler(HTTPException, _http_error)
    webhooks.install(container, app)  # inside the proxy fix below: it sees the client's address
    if container.settings.trusted_proxies:  # the client address is the one they saw
        hops = container.settings.trusted_proxies
        # Flask's documented way to add WSGI middleware: wrap its wsgi_app.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)  # type: ignore[method-assign]
    return app


def _read_paypal_anchors(container: Container) -> None:
    """Read the PayPal trust anchors now and hold them, so that a CA file removed or replaced
    after start-up changes nothing for this process. If they cannot be read (a worker that
    gunicorn starts again after the file went), the worker still starts: Stripe deliveries and
    the admin API go on, and each PayPal delivery is answered 503 (PayPal retries) with an
    error logged, rather than the whole server refusing to start."""
    if not any(m.paypal.verification is PayPalVerification.LOCAL and m.paypal.webhook_id
               for m in container.settings.merchants.values()):
        return
    try:
        container.paypal_local_verifier  # noqa: B018  # a cached property, built here
    except VerificationError:  # the reason is logged where it was found
        log.error("PayPal deliveries will be answered 503 until the CA file can be read")


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return jsonify(http_error_body(exc)), exc.code or 500
