"""Signing in to the console with Flask's test client, and reading its forms' CSRF token."""

from __future__ import annotations

import re
from typing import Any

from tests.support.claims import TOKENS

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: Any) -> str:
    """The CSRF token in a console page's forms."""
    found = _CSRF.search(page.get_data(as_text=True))
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: Any, merchant: str = "theopenhost", reviewer: str = "kim@support") -> str:
    """Sign ``client`` in as ``reviewer`` with the merchant's admin token; the session's CSRF
    token (every form posts it)."""
    form = client.get("/console/sign-in")
    resp = client.post("/console/sign-in", data={
        "csrf_token": csrf_of(form), "reviewer": reviewer, "token": TOKENS[merchant]})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return csrf_of(client.get("/console/reviews"))
