"""The record model (slackops.records) and redaction (slackops.redact)."""

from __future__ import annotations

import logging
import math

import pytest

from slackops import records
from slackops.redact import REDACTED, RedactingFilter, redact_record, redact_text, redact_value, url_host

# -- records --------------------------------------------------------------------------------------------


def test_every_kind_field_is_typed_and_documented() -> None:
    for kind, fields in records.KINDS.items():
        assert f"``{kind}``" in (records.__doc__ or ""), f"{kind} missing from the module docstring"
        for name, typ in fields.items():
            assert typ in (str, int, float, bool), (kind, name)
            assert records.ALL_FIELDS[name] is typ, f"{name} has two types"
            assert name not in records.COMMON, f"{kind}.{name} shadows a common field"
    for (kind, name), allowed in records.ENUMS.items():
        assert records.KINDS[kind][name] is str and allowed


def test_make_builds_a_valid_record_and_drops_none() -> None:
    rec = records.make(
        "ack", t=5, source="bot", conn="c1", envelope_id="e1", ok=True, error=None, instance="i"
    )
    assert rec == {"t": 5.0, "kind": "ack", "source": "bot", "conn": "c1", "envelope_id": "e1", "ok": True,
                   "instance": "i"}  # fmt: skip
    assert isinstance(rec["t"], float)
    assert records.validate(rec) == []


def test_make_rejects_unknown_kinds_and_fields() -> None:
    with pytest.raises(records.RecordError, match="unknown record kind 'acks'"):
        records.make("acks", t=1, source="bot")
    with pytest.raises(records.RecordError, match="ack records have no field 'rtt_ms'"):
        records.make("ack", t=1, source="bot", rtt_ms=3.0)


@pytest.mark.parametrize(
    ("rec", "problem"),
    [
        ({"kind": "ack", "source": "b"}, "missing field 't'"),
        ({"t": 1.0, "kind": "nope", "source": "b"}, "unknown kind 'nope'"),
        ({"t": "1", "kind": "ack", "source": "b"}, "ack.t should be float, got str"),
        ({"t": True, "kind": "ack", "source": "b"}, "ack.t should be float, got bool"),
        ({"t": 1.0, "kind": "ack", "source": 3}, "ack.source should be str, got int"),
        ({"t": 1.0, "kind": "ack", "source": "b", "ok": 1}, "ack.ok should be bool, got int"),
        ({"t": 1.0, "kind": "hello", "source": "b", "num_connections": True}, "should be int, got bool"),
        ({"t": 1.0, "kind": "hello", "source": "b", "num_connections": 1.5}, "should be int, got float"),
        ({"t": 1.0, "kind": "close", "source": "b", "by": "alien"}, "close.by is 'alien'; expected one of"),
        ({"t": 1.0, "kind": "process", "source": "b", "phase": "done"}, "expected one of end, fail"),
        ({"t": math.inf, "kind": "ack", "source": "b"}, "ack.t should be a finite number"),
        ({"t": 1.0, "kind": "llm", "source": "b", "cost_usd": math.nan}, "llm.cost_usd should be a finite"),
    ],
)
def test_validate_names_each_problem(rec: dict, problem: str) -> None:
    assert any(problem in p for p in records.validate(rec)), records.validate(rec)


def test_validate_accepts_ints_for_floats_and_unknown_fields() -> None:
    rec = {"t": 1, "kind": "ack", "source": "b", "ack_ms": 2, "from_the_future": [1], "clean": "x"}
    assert records.validate(rec) == []


@pytest.mark.parametrize("line", [b"[1, 2]", b'"ack"', b"3", b"null"])
def test_loads_rejects_non_objects(line: bytes) -> None:
    with pytest.raises(records.RecordError, match="expected a JSON object"):
        records.loads(line)


def test_loads_rejects_non_json_and_invalid_records() -> None:
    with pytest.raises(records.RecordError, match="not JSON"):
        records.loads(b'{"t": 1,')
    with pytest.raises(records.RecordError, match="missing field 'source'"):
        records.loads(b'{"t": 1, "kind": "ack"}')


def test_loads_restores_own_field_types_and_keeps_foreign_ones() -> None:
    rec = records.loads('{"t": 1, "kind": "ack", "source": "b", "ack_ms": 2, "clean": 0, "x": null}')
    assert rec == {"t": 1.0, "kind": "ack", "source": "b", "ack_ms": 2.0, "clean": 0}
    assert isinstance(rec["t"], float) and isinstance(rec["ack_ms"], float)
    assert rec["clean"] == 0 and not isinstance(rec["clean"], bool)  # clean is a bool on close records only
    assert records.coerce({"t": 1.0, "kind": "close", "source": "s", "clean": 1})["clean"] is True


def test_dumps_loads_round_trip_with_unicode() -> None:
    rec = records.make("error", t=1.25, source="probe", detail='naïve ☃ \u2028 "quoted"')
    assert records.loads(records.dumps(rec)) == rec
    assert b"\n" not in records.dumps(rec)


def test_iso_and_sort_by_time() -> None:
    assert records.iso(0.5) == "1970-01-01T00:00:00.500Z"
    a, b, c = ({"t": 2.0, "n": 1}, {"t": 1.0, "n": 2}, {"t": 2.0, "n": 3})
    assert records.sort_by_time([a, b, c]) == [b, a, c]


# -- redaction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "xapp-1-A0123ABCD-1234567890-0123abcdef",
        "xoxb-1234567890-0987654321-AbCdEfGhIjKl",
        "xoxp-1234-5678-9012-abcdef",
        "xoxa-2-abc",
        "xoxe-1-My0xLTE",
        "xoxs-123-abc",
        "xoxc-123-abc",
        "xoxd-AbC123",
        "xoxr-refresh-1",
    ],
)
def test_every_token_family_is_redacted_keeping_its_prefix(token: str) -> None:
    family = token.split("-")[0]
    for text in (token, f"token={token}", f'{{"token": "{token}"}}', f"token%3D{token}&x=1", f"id_{token}"):
        out = redact_text(text)
        assert token.split("-", 1)[1] not in out, text
        assert f"{family}-{REDACTED}" in out


def test_rotating_token_prefixes_are_redacted() -> None:
    assert "My0" not in redact_text("refresh xoxe.xoxp-1-My0xLTE and xoxe-1-My0xLTE")


def test_wss_tickets_are_redacted_in_urls() -> None:
    url = "wss://wss-primary.slack.com/link/?ticket=1a2b3c4d-5e6f&app_id=A0123"
    assert redact_text(url) == "wss://wss-primary.slack.com/link/?ticket=[redacted]&app_id=A0123"
    assert "5e6f" not in redact_text(f'connecting to "{url}"')
    assert (
        redact_text("GET /link/?app_id=A1&ticket=abc HTTP/1.1")
        == "GET /link/?app_id=A1&ticket=[redacted] HTTP/1.1"
    )


def test_bearer_headers_are_redacted() -> None:
    assert redact_text("Authorization: Bearer abc.def.ghi") == "Authorization: Bearer [redacted]"
    assert redact_text("authorization: bearer s3cr3t, other") == "authorization: bearer [redacted], other"


def test_plain_text_is_untouched() -> None:
    text = "envelope 9f1 acked in 12ms on conn c1 (retry 2, http_timeout)"
    assert redact_text(text) == text
    assert redact_text("") == ""


def test_url_host_keeps_host_and_port_only() -> None:
    assert url_host("wss://wss-primary.slack.com/link/?ticket=abc&app_id=A1") == "wss-primary.slack.com"
    assert url_host("ws://127.0.0.1:8765/link/?ticket=t") == "127.0.0.1:8765"
    assert url_host("wss://user:pa55@example.com:443/x") == "example.com:443"
    assert url_host("wss-backup.slack.com") == "wss-backup.slack.com"
    assert url_host("http://[::1]:9000/") == "[::1]:9000"
    assert url_host("") == REDACTED
    assert url_host("http://host:notaport/") == REDACTED


def test_redact_record_scrubs_every_string_and_drops_text() -> None:
    rec = {"t": 1.0, "kind": "envelope", "source": "p", "channel": "xoxb-1", "text": "hello", "x": ["xoxp-9"]}
    out = redact_record(rec)
    assert out == {"t": 1.0, "kind": "envelope", "source": "p", "channel": "xoxb-[redacted]",
                   "x": ["xoxp-[redacted]"]}  # fmt: skip
    assert redact_record(rec, record_text=True)["text"] == "hello"
    assert rec["channel"] == "xoxb-1"  # the input is not modified


def test_redact_value_walks_nested_values() -> None:
    assert redact_value({"a": [{"b": "Bearer xyz"}], "n": 3}) == {"a": [{"b": "Bearer [redacted]"}], "n": 3}


def test_redacting_filter_scrubs_formatted_messages() -> None:
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "opening %s", ("wss://h/?ticket=abc",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "opening wss://h/?ticket=[redacted]"
