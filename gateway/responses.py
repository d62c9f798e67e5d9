"""JSON answers of the web tier: one shape for every error."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


def error(status: int, code: str, message: str, **extra: Any) -> tuple[Response, int]:
    """``{"error": {"code": ..., "message": ...}}`` with ``status``."""
    return jsonify({"error": {"code": code, "message": message, **extra}}), status
