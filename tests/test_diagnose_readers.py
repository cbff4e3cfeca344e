"""diagnose readers: one fixture file per log dialect and wording variant, prefixes, detection, bad input."""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import orjson
import pytest

from slackops.diagnose import diagnose
from slackops.diagnose.readers.base import Input, ParseStats
from slackops.diagnose.readers.detect import FORMATS, detect, reader
from slackops.diagnose.readers.prefix import Clock, split
from slackops.diagnose.thresholds import load
from slackops.errors import InputError
from slackops.records import make, validate

LOGS = Path(__file__).parent / "fixtures" / "logs"


def read(name: str | Path, fmt: str | None = None) -> tuple[str | None, list[dict], ParseStats]:
    settings = load()
    path = str(name if isinstance(name, Path) else LOGS / name)
    source = Input(path)
    stats = ParseStats(path)
    found = fmt or detect(source, settings)
    recs: list[dict] = []
    if found:
        for batch in reader(found, source, stats, settings, None, None):
            recs.extend(batch)
    source.close()
    return found, recs, stats


def kinds(recs: list[dict]) -> list[str]:
    return [r["kind"] for r in recs]


def one(recs: list[dict], kind: str, **match) -> dict:
    hits = [r for r in recs if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())]
    assert hits, f"no {kind} record matching {match} in {recs}"
    return hits[0]


# -- every fixture yields valid records from the right reader -------------------------------------------------

EXPECTED_FORMAT = {
    "python_builtin.log": "python-sdk",
    "python_aiohttp.log": "python-sdk",
    "python_websockets.log": "python-sdk",
    "python_websocket_client.log": "python-sdk",
    "python_old_wording.log": "python-sdk",
    "python_bolt_basicconfig.log": "python-sdk",
    "python_loguru.log": "python-sdk",
    "python_journald_celery.log": "python-sdk",
    "python_container_json.log": "python-sdk",
    "python_kubectl.log": "python-sdk",
    "node_v1.log": "node",
    "node_v2.log": "node",
    "node_v3_heroku.log": "node",
    "node_legacy_lowercase.log": "node",
    "java_spring.log": "java",
    "java_custom.log": "java",
    "app_llm.jsonl": "app-json",
    "app_webhook_retries.jsonl": "app-json",
    "access_nginx.log": "access-log",
    "recording_steady.jsonl": "slackops-jsonl",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FORMAT))
def test_fixture_detected_and_parsed_into_valid_records(name: str) -> None:
    fmt, recs, stats = read(name)
    assert fmt == EXPECTED_FORMAT[name]
    assert recs, f"{name}: no records"
    assert stats.unparsed == 0, stats.samples
    for rec in recs:
        assert validate(rec) == [], (rec, validate(rec))


def test_python_builtin_pairs_ack_latency_and_processing_time() -> None:
    _, recs, _ = read("python_builtin.log")
    conn = "3f1c2a9e-1b7d-4c55-9a0e-7d2b8c1e0a01"
    hello = one(recs, "hello")
    assert (hello["num_connections"], hello["conn"], hello["approximate_connection_time"]) == (1, conn, 18060)
    env = one(recs, "envelope")
    assert (env["envelope_id"], env["event_id"], env["event_type"], env["channel"]) == (
        "env-0001",
        "Ev0001",
        "app_mention",
        "C01",
    )
    ack = one(recs, "ack", envelope_id="env-0001")
    assert ack["ack_ms"] == pytest.approx(40.0, abs=0.5)
    assert one(recs, "process", phase="end")["duration_ms"] == pytest.approx(897.0, abs=0.5)
    assert one(recs, "queue", action="enqueue")["depth"] == 1
    assert one(recs, "pong", direction="received")["conn"] == conn
    assert one(recs, "ping", direction="received")  # "Sending a pong data frame": the server pinged
    assert one(recs, "reconnect", initiator="ping_timeout")["cause"].startswith("stale")
    # The traceback is joined to its record, not counted as lines of its own.
    assert one(recs, "process", phase="fail")["error"] == "boom"
    lost = one(recs, "ack", ok=False)
    assert lost["error"] == "session no longer active"


def test_python_aiohttp_session_ids_frames_and_reconnect_loop() -> None:
    _, recs, _ = read("python_aiohttp.log")
    sid = "5c0d1e2f-aaaa-4bbb-8ccc-0123456789ab"
    assert one(recs, "connect")["conn"] == sid
    env = one(recs, "envelope")
    assert (env["retry_attempt"], env["retry_reason"], env["conn"]) == (1, "timeout", sid)
    assert one(recs, "ack", envelope_id="a1")["ack_ms"] == pytest.approx(4100, abs=1)
    loops = [r for r in recs if r["kind"] == "reconnect" and r.get("cause", "").startswith("connect failed")]
    assert len(loops) == 4
    assert one(recs, "close", reason="abandoned")["by"] == "client"
    assert one(recs, "close", by="server")["reason"] == "close event"
    # The loops' heartbeat trace lines (every 100 iterations): diagnose watches for them stopping.
    assert one(recs, "loop", loop="receive")["conn"] == sid
    assert one(recs, "loop", loop="monitor")["conn"] == sid


def test_python_websockets_and_old_wording() -> None:
    _, recs, _ = read("python_websockets.log")
    assert [r["reason"] for r in recs if r["kind"] == "disconnect"] == ["warning", "refresh_requested"]
    assert one(recs, "ack", envelope_id="w1")["ack_ms"] == pytest.approx(300, abs=1)
    _, old, _ = read("python_old_wording.log")
    assert kinds(old).count("reconnect") == 3
    assert kinds(old).count("connect") == 4


def test_python_websocket_client_slash_command_and_close_code() -> None:
    _, recs, _ = read("python_websocket_client.log")
    env = one(recs, "envelope")
    assert (env["type"], env["channel"], env["user"]) == ("slash_commands", "C5", "U5")
    assert one(recs, "ack", envelope_id="wc1")["ack_ms"] == pytest.approx(4500)
    assert one(recs, "close", code=1006)["clean"] is False
    assert one(recs, "hello")["num_connections"] == 3
    # "session: Connection refused" is not a session id.
    assert all(r.get("conn") != "Connection" for r in recs)


def test_bolt_basicconfig_untimed_lines_and_suggestion_block() -> None:
    _, recs, stats = read("python_bolt_basicconfig.log")
    assert stats.untimed > 0
    assert one(recs, "api_call", method="auth.test")["ok"] is True
    limited = one(recs, "api_call", method="chat.postMessage")
    assert (limited["http_status"], limited["error"], limited["retry_after"]) == (429, "ratelimited", 30.0)
    assert one(recs, "error", where="ack_timeout")["detail"] == "handle_mention"
    assert one(recs, "guard", guard="self-loop")
    # The [Suggestion] block and the code it shows were joined, not parsed as records.
    assert stats.lines == 15 and len(recs) == 4


def test_prefixes_loguru_journald_container_kubectl() -> None:
    _, loguru, _ = read("python_loguru.log")
    assert one(loguru, "api_call", http_status=429)["retry_after"] == 30.0
    assert one(loguru, "api_call", error="invalid_auth")["method"] == "apps.connections.open"
    _, celery, _ = read("python_journald_celery.log")
    assert one(celery, "api_call")["error"] == "not_allowed_token_type"
    assert celery[0]["t"] == pytest.approx(1691471976.0)  # the celery stamp (full date) wins over syslog's
    _, wrapped, _ = read("python_container_json.log")
    assert one(wrapped, "disconnect")["reason"] == "too_many_websockets"
    assert wrapped[0]["t"] == pytest.approx(1708007540.957812)
    _, kube, _ = read("python_kubectl.log")
    assert kinds(kube) == ["connect", "ping", "pong"]


@pytest.mark.parametrize(
    ("line", "level", "name", "message"),
    [
        ("DEBUG:slack_bolt.App:Sending a request", "DEBUG", "slack_bolt.App", "Sending a request"),
        (
            "2021-09-17 07:49:07:slack_bolt.AsyncApp:__init__:INFO:The session",
            "INFO",
            "slack_bolt.AsyncApp",
            "The session",
        ),
        (
            "2024-02-15 14:32:20,957 INFO:slack_sdk.socket_mode.websocket_client:Starting",
            "INFO",
            "slack_sdk.socket_mode.websocket_client",
            "Starting",
        ),
        ("2024-02-15 14:32:20,957 - slack_sdk.x - INFO - Starting", "INFO", "slack_sdk.x", "Starting"),
        (
            "2026-08-27 09:27:46,776 ERROR slack_bolt.AsyncApp: Failed to connect",
            "ERROR",
            "slack_bolt.AsyncApp",
            "Failed to connect",
        ),
        (
            "2022-02-17 03:38:43.518 | ERROR    | slack_sdk.socket_mode.builtin.connection:connect:172 - Failed",
            "ERROR",
            "slack_sdk.socket_mode.builtin.connection",
            "Failed",
        ),
        (
            "[WARN]  socket-mode:SlackWebSocket:17 A pong wasn't",
            "WARNING",
            "socket-mode:SlackWebSocket:17",
            "A pong wasn't",
        ),
        ("[WARN] socket-mode:SlackWebSocket:1 A pong", "WARNING", "socket-mode:SlackWebSocket:1", "A pong"),
        (
            "2021-09-29 13:49:13.733  INFO 7 --- [tReadThread-550] c.s.api.socket_mode.SocketModeClient     : onClose",
            "INFO",
            "c.s.api.socket_mode.SocketModeClient",
            "onClose",
        ),
        (
            "[Grizzly(2)] 2023-12-24 01:47:08 [INFO ] [SocketModeClient:232] - New session",
            "INFO",
            "SocketModeClient:232",
            "New session",
        ),
        (
            "2022-06-30T17:41:58.205446Z DEBUG slack_morphism::socket_mode::listener: Starting all WSS clients",
            "DEBUG",
            "slack_morphism::socket_mode::listener",
            "Starting all WSS clients",
        ),
    ],
)
def test_prefix_split(line: str, level: str, name: str, message: str) -> None:
    header = split(line, Clock())
    assert header is not None
    assert (header.level, header.name, header.message) == (level, name, message)


def test_prefix_timestamps_and_utc_offset() -> None:
    assert split("2024-02-15 14:32:20,957 INFO x: m", Clock()).t == pytest.approx(1708007540.957)
    assert split("2024-02-15T14:32:20.5+01:00 INFO x: m", Clock()).t == pytest.approx(1708003940.5)
    # Naive timestamps are in the configured zone.
    assert split("2024-02-15 14:32:20 INFO x: m", Clock(utc_offset_s=3600)).t == pytest.approx(1708003940.0)
    assert split('  File "x.py", line 1', Clock()) is None


def test_node_v2_acks_once_disconnects_once_and_names_sockets() -> None:
    _, recs, _ = read("node_v2.log")
    assert (
        kinds(recs).count("ack") == 2
    )  # Calling ack() + Sending a WebSocket message is one ack; plus a failed one
    assert one(recs, "ack", envelope_id="n1")["conn"] == "ws:1"
    assert kinds(recs).count("disconnect") == 1
    rc = one(recs, "reconnect")
    assert (rc["initiator"], rc["gap_ms"]) == ("ping_timeout", 5000.0)
    assert one(recs, "close", code=1006)["conn"] == "ws:1"
    assert {r["conn"] for r in recs if r["kind"] == "connect"} == {"ws:1", "ws:2"}
    assert one(recs, "ack", ok=False)["error"] == "client not connected"


def test_node_v1_v3_and_legacy() -> None:
    _, v1, _ = read("node_v1.log")
    assert one(v1, "disconnect")["reason"] == "refresh_requested"
    assert (
        kinds(v1).count("reconnect") == 1
    )  # "Reconnecting", the wait and the pong timeout are one reconnect
    assert one(v1, "api_call")["error"] == "invalid_auth"
    _, v3, _ = read("node_v3_heroku.log")
    assert one(v3, "api_call")["method"] == "chat.postMessage"
    assert one(v3, "error", where="ack_timeout")
    assert one(v3, "pong")["conn"] == "ws:4"
    _, legacy, _ = read("node_legacy_lowercase.log")
    assert [r["reason"] for r in legacy if r["kind"] == "disconnect"] == ["warning", "refresh_requested"]
    assert one(legacy, "envelope")["retry_attempt"] == 2


def test_java_logs() -> None:
    _, spring, _ = read("java_spring.log")
    assert kinds(spring) == ["connect", "close", "connect", "close"]
    assert spring[-1]["by"] == "network"
    _, custom, _ = read("java_custom.log")
    assert kinds(custom).count("api_call") == 3
    assert one(custom, "api_call")["http_status"] == 429


def test_app_json_llm_and_retry_headers() -> None:
    _, recs, stats = read("app_llm.jsonl")
    llm = [r for r in recs if r["kind"] == "llm"]
    assert len(llm) == 3 and llm[0]["tokens_in"] == 1200 and llm[0]["resource"] == "gpt-4o"
    assert [r["phase"] for r in recs if r["kind"] == "process"] == ["start", "start", "end", "start"]
    assert stats.ignored == 1  # "cache warmup" is not a handler run
    _, retries, _ = read("app_webhook_retries.jsonl")
    assert [r["retry_attempt"] for r in retries] == [0, 1, 0]
    assert retries[1]["retry_reason"] == "http_timeout" and retries[1]["event_id"] == "Ev7"


def test_app_json_field_mapping_from_config(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text(
        '{"ts": 1700000000, "evt": "EvX", "room": "C7", "usage": {"in": 10, "out": 5}, "model": "m"}\n'
    )
    cfg = tmp_path / "diag.toml"
    cfg.write_text(
        '[fields]\nevent_id = "evt"\nchannel = "room"\ntokens_in = "usage.in"\ntokens_out = "usage.out"\n'
    )
    report = diagnose([str(log)], config=str(cfg))
    assert report.overview["kinds"] == {"llm": 1}


def test_access_log_retries_and_status() -> None:
    _, recs, stats = read("access_nginx.log")
    envs = [r for r in recs if r["kind"] == "envelope"]
    assert [e["retry_attempt"] for e in envs] == [0, 1, 2]
    assert [e.get("retry_reason") for e in envs] == [None, "http_timeout", "http_error"]
    acks = [r for r in recs if r["kind"] == "ack"]
    assert acks[0]["ack_ms"] == pytest.approx(3412) and acks[2]["ok"] is False
    assert stats.ignored == 1  # the health check


# -- inputs: gzip, stdin, several files, unknown formats ------------------------------------------------------


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    gz = tmp_path / "bot.log.1"  # rotated name, no .gz suffix: recognised by magic bytes
    gz.write_bytes(gzip.compress((LOGS / "python_builtin.log").read_bytes()))
    fmt, recs, _ = read(gz)
    assert fmt == "python-sdk" and len(recs) == 18


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (LOGS / "recording_slow-consumer.jsonl").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(data))))
    report = diagnose(["-"])
    assert "ack-late" in {f.code for f in report.findings}


def test_several_files_are_merged_by_time(tmp_path: Path) -> None:
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_bytes(
        b"".join(
            orjson.dumps(make("ping", t=float(i), source="x", direction="sent")) + b"\n"
            for i in range(0, 10, 2)
        )
    )
    b.write_bytes(
        b"".join(
            orjson.dumps(make("pong", t=float(i), source="x", direction="received")) + b"\n"
            for i in range(1, 10, 2)
        )
    )
    report = diagnose([str(a), str(b), str(LOGS / "java_spring.log")])
    assert report.overview["kinds"]["ping"] == 5 and report.overview["kinds"]["pong"] == 5
    assert {s["format"] for s in report.sources} == {"slackops-jsonl", "java"}


def test_unknown_format_lists_formats_tried(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("shopping list\neggs\nmilk\n")
    with pytest.raises(InputError) as err:
        diagnose([str(f)])
    assert all(name in (err.value.hint or "") for name in FORMATS)


def test_unknown_file_beside_a_known_one_is_reported_not_fatal(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("shopping list\n")
    report = diagnose([str(f), str(LOGS / "java_spring.log")])
    assert [s["format"] for s in report.sources] == ["java", "unknown"]
    assert "notes.txt: not in a known format" in report.caveats[0] and "access-log" in report.caveats[0]


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        diagnose([str(tmp_path / "nope.log")])


# -- bad input: counted, never a crash -----------------------------------------------------------------------


def _jsonl(*recs: dict) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in recs)


def test_empty_file_is_unusable(tmp_path: Path) -> None:
    f = tmp_path / "empty.jsonl"
    f.write_bytes(b"")
    with pytest.raises(InputError):
        diagnose([str(f)])


def test_binary_bytes_and_truncated_last_line_are_counted(tmp_path: Path) -> None:
    good = _jsonl(*(make("ping", t=float(i), source="x", direction="sent") for i in range(50)))
    f = tmp_path / "torn.jsonl"
    f.write_bytes(good + b"\x00\xff\xfe\x89PNG\r\n" + good + b'{"t": 99.0, "kind": "pi')
    report = diagnose([str(f), "--format" if False else str(f)][:1], fmt="jsonl")
    src = report.sources[0]
    assert report.overview["kinds"]["ping"] == 100
    assert src["unparsed"] == 2
    assert any("truncated" in s for s in src["samples"])


def test_ten_megabyte_line_is_counted_not_fatal(tmp_path: Path) -> None:
    f = tmp_path / "huge.jsonl"
    line = b'{"t": 1.0, "kind": "ping", "source": "x", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}\n'
    f.write_bytes(
        _jsonl(make("ping", t=0.5, source="x"))
        + line
        + b"{broken "
        + b"y" * (10 * 1024 * 1024)
        + b"\n"
        + _jsonl(make("pong", t=2.0, source="x"))
    )
    report = diagnose([str(f)])
    assert report.overview["kinds"] == {"ping": 2, "pong": 1}
    assert report.sources[0]["unparsed"] == 1
    assert all(len(s) < 300 for s in report.sources[0]["samples"])


@pytest.mark.parametrize("fmt", ["slackops-jsonl", "python-sdk"])
def test_line_over_16_mib_is_skipped(tmp_path: Path, fmt: str) -> None:
    f = tmp_path / "runaway.log"
    if fmt == "slackops-jsonl":
        before, after = _jsonl(make("ping", t=0.5, source="x")), _jsonl(make("pong", t=2.0, source="x"))
    else:
        before = b"2024-02-15 14:32:20,100 INFO slack_sdk: A new session has been established (session id: s-0001)\n"
        after = b"2024-02-15 14:32:21,100 INFO slack_sdk: A new session has been established (session id: s-0002)\n"
    f.write_bytes(before + b"z" * (17 * 1024 * 1024) + b"\n" + after)
    report = diagnose([str(f)], fmt=fmt)
    assert sum(report.overview["kinds"].values()) == 2
    assert report.sources[0]["unparsed"] == 1
    assert "longer than 16 MiB" in report.sources[0]["samples"][0]


def test_wrong_json_types_are_counted(tmp_path: Path) -> None:
    f = tmp_path / "types.jsonl"
    f.write_bytes(
        _jsonl(make("ping", t=1.0, source="x"), make("pong", t=1.5, source="x"))
        + b'{"t": "yesterday", "kind": "ack", "source": "x"}\n'
        + b'{"t": 2.0, "kind": "ack", "source": "x", "envelope_id": "e", "ack_ms": "fast", "ok": true}\n'
        + b'{"t": 3.0, "kind": "no-such-kind", "source": "x"}\n'
        + b"[1, 2, 3]\n"
        + b'{"t": 4.0, "kind": ["ack"], "source": "x"}\n'
        + b'"just a string"\n'
    )
    report = diagnose([str(f)], fmt="slackops-jsonl")
    assert report.sources[0]["unparsed"] == 6
    assert report.overview["kinds"]["ping"] == 1


def test_text_log_with_binary_garbage(tmp_path: Path) -> None:
    f = tmp_path / "bot.log"
    f.write_bytes((LOGS / "python_websockets.log").read_bytes() + b"\x00\x01\x02\x03\xff\xfe\xfd\n")
    fmt, recs, stats = read(f)
    assert fmt == "python-sdk" and stats.unparsed == 1 and len(recs) == 10


def test_sqlite_recording(tmp_path: Path) -> None:
    store = pytest.importorskip("slackops.store")
    db = tmp_path / "rec.db"
    recs = [orjson.loads(line) for line in (LOGS / "recording_slow-consumer.jsonl").read_bytes().splitlines()]
    with store.RecordWriter(db=str(db)) as w:
        for rec in recs:
            w.write(rec)
    report = diagnose([str(db)])
    assert report.sources[0]["format"] == "slackops-sqlite"
    assert {"ack-late", "duplicate-processing"} <= {f.code for f in report.findings}


def test_progress_is_reported_for_large_files(tmp_path: Path) -> None:
    f = tmp_path / "big.jsonl"
    f.write_bytes(
        _jsonl(*(make("ping", t=float(i), source="x", conn="c1", direction="sent") for i in range(40_000)))
    )
    calls: list[tuple[int, int]] = []
    diagnose([str(f)], progress=lambda done, total: calls.append((done, total)))
    size = f.stat().st_size
    assert calls and all(total == size for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
