"""The log formatter and its context: what a line carries, and what it never does."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from service.errors import ConfigError
from service.logs import (
    JsonFormatter,
    TextFormatter,
    bind,
    current_context,
    formatter,
    log_context,
    new_log_scope,
    redact,
    redact_values,
)


@pytest.fixture(autouse=True)
def _nothing_bound() -> Iterator[None]:
    """Each test starts with an empty context, whatever an earlier test left in the thread."""
    with new_log_scope():
        yield


def _record(message: str, *args: object, exc_info: object = None,
            extra: dict[str, object] | None = None) -> logging.LogRecord:
    """A record as ``logger.warning(message, *args, exc_info=..., extra=...)`` makes it."""
    return logging.getLogger("workers.drain").makeRecord(
        "workers.drain", logging.WARNING, __file__, 1, message, args,
        exc_info, extra=extra)  # type: ignore[arg-type]


def test_a_json_line_always_has_merchant_and_event_id_even_when_unknown():
    """Outside any context both are null; the other fields are left out."""
    line = json.loads(JsonFormatter().format(_record("hello %s", "world")))
    assert line["message"] == "hello world" and line["level"] == "WARNING"
    assert line["logger"] == "workers.drain" and line["time"].endswith("Z")
    assert (line["merchant"], line["event_id"]) == (None, None)
    assert "inbox_id" not in line and "exception" not in line


def test_a_json_line_carries_what_the_context_binds():
    """Fields bound in the block appear; bind adds to the innermost block."""
    with log_context(merchant="oneclick", provider="stripe"):
        bind(event_id="evt_1", inbox_id=7)
        line = json.loads(JsonFormatter().format(_record("x")))
    assert (line["merchant"], line["event_id"], line["provider"], line["inbox_id"]) == (
        "oneclick", "evt_1", "stripe", 7)


def test_a_context_is_restored_when_its_block_ends():
    """Nothing bound inside a block, by it or by bind, survives it."""
    with log_context(merchant="outer"):
        with log_context(event_id="evt_inner"):
            bind(action_id="act_1")
        assert dict(current_context()) == {"merchant": "outer"}
    assert dict(current_context()) == {}  # what the fixture's scope started with


def test_a_new_scope_hides_what_was_bound_outside_it():
    """A job starts with nothing from whatever ran before it in the thread."""
    with log_context(merchant="web"):
        with new_log_scope(job="drain"):
            assert dict(current_context()) == {"job": "drain"}
        assert current_context()["merchant"] == "web"


def test_an_unknown_field_is_refused():
    """A misspelt field name fails loudly instead of vanishing from every line."""
    with pytest.raises(ValueError, match="merchnat"), log_context(merchnat="x"):
        pass


def test_an_exception_is_written_on_the_same_line():
    """The traceback is a field of the one JSON object, with secrets blanked."""
    try:
        raise RuntimeError("bad key sk_test_abcdef123")
    except RuntimeError:
        text = JsonFormatter().format(_record("failed", exc_info=sys.exc_info()))
    assert "\n" not in text
    line = json.loads(text)
    assert "RuntimeError" in line["exception"] and "abcdef123" not in line["exception"]


@pytest.mark.parametrize(("text", "secret"), [
    ("secret whsec_test_theopenhost_current", "theopenhost_current"),
    ("key sk_live_51Habc", "51Habc"),
    ("Authorization: Bearer test-admin-oneclick-0000", "test-admin-oneclick-0000"),
    ("Stripe-Signature: t=1700000000,v1=" + "ab12" * 16, "ab12" * 16),
])
def test_secret_shapes_are_blanked(text: str, secret: str):
    """Stripe secrets, bearer tokens and signatures keep their prefix and lose their value."""
    assert secret not in redact(text) and "[redacted]" in redact(text)


def test_text_format_puts_the_context_after_the_message():
    """LOG_FORMAT=text: a readable line, the context as key=value pairs."""
    with log_context(merchant="oneclick", event_id="evt_9"):
        text = TextFormatter().format(_record("applied"))
    assert text.endswith("applied [merchant=oneclick event_id=evt_9]")


def test_the_format_is_chosen_by_name_and_a_wrong_name_is_refused():
    """json and text are the two formats; anything else is a configuration error."""
    assert isinstance(formatter("json"), JsonFormatter)
    assert isinstance(formatter("TEXT"), TextFormatter)
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        formatter("xml")


def test_fields_given_with_extra_are_written_as_json():
    """``extra=`` fields (a notice's identifiers, RQ's job fields) reach the line as JSON
    values; what JSON cannot hold is written as its text."""
    notice = {"notice": "ntc_1", "merchant": "oneclick", "send_at": "2026-11-01T00:00:00Z",
              "clause": None, "amounts": [1, 2.5]}

    class Opaque:
        def __str__(self) -> str:
            return "opaque-thing"

    line = json.loads(JsonFormatter().format(_record(
        "notice sent", extra={"notice": notice, "job_id": "j1", "thing": Opaque(),
                              "keyed": {(1, 2): "tuple key"}})))
    assert line["notice"] == notice and line["job_id"] == "j1"
    assert line["thing"] == "opaque-thing" and "tuple key" in line["keyed"]
    assert line["message"] == "notice sent" and line["logger"] == "workers.drain"


def test_extra_fields_are_blanked_like_the_message():
    """A secret in an extra field, in a value or a key, nested or not, is blanked."""
    line = json.loads(JsonFormatter().format(_record("x", extra={
        "request": {"headers": {"Authorization": "Bearer test-admin-oneclick-0000"},
                    "secrets": ["whsec_test_oneclick_current"]},
        "sk_live_51Hkey": "as a key"})))
    text = json.dumps(line)
    assert "test-admin-oneclick-0000" not in text and "oneclick_current" not in text
    assert "51Hkey" not in text and "[redacted]" in line["request"]["secrets"][0]


def test_an_extra_never_replaces_a_field_the_line_has():
    """The line's own fields win; an extra of the same name is kept beside them. A context
    field with no value is filled by the extra of its name."""
    with log_context(merchant="oneclick"):
        line = json.loads(JsonFormatter().format(_record(
            "x", extra={"merchant": "other", "level": "made-up", "event_id": "evt_9"})))
    assert (line["merchant"], line["extra_merchant"]) == ("oneclick", "other")
    assert (line["level"], line["extra_level"]) == ("WARNING", "made-up")
    assert line["event_id"] == "evt_9"


def test_named_values_are_blanked_wherever_they_appear():
    """``redact_values`` (the web tier names its configured secrets) blanks those exact values,
    whatever their shape, in the message, the traceback and extra fields; short values are not
    taken (they would blank ordinary words)."""
    redact_values(["test-admin-oneclick-0000", "sandbox-secret-oneclick", "short"])
    try:
        try:
            raise RuntimeError("token test-admin-oneclick-0000")
        except RuntimeError:
            text = JsonFormatter().format(_record(
                "agent (%s) short", "sandbox-secret-oneclick", exc_info=sys.exc_info(),
                extra={"ua": "x sandbox-secret-oneclick"}))
    finally:
        redact_values([])
    assert "test-admin-oneclick-0000" not in text and "sandbox-secret-oneclick" not in text
    line = json.loads(text)
    assert line["message"] == "agent ([redacted]) short" and line["ua"] == "x [redacted]"
    assert redact("sandbox-secret-oneclick") == "sandbox-secret-oneclick"  # forgotten again
