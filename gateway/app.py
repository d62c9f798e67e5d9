"""The Flask app factory: defaults, then settings, then the container, then blueprints."""

from __future__ import annotations

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import admin, console, health, metrics, webhooks
from gateway.responses import http_error_body
from service.bootstrap import Container, build
from service.config import PayPalVerification, Settings
from service.logs import start_request


def create_app(config: Settings | None = None, container: Container | None = None) -> Flask:
    """Build the web app. With no arguments, settings come from the environment."""
    container = container or build(config)
    if any(m.paypal.verification is PayPalVerification.LOCAL and m.paypal.webhook_id
           for m in container.settings.merchants.values()):
        # The trust anchors are read now and held: a CA file that goes missing (or is replaced
        # by something unreadable) after start-up cannot fail deliveries one by one.
        container.paypal_local_verifier  # noqa: B018  # a cached property, built here
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


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return jsonify(http_error_body(exc)), exc.code or 500
