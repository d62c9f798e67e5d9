"""JSON answers of the web tier: one shape for every error."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"error": {"code": ..., "message": ...}}``: every error the web tier answers."""
    return {"error": {"code": code, "message": message, **extra}}


def http_error_body(exc: HTTPException) -> dict[str, Any]:
    """A werkzeug HTTP error (404, 405, 413...) in that shape, its name as the code."""
    return error_body((exc.name or "error").lower().replace(" ", "_"),
                      exc.description or exc.name)


def error(status: int, code: str, message: str, **extra: Any) -> tuple[Response, int]:
    """``error_body`` as a Flask answer with ``status``."""
    return jsonify(error_body(code, message, **extra)), status
