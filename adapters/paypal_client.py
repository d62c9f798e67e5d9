"""The paypalrestsdk client, pointed at our configured host and sending through ``requests``."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import paypalrestsdk
import requests
from paypalrestsdk import exceptions

from service.config import PayPalSettings

_LIVE_HOSTS = frozenset({"api.paypal.com", "api-m.paypal.com"})


class PayPalClient(paypalrestsdk.Api):  # type: ignore[misc]  # paypalrestsdk has no types
    """``paypalrestsdk.Api`` for the OAuth token (cached until it expires) and REST calls.

    ``http_call`` is replaced because the SDK's own sends with no timeout and, outside live mode,
    logs request headers (the Basic credentials) and response bodies (the token) at DEBUG.
    Token caching and the SDK's status-to-exception mapping (``handle_response``) are kept.

    On a 401 the SDK drops its token and calls ``request`` again, and again on every 401 after
    that: with credentials PayPal keeps refusing, it would post the same call until Python's
    recursion limit. Here it gets one fresh token: a second 401 in the same call is raised as
    the SDK's plain ``ConnectionError``, which it does not catch, and the adapter translates.
    """

    def __init__(self, settings: PayPalSettings, session: requests.Session | None = None, *,
                 timeout: float) -> None:
        host = urlsplit(settings.api_base).hostname or ""
        super().__init__(
            mode="live" if host in _LIVE_HOSTS else "sandbox",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            endpoint=settings.api_base,  # the SDK otherwise picks its own host from ``mode``
        )
        self._session = session or requests.Session()
        self._timeout = timeout

    def request(self, url: str, method: str, body: Any = None, headers: Any = None,
                refresh_token: Any = None) -> Any:
        if _AGAIN.get():  # the SDK's own retry with a fresh token
            return super().request(url, method, body, headers, refresh_token)
        again = _AGAIN.set(False)
        try:
            return super().request(url, method, body, headers, refresh_token)
        finally:
            _AGAIN.reset(again)

    def http_call(self, url: str, method: str, **kwargs: Any) -> Any:
        response = self._session.request(
            method, url, timeout=self._timeout, allow_redirects=False, **kwargs
        )
        content = response.content.decode("utf-8")
        if response.status_code == 401 and "/oauth2/token" not in url:
            if _AGAIN.get():
                raise exceptions.ConnectionError(response, content)
            _AGAIN.set(True)
        return self.handle_response(response, content)


# Whether this call has had its 401 already (and the SDK its one fresh token).
_AGAIN: ContextVar[bool] = ContextVar("paypal_401_again", default=False)
