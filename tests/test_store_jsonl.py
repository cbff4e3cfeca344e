"""JSONL recordings: format detection, gzip, ordering, malformed lines, the lossless SQLite round trip, the CLI."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slackops import records
from slackops.cli import main
from slackops.errors import ExitCode, InputError
from slackops.redact import redact_text
from slackops.store import (
    SCHEMA_VERSION,
    RecordWriter,
    Skipped,
    count_records,
    detect_format,
    export_jsonl,
    import_jsonl,
    iter_records,
)

T0 = 1_763_800_000.0


def ping(i: float, **fields: object) -> records.Record:
    return records.make("ping", t=T0 + i, source="probe", conn="c1", direction="sent", **fields)


def write_jsonl(path: Path, lines: list[bytes | records.Record]) -> Path:
    data = b"".join((line if isinstance(line, bytes) else records.dumps(line)) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def canon(rec: records.Record) -> bytes:
    """Byte-exact comparison: key order aside, 1 and 1.0, -0.0 and 0.0, True and 1 all differ."""
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)


# -- generated valid records ----------------------------------------------------------------------------

_clean_text = st.text(max_size=20).filter(lambda s: redact_text(s) == s)
_json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _clean_text
)
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_clean_text, inner, max_size=3),
    max_leaves=6,
)
_BY_TYPE = {
    str: _clean_text,
    int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    float: st.floats(allow_nan=False, allow_infinity=False),
    bool: st.booleans(),
}


@st.composite
def valid_records(draw: st.DrawFn) -> records.Record:
    """A valid record of any kind: some of its fields, plus unknown fields (new names, other kinds' names)."""
    kind = draw(st.sampled_from(sorted(records.KINDS)))
    fields = records.KINDS[kind]
    rec: records.Record = {
        "t": draw(st.floats(min_value=-1e9, max_value=4e9, allow_nan=False)),
        "kind": kind,
        "source": draw(_clean_text),
    }
    if draw(st.booleans()):
        rec["conn"] = draw(_clean_text)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), unique=True)):
        allowed = records.ENUMS.get((kind, name))
        rec[name] = draw(st.sampled_from(sorted(allowed)) if allowed else _BY_TYPE[fields[name]])
    # Unknown fields: fresh names (including the row-only column names) and other kinds' fields with any value.
    foreign = sorted(set(records.ALL_FIELDS) - set(fields) - set(records.COMMON))
    names = st.sampled_from(["id", "time", "extra", "zz_new", "ünï"]) | st.sampled_from(foreign) | _clean_text
    for name, value in draw(
        st.dictionaries(names, _json.filter(lambda v: v is not None), max_size=3)
    ).items():
        if name not in rec and name not in fields and name not in records.COMMON:
            rec[name] = value
    assert records.validate(rec) == [], rec
    return rec


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=st.lists(valid_records(), max_size=8))
def test_record_jsonl_sqlite_jsonl_round_trip_is_lossless(
    tmp_path_factory: pytest.TempPathFactory, recs
) -> None:
    d = tmp_path_factory.mktemp("rt")
    src = write_jsonl(d / "in.jsonl", recs)
    result = import_jsonl(src, d / "r.db")
    assert (result.imported, result.skipped.count) == (len(recs), 0)
    assert export_jsonl(d / "r.db", d / "out.jsonl") == len(recs)
    back = [orjson.loads(line) for line in (d / "out.jsonl").read_bytes().splitlines()]
    want = records.sort_by_time(records.loads(records.dumps(r)) for r in recs)
    assert [canon(r) for r in back] == [canon(r) for r in want]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=st.lists(valid_records(), min_size=1, max_size=8))
def test_records_written_by_the_writer_read_back_identical(
    tmp_path_factory: pytest.TempPathFactory, recs
) -> None:
    d = tmp_path_factory.mktemp("w")
    recs = [{k: v for k, v in r.items() if k != "text"} for r in recs]  # text is dropped by default
    with RecordWriter(db=d / "r.db", jsonl=d / "r.jsonl.gz") as w:
        for rec in recs:
            w.write(rec)
    want = [canon(r) for r in records.sort_by_time(recs)]
    assert [canon(r) for r in iter_records(d / "r.db")] == want
    assert [canon(r) for r in iter_records(d / "r.jsonl.gz")] == want


# -- reading --------------------------------------------------------------------------------------------


def test_formats_are_detected_by_content_not_extension(tmp_path: Path) -> None:
    with RecordWriter(db=tmp_path / "a.db") as w:
        w.write(ping(1))
    shutil.copy(tmp_path / "a.db", tmp_path / "looks-like.jsonl")
    write_jsonl(tmp_path / "b.jsonl.gz", [ping(1)])
    shutil.copy(tmp_path / "b.jsonl.gz", tmp_path / "b.log")
    write_jsonl(tmp_path / "c.db", [ping(1)])
    assert detect_format(tmp_path / "looks-like.jsonl") == "sqlite"
    assert detect_format(tmp_path / "b.log") == "jsonl.gz"
    assert detect_format(tmp_path / "c.db") == "jsonl"
    for name in ("looks-like.jsonl", "b.log", "c.db"):
        assert [r["t"] for r in iter_records(tmp_path / name)] == [T0 + 1], name


def test_unordered_jsonl_is_sorted_and_filters_apply_to_both_formats(tmp_path: Path) -> None:
    recs = [ping(3), ping(1), records.make("ack", t=T0 + 2, source="bot", envelope_id="e"), ping(0)]
    src = write_jsonl(tmp_path / "u.jsonl", recs)
    import_jsonl(src, tmp_path / "u.db")
    for path in (src, tmp_path / "u.db"):
        assert [r["t"] - T0 for r in iter_records(path)] == [0, 1, 2, 3]
        assert [r["t"] - T0 for r in iter_records(path, since=T0 + 1, until=T0 + 3)] == [1, 2]
        assert [r["kind"] for r in iter_records(path, kinds={"ack"})] == ["ack"]


def test_malformed_lines_are_counted_with_samples_not_fatal(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "m.jsonl",
        [ping(1), b"not json", b"[1, 2]", b'{"t": 1, "kind": "nope", "source": "x"}', ping(2)],
    )
    skipped = Skipped()
    assert len(list(iter_records(src, skipped=skipped))) == 2
    assert skipped.count == 3
    result = import_jsonl(src, tmp_path / "m.db")
    assert (result.imported, result.skipped.count) == (2, 3)
    assert result.skipped.samples[0].startswith(f"{src}:2: not JSON")
    assert "expected a JSON object" in result.skipped.samples[1]
    assert "unknown kind 'nope'" in result.skipped.samples[2]
    assert count_records(tmp_path / "m.db") == 2 and count_records(src) == 2


def test_a_live_gzip_sink_is_readable_before_close(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl.gz"
    w = RecordWriter(jsonl=path)
    w.write(ping(1))
    w.write(ping(2))
    assert w.flush(timeout=10)
    assert [r["t"] for r in iter_records(path)] == [T0 + 1, T0 + 2]  # no gzip trailer yet
    w.close()
    with RecordWriter(jsonl=path) as w:  # appending adds a gzip member
        w.write(ping(3))
    assert count_records(path) == 3
    assert w.stats.written == 1


def test_export_to_gzip_and_import_several_files(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [ping(1), ping(3)])
    b = write_jsonl(tmp_path / "b.jsonl.gz", [ping(2)])
    assert import_jsonl([a, b], tmp_path / "r.db").imported == 3
    assert export_jsonl(tmp_path / "r.db", tmp_path / "out.jsonl.gz") == 3
    assert detect_format(tmp_path / "out.jsonl.gz") == "jsonl.gz"
    assert [r["t"] - T0 for r in iter_records(tmp_path / "out.jsonl.gz")] == [1, 2, 3]


def test_import_refuses_missing_files_and_sqlite_sources(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        import_jsonl(tmp_path / "missing.jsonl", tmp_path / "r.db")
    with RecordWriter(db=tmp_path / "a.db") as w:
        w.write(ping(1))
    with pytest.raises(InputError, match="SQLite recording") as info:
        import_jsonl(tmp_path / "a.db", tmp_path / "r.db")
    assert "slackops export" in (info.value.hint or "")


# -- CLI ------------------------------------------------------------------------------------------------


def test_cli_import_then_export_to_stdout(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    src = write_jsonl(tmp_path / "a.jsonl", [ping(2), ping(1), b"garbage"])
    db = tmp_path / "r.db"
    assert main(["import", str(src), "--db", str(db), "--json"]) == ExitCode.OK
    summary = json.loads(capfd.readouterr().out)
    assert (summary["imported"], summary["skipped"], summary["db"]) == (2, 1, str(db))
    assert main(["export", str(db)]) == ExitCode.OK
    out = capfd.readouterr()
    assert [records.loads(line)["t"] - T0 for line in out.out.splitlines()] == [1, 2]
    assert "exported 2 records" in out.err


def test_cli_export_to_a_file_with_json_summary(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    src = write_jsonl(tmp_path / "a.jsonl", [ping(1)])
    out = tmp_path / "o.jsonl"
    assert main(["export", str(src), "-o", str(out), "--json"]) == ExitCode.OK
    assert json.loads(capfd.readouterr().out) == {"exported": 1, "source": str(src), "output": str(out)}
    assert count_records(out) == 1


def test_cli_exit_codes_for_unusable_input(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [b"nope", b"{}"])
    assert main(["import", str(bad), "--db", str(tmp_path / "r.db")]) == ExitCode.UNUSABLE_INPUT
    assert "skipped 2 malformed lines" in capfd.readouterr().err
    assert main(["export", str(tmp_path / "missing.db")]) == ExitCode.UNUSABLE_INPUT
    assert "no such file" in " ".join(capfd.readouterr().err.split())  # rich wraps long paths


def test_cli_refuses_a_recording_from_a_newer_slackops(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    with RecordWriter(db=db) as w:
        w.write(ping(1))
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO _migrations (version, name) VALUES (?, 'future')", [SCHEMA_VERSION + 1])
    conn.commit()
    conn.close()
    assert main(["export", str(db)]) == ExitCode.STORE
    assert "newer slackops" in " ".join(capfd.readouterr().err.split())


def test_every_recording_option_has_help() -> None:
    import typer.main

    from slackops.cli.app import app

    group = typer.main.get_command(app)
    for name in ("export", "import"):
        command = group.commands[name]  # type: ignore[attr-defined]
        assert command.help, name
        for param in command.params:
            assert getattr(param, "help", None), (name, param.name)


def test_a_sqlite_file_that_is_not_a_recording_is_unusable_input(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match="not a slackops recording"):
        list(iter_records(path))
