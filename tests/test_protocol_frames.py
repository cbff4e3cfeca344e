"""Every frame example from the Socket Mode reference parses to the right object; bad input never raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slackops.protocol import (
    Disconnect,
    DisconnectReason,
    Envelope,
    FrameError,
    Hello,
    UnknownFrame,
    build_ack,
    message_text,
    parse_frame,
)

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def frame(name: str) -> str:
    return (FRAMES / f"{name}.json").read_text().strip()


def test_hello_from_docs_keeps_every_field():
    hello = parse_frame(frame("hello_doc"))
    assert hello == Hello(
        num_connections=1,
        host="applink-7fc4fdbb64-4x5xq",
        build_number=54,
        approximate_connection_time=3600,
        app_id="A1234",
        started="2020-10-11 12:12:12.120",
    )


def test_hello_seen_in_production():
    hello = parse_frame(frame("hello_production"))
    assert isinstance(hello, Hello)
    assert (hello.num_connections, hello.host, hello.approximate_connection_time) == (1, "applink-1", 18060)
    assert hello.app_id == "A0469A3MM9D"
    assert hello.started is None


def test_hello_with_ghost_registrations_reports_them():
    assert parse_frame(frame("hello_ghosts")).num_connections == 10


@pytest.mark.parametrize(
    ("name", "reason", "refresh", "fatal"),
    [
        ("disconnect_warning", DisconnectReason.WARNING, True, False),
        ("disconnect_refresh_requested", DisconnectReason.REFRESH_REQUESTED, True, False),
        ("disconnect_link_disabled", DisconnectReason.LINK_DISABLED, False, True),
        ("disconnect_too_many_websockets", DisconnectReason.TOO_MANY_WEBSOCKETS, False, False),
    ],
)
def test_disconnect_reasons(name, reason, refresh, fatal):
    d = parse_frame(frame(name))
    assert isinstance(d, Disconnect)
    assert d.reason == reason
    assert d.known
    assert d.is_refresh is refresh
    assert d.is_fatal is fatal
    assert d.host


def test_too_many_websockets_carries_num_connections():
    assert parse_frame(frame("disconnect_too_many_websockets")).num_connections == 2


def test_unknown_disconnect_reason_is_kept_verbatim():
    d = parse_frame(frame("disconnect_unknown_reason"))
    assert isinstance(d, Disconnect)
    assert d.reason == "socket_mode_maintenance"
    assert not d.known and not d.is_refresh and not d.is_fatal


def test_events_api_envelope():
    env = parse_frame(frame("events_api_app_mention"))
    assert isinstance(env, Envelope)
    assert env.envelope_id == "cda4159a-72a5-4744-aba3-4d66eb52682b"
    assert env.type == "events_api"
    assert env.accepts_response_payload is False
    assert (env.retry_attempt, env.retry_reason, env.is_retry) == (0, "", False)
    ev = env.event
    assert (ev.event_id, ev.event_type, ev.channel, ev.user) == ("Ev111", "app_mention", "C111", "U222")
    assert ev.ts == ev.event_ts == "1610241741.000200"
    assert ev.subtype is None and ev.bot_id is None and ev.thread_ts is None
    assert env.dedup_key == "Ev111"
    assert env.size == len(frame("events_api_app_mention").encode())


def test_retry_envelope_has_attempt_and_reason():
    env = parse_frame(frame("events_api_retry"))
    assert (env.retry_attempt, env.retry_reason, env.is_retry) == (1, "timeout", True)
    assert env.event.thread_ts == "1610241700.000100"


def test_message_changed_reports_whether_text_changed_without_keeping_text():
    env = parse_frame(frame("events_api_message_changed"))
    assert env.event.subtype == "message_changed"
    assert env.event.text_changed is False
    assert env.event.ts == "1610241900.000400"  # the edited message, which is what a reply refers to
    assert env.event.user == "U222"
    assert "same words" not in json.dumps(env.record_fields())


def test_bot_message_carries_bot_id():
    env = parse_frame(frame("events_api_bot_message"))
    assert (env.event.subtype, env.event.bot_id) == ("bot_message", "B999")


def test_app_rate_limited_has_no_inner_event():
    env = parse_frame(frame("events_api_app_rate_limited"))
    assert env.event.event_type == "app_rate_limited"
    assert env.event.event_id is None
    assert env.dedup_key == env.envelope_id


def test_slash_command_envelope():
    env = parse_frame(frame("slash_commands"))
    assert env.type == "slash_commands"
    assert env.accepts_response_payload is True
    assert (env.event.event_type, env.event.channel, env.event.user) == (
        "/randorilke",
        "C123ABC456",
        "U123ABC456",
    )
    assert env.retry_attempt == 0
    assert env.dedup_key == "dbdd0ef3-1543-4f94-bfb4-133d0e6c1545"


def test_interactive_shortcut_and_block_actions():
    shortcut = parse_frame(frame("interactive_shortcut"))
    assert (shortcut.type, shortcut.event.event_type, shortcut.event.user) == (
        "interactive",
        "shortcut",
        "U111",
    )
    actions = parse_frame(frame("interactive_block_actions"))
    assert actions.accepts_response_payload is True
    assert (actions.event.channel, actions.event.ts) == ("C444", "1610243000.000700")


def test_unknown_type_is_kept():
    f = parse_frame(frame("unknown_type"))
    assert isinstance(f, UnknownFrame)
    assert f.type == "integration-test"
    assert f.data["payload"] == {"hello": "world"}


def test_record_fields_match_the_record_model():
    from slackops import records

    for name in ("events_api_app_mention", "events_api_retry", "slash_commands", "interactive_block_actions"):
        env = parse_frame(frame(name))
        rec = records.make("envelope", t=1.0, source="probe", conn="c1", **env.record_fields())
        assert records.validate(rec) == []


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x00\x01binary", "binary"),
        ("not json at all", "not_json"),
        ('{"type": "hello"', "not_json"),
        ("[1, 2, 3]", "not_object"),
        ('"hello"', "not_object"),
        ('{"type":"events_api","payload":{}}', "bad_envelope"),
        ('{"type":"events_api","envelope_id":"e1","payload":"x"}', "bad_envelope"),
        ('{"type":"interactive","envelope_id":"","payload":{}}', "bad_envelope"),
    ],
)
def test_malformed_frames_become_errors(data, problem):
    result = parse_frame(data)
    assert isinstance(result, FrameError)
    assert result.problem == problem
    assert result.detail


def test_wrong_types_inside_known_frames_do_not_raise():
    hello = parse_frame('{"type":"hello","num_connections":"three","debug_info":[],"connection_info":7}')
    assert hello == Hello(None, None, None, None, None)
    env = parse_frame(
        '{"type":"events_api","envelope_id":"e","payload":{"event":[],"event_id":5},"retry_attempt":true}'
    )
    assert isinstance(env, Envelope)
    assert env.event.event_id is None and env.retry_attempt == 0


@given(st.one_of(st.text(), st.binary()))
def test_parse_frame_never_raises(data):
    parse_frame(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_parse_frame_never_raises_on_any_json(value):
    parse_frame(json.dumps(value))
    if isinstance(value, dict):
        for kind in ("hello", "disconnect", "events_api", "slash_commands", "interactive"):
            parse_frame(json.dumps({**value, "type": kind, "envelope_id": "e", "payload": value}))


def test_build_ack_without_and_with_payload():
    assert json.loads(build_ack("e1")) == {"envelope_id": "e1"}
    assert json.loads(build_ack("e1", {"text": "hi"})) == {"envelope_id": "e1", "payload": {"text": "hi"}}
    assert json.loads(build_ack("e1", "hi")) == {"envelope_id": "e1", "payload": {"text": "hi"}}
    assert json.loads(build_ack("e1", {})) == {"envelope_id": "e1", "payload": {}}


def test_message_text_reads_text_blocks_and_attachments():
    event = {
        "text": "fallback",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Deploy* failed"}},
            {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [
                            {"type": "text", "text": "ping "},
                            {"type": "user", "user_id": "U1"},
                            {"type": "text", "text": " now"},
                        ],
                    }
                ],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "fallback"}]},
        ],
        "attachments": [{"pretext": "alert", "text": "disk full", "fallback": "disk full"}],
    }
    assert message_text(event) == "fallback\n*Deploy* failed\nping <@U1> now\nalert\ndisk full"


def test_message_text_of_a_plain_message():
    assert message_text({"text": "hello"}) == "hello"
    assert message_text({}) == ""
