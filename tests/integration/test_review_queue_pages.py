"""``GET /v1/reviews`` a page at a time: oldest first, every decision once however the pages
fall (two decided in the same instant included), and a page that does not make sense is a
``400`` naming the parameter, never another merchant's decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger.models import Decision, DecisionStatus
from service.bootstrap import Container
from tests.support.claims import headers

T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)


def _waiting(container: Container, merchant: str, ids_and_times: list[tuple[str, datetime]],
             status: str = DecisionStatus.NEEDS_REVIEW) -> None:
    with container.sessions() as session, session.begin():
        for decision_id, at in ids_and_times:
            session.add(Decision(id=decision_id, merchant=merchant, account_ref="cus_q",
                                 pack="p", request_kind="refund", outcome="needs_review",
                                 case={}, decision={}, evaluated_at=at, status=status))


def _page(client: FlaskClient, **args: Any) -> dict[str, Any]:
    answer = client.get("/v1/reviews", query_string=args, headers=headers("theopenhost"))
    assert answer.status_code == 200, answer.get_json()
    body: dict[str, Any] = answer.get_json()
    return body


def test_pages_list_every_waiting_decision_once_oldest_first(client, container):
    waiting = [("dec_q_c", T0 + timedelta(minutes=2)), ("dec_q_a", T0),
               ("dec_q_b2", T0 + timedelta(minutes=1)), ("dec_q_b1", T0 + timedelta(minutes=1)),
               ("dec_q_d", T0 + timedelta(minutes=3))]
    _waiting(container, "theopenhost", waiting)
    _waiting(container, "theopenhost", [("dec_q_closed", T0)], status=DecisionStatus.CLOSED)
    _waiting(container, "cloudbehind", [("dec_q_theirs", T0)])
    seen, pages, after = [], [], None
    while True:
        body = _page(client, limit=2, **({"starting_after": after} if after else {}))
        ids = [d["id"] for d in body["reviews"]]
        seen += ids
        pages.append((ids, body["has_more"]))
        if not body["has_more"]:
            break
        after = ids[-1]
    assert pages == [(["dec_q_a", "dec_q_b1"], True), (["dec_q_b2", "dec_q_c"], True),
                     (["dec_q_d"], False)]
    assert _page(client)["reviews"] == _page(client, limit=200)["reviews"]
    assert [d["id"] for d in _page(client)["reviews"]] == seen


def test_a_page_after_a_decision_answered_meanwhile_still_follows_it(client, container):
    """The last decision of a page may be approved before the next page is asked for: the next
    page still starts after it."""
    _waiting(container, "theopenhost", [("dec_q_1", T0), ("dec_q_2", T0 + timedelta(hours=1))])
    first = _page(client, limit=1)
    with container.sessions() as session, session.begin():
        session.get(Decision, "dec_q_1").status = DecisionStatus.EXECUTED
    assert [d["id"] for d in _page(client, starting_after=first["reviews"][0]["id"])
            ["reviews"]] == ["dec_q_2"]


@pytest.mark.parametrize(("args", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"limit": "-1"}, "limit"), ({"page": "2"}, "page"),
    ({"starting_after": "dec_q_unknown"}, "starting_after"),
    ({"starting_after": "dec_q_theirs"}, "starting_after"),
    ({"starting_after": "x" * 65}, "starting_after"),
    ({"starting_after": "dec\u00e9"}, "starting_after")])
def test_a_page_that_makes_no_sense_is_refused_naming_it(client, container, args, field):
    """Out of range, not a number, unknown, or a decision that is not this merchant's (which
    says nothing of whose it is)."""
    _waiting(container, "cloudbehind", [("dec_q_theirs", T0)])
    answer = client.get("/v1/reviews", query_string=args, headers=headers("theopenhost"))
    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == field
    assert "cloudbehind" not in answer.get_data(as_text=True)
