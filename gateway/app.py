"""The Flask app factory: defaults, then settings, then the container, then blueprints."""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from gateway import admin, health, webhooks
from gateway.responses import error
from service.bootstrap import Container, build
from service.config import Settings


def create_app(config: Settings | None = None, container: Container | None = None) -> Flask:
    """Build the web app. With no arguments, settings come from the environment."""
    container = container or build(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = container.settings.body_limit
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["gateway"] = container
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(admin.bp)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    code = (exc.name or "error").lower().replace(" ", "_")
    return error(exc.code or 500, code, exc.description or exc.name)
