"""The console in a real browser (Debian's headless chromium, driven through Debian's
chromedriver by Selenium) against the real stack: gunicorn as the Procfile runs it, a queue
worker and the clock, the providers' APIs answered by the local fake.

One support session, as a person would work: sign in with the keyboard, approve a review with a
partial refund and watch the fake provider's refund id appear, deny another, find an account by
e-mail, replay a dead event and watch it processed, build a month's reconciliation and download
its CSV; then the pages at a phone's width. Every page is screenshotted into
``build/console-screenshots/`` (or CONSOLE_SCREENSHOT_DIR) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox import samples
from sandbox.simulator import send_stripe
from tests.support.claims import FULL_IDENTITY, TOKENS
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromedriver (apt-get install -y chromium chromium-driver)")
MERCHANT = "theopenhost"
DAY = 86400


def _shots() -> Path:
    path = Path(os.environ.get("CONSOLE_SCREENSHOT_DIR") or ROOT / "build" / "console-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _paid_and_claimed(base: str, secret: str, fake: Any, key: str, email: str) -> Any:
    """A subscription paid 3 days ago, and a refund claim the policy leaves to a person."""
    scenario = samples.Scenario(key=key, customer_email=email, amount=12000,
                                period_start=int(time.time() - 3 * DAY))
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        event = samples.stripe_event(event_type, scenario)
        fake.observe(event)
        assert send_stripe(f"{base}/webhooks/{MERCHANT}/stripe", event, secret).status == 200
    filed = requests.post(f"{base}/v1/refund-requests", timeout=10, headers=_admin(), json={
        "account": scenario.customer_id, "payment": scenario.charge_id,
        "reason": "not what I ordered", "identity": FULL_IDENTITY,
        "product_category": "custom_widget"})
    assert filed.status_code == 202, filed.text
    return scenario


def _admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[MERCHANT]}"}


def _reviews(base: str) -> list[dict[str, Any]]:
    resp = requests.get(f"{base}/v1/reviews", headers=_admin(), timeout=10)
    return list(resp.json()["reviews"])


def test_a_support_session_in_the_browser(impatient_gateway, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, settings, fake = impatient_gateway
    secret = settings.merchants[MERCHANT].stripe.webhook_secrets[0]
    approve = _paid_and_claimed(base, secret, fake, "browser-approve", "ada@example.com")
    _paid_and_claimed(base, secret, fake, "browser-deny", "bob@example.com")
    until(lambda: len(_reviews(base)) == 2, "two decisions in review")
    # An invoice about a subscription the ledger does not know yet: it fails, and dies at once
    # here (GATEWAY_MAX_ATTEMPTS=1); the subscription arrives after, so a replay succeeds.
    orphan = samples.Scenario(key="browser-orphan", period_start=int(time.time() - DAY))
    early = samples.stripe_event("invoice.upcoming", orphan, cycle=1)
    assert send_stripe(f"{base}/webhooks/{MERCHANT}/stripe", early, secret).status == 200
    until(lambda: _event_status(base, early["id"]) == "dead", "the early event to die")
    sub = samples.stripe_event("customer.subscription.created", orphan)
    assert send_stripe(f"{base}/webhooks/{MERCHANT}/stripe", sub, secret).status == 200
    shots = _shots()
    b = browser

    # Sign in with the keyboard alone; the review queue is the first page.
    b.get(f"{base}/console/reviews")
    assert "/console/sign-in" in b.current_url
    b.save_screenshot(str(shots / "01-sign-in.png"))
    b.find_element(By.ID, "reviewer").send_keys("kim@support", Keys.TAB, TOKENS[MERCHANT],
                                                Keys.ENTER)
    until(lambda: b.current_url.endswith("/console/reviews"), "the review queue")
    assert "Review queue" in b.page_source and approve.customer_id in b.page_source
    b.save_screenshot(str(shots / "02-review-queue.png"))

    # Approve the first with a partial refund: the fake provider's refund id appears.
    first, second = _reviews(base)
    target = first if first["account"] == approve.customer_id else second
    other = second if target is first else first
    b.get(f"{base}/console/decisions/{target['id']}")
    b.find_element(By.ID, "refund").send_keys("45.00")
    b.find_element(By.ID, "approve-note").send_keys("partial: the widget was used")
    b.save_screenshot(str(shots / "03-decision-in-review.png"))
    b.find_element(By.ID, "approve-note").submit()
    refund_id = until(lambda: _provider_ref(b), "the provider's refund id", timeout=60)
    assert refund_id.startswith("re_fake_")
    assert "75.00 USD" in b.find_element(By.ID, "left-to-refund").text
    b.save_screenshot(str(shots / "04-decision-refunded.png"))
    assert [r["amount"] for r in fake.refunds.values()] == [4500]

    # Deny the other, with a note.
    b.get(f"{base}/console/decisions/{other['id']}")
    b.find_element(By.ID, "deny-note").send_keys("outside the policy")
    b.find_element(By.ID, "deny-note").submit()
    until(lambda: "reviewed by kim@support" in b.page_source, "the denial")
    assert b.find_element(By.ID, "decision-status").text != "needs review"
    b.save_screenshot(str(shots / "05-decision-denied.png"))

    # Find an account by e-mail.
    b.get(f"{base}/console/accounts")
    b.find_element(By.ID, "q").send_keys("ada@example.com", Keys.ENTER)
    until(lambda: f"/console/accounts/{approve.customer_id}" in b.current_url, "the account")
    assert approve.charge_id in b.page_source and "45.00 USD" in b.page_source
    b.save_screenshot(str(shots / "06-account.png"))

    # Replay the dead event and see it processed.
    b.get(f"{base}/console/events?status=dead")
    b.save_screenshot(str(shots / "07-events-dead.png"))
    b.find_element(By.LINK_TEXT, early["id"]).click()
    b.find_element(By.PARTIAL_LINK_TEXT, "Replay this event").click()
    b.save_screenshot(str(shots / "08-replay-confirm.png"))
    b.find_element(By.XPATH, "//button[normalize-space()='Yes, replay']").click()
    # the form posts, then lands on the event's page: wait for it before reloading it (a reload
    # of the confirmation page while the post is on its way would not replay anything)
    until(lambda: not b.current_url.split("?")[0].endswith("/replay")
          and b.find_elements(By.ID, "event-status"), "the event's page after the replay")
    until(lambda: _shown_status(b) == "processed", "the replayed event processed")
    b.save_screenshot(str(shots / "09-event-processed.png"))

    # This month's reconciliation, then its CSV.
    b.get(f"{base}/console/reports")
    today = datetime.now(UTC).date()
    _set_date(b, "from", today.replace(day=1).isoformat())
    _set_date(b, "to", _next_month(today).isoformat())
    b.find_element(By.XPATH, "//button[normalize-space()='Build the report']").click()
    until(lambda: "Reconciliation report" in b.page_source, "the report", timeout=90)
    b.save_screenshot(str(shots / "10-reconciliation.png"))
    csv_link = b.find_element(By.LINK_TEXT, "Download CSV").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in b.get_cookies()}
    csv = requests.get(str(csv_link), cookies=cookies, timeout=30)
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in csv.headers["Content-Disposition"] and csv.text.strip()

    # A phone's width: nothing wider than the screen.
    b.set_window_size(390, 844)
    for path, name in ((f"/console/decisions/{target['id']}", "11-phone-decision"),
                       ("/console/events", "12-phone-events"),
                       (f"/console/accounts/{approve.customer_id}", "13-phone-account")):
        b.get(f"{base}{path}")
        b.save_screenshot(str(shots / f"{name}.png"))
        assert b.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"), path


def _provider_ref(b: Any) -> str:
    from selenium.webdriver.common.by import By

    b.refresh()
    cells = [c.text for c in b.find_elements(By.CSS_SELECTOR, "#actions .provider-ref")]
    return next((c for c in cells if c.startswith("re_")), "")


def _shown_status(b: Any) -> str:
    from selenium.webdriver.common.by import By

    b.refresh()
    shown = b.find_elements(By.ID, "event-status")  # none while the page is still loading
    return str(shown[0].text) if shown else ""


def _event_status(base: str, event_id: str) -> str | None:
    resp = requests.get(f"{base}/v1/events/{event_id}", headers=_admin(), timeout=10)
    return resp.json()["events"][0]["status"] if resp.status_code == 200 else None


def _set_date(b: Any, name: str, value: str) -> None:
    """A date input's value, as a person's date picker would leave it."""
    from selenium.webdriver.common.by import By

    field = b.find_element(By.NAME, name)
    b.execute_script("arguments[0].value = arguments[1]", field, value)


def _next_month(day: Any) -> Any:
    first = day.replace(day=1)
    return first.replace(year=first.year + 1, month=1) if first.month == 12 else \
        first.replace(month=first.month + 1)
