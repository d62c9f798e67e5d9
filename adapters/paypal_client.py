"""The paypalrestsdk client, pointed at our configured host and sending through ``requests``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import paypalrestsdk
import requests

from service.config import PayPalSettings

_LIVE_HOSTS = frozenset({"api.paypal.com", "api-m.paypal.com"})


class PayPalClient(paypalrestsdk.Api):  # type: ignore[misc]  # paypalrestsdk has no types
    """``paypalrestsdk.Api`` for the OAuth token (cached until it expires) and REST calls.

    ``http_call`` is replaced because the SDK's own sends with no timeout and, outside live mode,
    logs request headers (the Basic credentials) and response bodies (the token) at DEBUG.
    Token caching and the SDK's status-to-exception mapping (``handle_response``) are kept.
    """

    def __init__(self, settings: PayPalSettings, session: requests.Session | None = None,
                 timeout: float = 10.0) -> None:
        host = urlsplit(settings.api_base).hostname or ""
        super().__init__(
            mode="live" if host in _LIVE_HOSTS else "sandbox",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            endpoint=settings.api_base,  # the SDK otherwise picks its own host from ``mode``
        )
        self._session = session or requests.Session()
        self._timeout = timeout

    def http_call(self, url: str, method: str, **kwargs: Any) -> Any:
        response = self._session.request(
            method, url, timeout=self._timeout, allow_redirects=False, **kwargs
        )
        return self.handle_response(response, response.content.decode("utf-8"))
