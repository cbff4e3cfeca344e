"""diagnose's fast path: typed rows cover what detectors read, and the two-process split reports the same."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import orjson
import pytest

from slackops.diagnose import diagnose, diagnose_records, engine, split
from slackops.diagnose.detectors import ALL
from slackops.diagnose.rows import FIELDS, TYPES, convert, decode_one
from slackops.records import KINDS, make

LOGS = Path(__file__).parent / "fixtures" / "logs"
RECORDINGS = sorted(LOGS.glob("recording_*.jsonl"))


def _reads(func: ast.FunctionDef) -> tuple[set[str], set[str]]:
    """Attributes read from ``rec`` in ``func``, and names of the functions/methods ``rec`` is passed to."""
    fields: set[str] = set()
    calls: set[str] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "rec":
            fields.add(node.attr)
        if isinstance(node, ast.Call) and any(isinstance(a, ast.Name) and a.id == "rec" for a in node.args):
            f = node.func
            calls.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return fields, calls


@pytest.mark.parametrize("part", [*ALL, engine._Overview], ids=lambda c: c.__name__)
def test_rows_carry_every_field_a_handler_reads(part: type) -> None:
    tree = ast.parse(inspect.getsource(sys.modules[part.__module__]))
    funcs = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    kinds = part.kinds if isinstance(part.kinds, dict) else {k: "on_event" for k in part.kinds}
    if part is engine._Overview:
        kinds["envelope"] = "on_envelope"
    for kind, method in kinds.items():
        read: set[str] = set()
        todo, seen = [method], set()
        while todo:
            name = todo.pop()
            if name in seen or name not in funcs:
                continue
            seen.add(name)
            fields, calls = _reads(funcs[name])
            read |= fields
            todo += calls
        missing = read - {"t", "kind"} - set(FIELDS.get(kind, ()))
        assert not missing, (
            f"{part.__name__}.{method} reads {sorted(missing)} of {kind} rows: add to rows.FIELDS"
        )


def test_every_kind_has_a_row_type_and_rows_read_like_dicts() -> None:
    assert set(TYPES) == set(KINDS)
    row = decode_one(
        b'{"t": 1, "kind": "envelope", "source": "x", "event_id": "Ev1", "unknown": [1, {"a": 2}]}'
    )
    assert row.kind == "envelope" and row.t == 1.0 and isinstance(row.t, float)
    assert row.event_id == "Ev1" and row.channel is None
    # rec.get("direction", "received"): absent means received, an explicit null does not.
    assert decode_one(b'{"t": 1, "kind": "pong"}').direction == "received"
    assert decode_one(b'{"t": 1, "kind": "pong", "direction": null}').direction is None
    assert not decode_one(b'{"t": 1, "kind": "reconnect"}').initiator
    for bad in ({"t": "x", "kind": "ack"}, {"t": True, "kind": "ack"}, {"t": 1.0, "kind": "nope"}, [1]):
        with pytest.raises(ValueError):
            convert(bad)


def test_file_and_records_paths_agree_on_optional_fields(tmp_path: Path) -> None:
    recs = [
        make("connect", t=1.0, source="x", conn="c1"),
        make("pong", t=2.0, source="x", conn="c1"),
        {"t": 3.0, "kind": "pong", "source": "x", "conn": "c1", "direction": None},
        make("reconnect", t=4.0, source="x", conn="c1", cause="refresh_requested"),
        make("connect", t=4.5, source="x", conn="c1"),
    ]
    f = tmp_path / "r.jsonl"
    f.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    from_file = diagnose([str(f)]).to_dict()
    from_records = diagnose_records(recs).to_dict()
    assert from_file["findings"] == from_records["findings"]
    assert from_file["overview"]["events"] == from_records["overview"]["events"]
    # No initiator: the overview shows the cause, not a default.
    assert {"t": 4.0, "kind": "reconnect", "detail": "refresh_requested"} in from_file["overview"]["events"]


def _report(path: Path) -> dict:
    d = diagnose([str(path)]).to_dict()
    d.pop("generated_at", None)
    return d


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_split_across_two_processes_reports_the_same(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(split.os, "fork"):
        pytest.skip("no fork on this platform")
    monkeypatch.setenv("SLACKOPS_DIAGNOSE_SPLIT", "0")
    alone = _report(path)
    monkeypatch.setenv("SLACKOPS_DIAGNOSE_SPLIT", "1")
    monkeypatch.setattr(split, "cores", lambda: 2)
    monkeypatch.setattr(engine, "SPLIT_MIN_BYTES", 0)
    forks = []
    real = split.fork
    monkeypatch.setattr(split, "fork", lambda work: forks.append(1) or real(work))
    assert _report(path) == alone
    assert forks, "the split path did not run"


def test_a_failed_worker_is_redone_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    path = LOGS / "recording_lost-in-flight.jsonl"
    monkeypatch.setenv("SLACKOPS_DIAGNOSE_SPLIT", "0")
    alone = _report(path)
    monkeypatch.setenv("SLACKOPS_DIAGNOSE_SPLIT", "1")
    monkeypatch.setattr(split, "cores", lambda: 2)
    monkeypatch.setattr(engine, "SPLIT_MIN_BYTES", 0)
    monkeypatch.setattr(split, "fork", lambda work: split.Forked(*_failing_child()))
    assert _report(path) == alone


def _failing_child() -> tuple[int, int]:
    import os

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    os.close(w)
    return pid, r
