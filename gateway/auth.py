"""Bearer-token authentication for the admin API: the token names the merchant."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request

from gateway.responses import error
from service.config import Merchant, token_digest
from service.logs import bind


def merchant_for_token(merchants: dict[str, Merchant] | Any, token: str) -> Merchant | None:
    """The merchant whose admin token is ``token``.

    Digests are compared, never tokens: the presented token's HMAC-SHA256 (under the process's
    key, as each merchant's was at load) against every merchant's, each in constant time. Every
    digest is 32 bytes, so neither the token's length nor how much of it is right changes the
    time taken, and there is no early exit, so neither does which merchant matched."""
    digest = token_digest(token)
    found = None
    for merchant in merchants.values():
        if hmac.compare_digest(merchant.admin_token_digest, digest):
            found = merchant
    return found


def bearer_token() -> str | None:
    """The request's ``Authorization: Bearer <token>`` token, or None when it carries none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_merchant(view: Callable[..., Any]) -> Callable[..., Any]:
    """Reject the request with 401 unless it carries a merchant's bearer token."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            return error(401, "unauthorized", "send 'Authorization: Bearer <merchant token>'")
        merchant = merchant_for_token(current_app.extensions["gateway"].settings.merchants,
                                      token)
        if merchant is None:
            return error(401, "unauthorized", "the bearer token is not valid")
        g.merchant = merchant
        bind(merchant=merchant.name)
        return view(*args, **kwargs)

    return wrapped
