"""Evaluating a runbook's confirm-checks against data: applies / clear / cannot judge, with the evidence."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from slackops import runbooks
from slackops.diagnose import diagnose
from slackops.errors import InputError
from slackops.findings import CODES, SLUGS, Finding
from slackops.records import dumps, loads, make

ROOT = Path(__file__).resolve().parents[1]
RECORDINGS = Path(__file__).parent / "fixtures" / "recordings"
BOOKS = {b.slug: b for b in runbooks.load_all(ROOT / "runbooks")}


@dataclass
class FakeReport:
    """The parts of slackops.diagnose.Report that evaluation reads."""

    findings: list[Finding] = field(default_factory=list)
    overview: dict = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)


def count_kinds(paths) -> Counter:
    """What diagnose's overview would count for slackops JSONL recordings (other files count nothing)."""
    counts: Counter = Counter()
    for path in paths:
        if str(path).endswith(".jsonl"):
            counts.update(loads(line)["kind"] for line in Path(path).read_bytes().splitlines())
    return counts


class FakeDiagnose:
    """Stands in for slackops.diagnose.diagnose: fixed findings, the kinds of the input, and its calls."""

    def __init__(self, *findings: Finding, overview: dict | None = None, caveats: list[str] | None = None):
        self.findings, self.overview, self.caveats, self.calls = list(findings), overview, caveats or [], []

    def __call__(self, paths, **options):
        self.calls.append((paths, options))
        overview = self.overview if self.overview is not None else {"kinds": dict(count_kinds(paths))}
        return FakeReport(self.findings, overview, self.caveats)


def late_ack_finding() -> Finding:
    return Finding(
        "ack-late",
        "4 envelopes acked after 3 s (worst 4.5 s)",
        evidence={"count": 4, "worst_ms": 4500.0, "examples": ["env-0003-0"]},
    )


def test_a_reported_finding_marks_its_check_with_the_evidence():
    fake = FakeDiagnose(late_ack_finding())
    ev = runbooks.evaluate(BOOKS["ack-timeout"], [RECORDINGS / "slow-consumer.jsonl"], diagnose_fn=fake)
    assert fake.calls == [([str(RECORDINGS / "slow-consumer.jsonl")], {})]
    status = {r.code: r.status for r in ev.results}
    assert status["ack-late"] == runbooks.APPLIES
    assert {s for c, s in status.items() if c != "ack-late"} == {runbooks.CLEAR}
    (late,) = ev.applies
    assert late.reason == "4 envelopes acked after 3 s (worst 4.5 s)"
    assert late.findings[0]["evidence"]["worst_ms"] == 4500.0
    assert late.findings[0]["runbook"] == "ack-timeout"
    assert ev.to_dict()["applies"] == ["ack-late"]


def test_findings_of_other_runbooks_do_not_mark_this_one():
    fake = FakeDiagnose(late_ack_finding())
    ev = runbooks.evaluate(BOOKS["disconnect-storm"], [RECORDINGS / "steady.jsonl"], diagnose_fn=fake)
    assert ev.applies == []


def test_missing_record_kinds_mean_cannot_judge(tmp_path):
    only_hello = tmp_path / "hello.jsonl"
    only_hello.write_bytes(dumps(make("hello", t=1.0, source="probe", conn="c1", num_connections=1)) + b"\n")
    ev = runbooks.evaluate(BOOKS["ack-timeout"], [only_hello], diagnose_fn=FakeDiagnose())
    assert {r.status for r in ev.results} == {runbooks.CANNOT_JUDGE}
    by_code = {r.code: r for r in ev.results}
    assert by_code["ack-late"].reason == "the input holds no envelope, ack records"
    assert ev.kinds == ["hello"]


def test_alternative_kinds_satisfy_a_check(tmp_path):
    rec = tmp_path / "rec.jsonl"
    rec.write_bytes(dumps(make("disconnect", t=1.0, source="probe", conn="c1", reason="warning")) + b"\n")
    ev = runbooks.evaluate(BOOKS["auth-failure"], [rec], diagnose_fn=FakeDiagnose())
    status = {r.code: r.status for r in ev.results}
    assert status == {"auth-error": runbooks.CANNOT_JUDGE, "link-disabled": runbooks.CLEAR}


def test_kinds_reported_by_diagnose_win_over_reading_the_file(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("2024-02-15 14:32:20,957 INFO slack_sdk.socket_mode: A new session has been established\n")
    fake = FakeDiagnose(overview={"kinds": {"envelope": 12, "ack": 12, "hello": 1, "queue": 0}})
    ev = runbooks.evaluate(BOOKS["queue-overflow"], [log], diagnose_fn=fake)
    assert ev.kinds == ["ack", "envelope", "hello"]  # a zero count is no data
    status = {r.code: r.status for r in ev.results}
    assert status == {
        "queue-growing": runbooks.CANNOT_JUDGE,
        "queue-wait-growing": runbooks.CANNOT_JUDGE,  # acks, but no handler starts
        "events-shed": runbooks.CANNOT_JUDGE,
        "queue-wait-hidden": runbooks.CANNOT_JUDGE,  # ack latency, but no handler times to pair it with
    }


def test_caveats_for_this_runbook_are_kept(tmp_path):
    fake = FakeDiagnose(
        overview={"kinds": {"connect": 3, "api_call": 3}},
        caveats=[
            "disconnect-storm: no connects or reconnects in this data; reconnect rate not judged",
            "ack-timeout: no ack timing in this log",
        ],
    )
    ev = runbooks.evaluate(
        BOOKS["disconnect-storm"], [RECORDINGS / "slack-sdk-reconnects.log"], diagnose_fn=fake
    )
    assert {r.code: r.status for r in ev.results} == {
        "reconnect-burst": runbooks.CLEAR,
        "too-many-websockets": runbooks.CLEAR,
        "connections-above-expected": runbooks.CANNOT_JUDGE,
        "open-ratelimited": runbooks.CLEAR,
    }
    assert ev.caveats == [
        "disconnect-storm: no connects or reconnects in this data; reconnect rate not judged"
    ]
    assert "note: disconnect-storm: no connects" in runbooks.evaluation_text(ev)


def test_a_report_that_does_not_count_kinds_is_judged_with_a_caveat(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("[WARN]  socket-mode:SlackWebSocket:17 A pong wasn't received from the server\n")
    ev = runbooks.evaluate(BOOKS["silent-deafness"], [log], diagnose_fn=FakeDiagnose(overview={}))
    assert ev.kinds is None
    assert {r.status for r in ev.results} == {runbooks.CLEAR}
    assert all("could not tell" in r.reason for r in ev.results)


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        runbooks.evaluate(BOOKS["ack-timeout"], [tmp_path / "nope.db"], diagnose_fn=FakeDiagnose())


def test_evaluation_text_lists_every_check_and_the_evidence():
    ev = runbooks.evaluate(
        BOOKS["ack-timeout"],
        [RECORDINGS / "slow-consumer.jsonl"],
        diagnose_fn=FakeDiagnose(late_ack_finding()),
    )
    text = runbooks.evaluation_text(ev)
    assert "[APPLIES] ack-late: 4 envelopes acked after 3 s" in text
    assert "worst_ms: 4500.0" in text
    assert "[clear] never-acked: not seen in the data" in text
    full = runbooks.to_text(BOOKS["ack-timeout"], ev)
    assert full.index("Checks against") < full.index("## Symptoms")


# ------------------------------------------------------------------ the real diagnose over recorded scenarios


@pytest.mark.parametrize(
    ("recording", "slug", "code"),
    [
        ("disconnect-storm.jsonl", "disconnect-storm", "reconnect-burst"),
        ("disconnect-storm.jsonl", "disconnect-storm", "too-many-websockets"),
        ("disconnect-storm.jsonl", "disconnect-storm", "open-ratelimited"),
        ("slow-consumer.jsonl", "ack-timeout", "ack-late"),
        ("slow-consumer.jsonl", "ack-timeout", "timeout-retries"),
        ("slow-consumer.jsonl", "retry-duplication", "duplicate-processing"),
    ],
)
def test_a_scenario_recording_marks_the_matching_checks(recording, slug, code):
    ev = runbooks.evaluate(BOOKS[slug], [RECORDINGS / recording], diagnose_fn=diagnose)
    applies = {r.code: r for r in ev.applies}
    assert code in applies, f"{recording}: {[(r.code, r.status, r.reason) for r in ev.results]}"
    assert applies[code].findings[0]["evidence"], "a finding must carry its evidence"


def test_a_healthy_recording_marks_no_check_in_any_runbook():
    for slug in SLUGS:
        ev = runbooks.evaluate(BOOKS[slug], [RECORDINGS / "steady.jsonl"], diagnose_fn=diagnose)
        assert ev.applies == [], f"{slug}: {[(r.code, r.reason) for r in ev.applies]}"


def test_a_foreign_log_is_judged_from_the_kinds_diagnose_read():
    log = RECORDINGS / "slack-sdk-reconnects.log"
    ev = runbooks.evaluate(BOOKS["disconnect-storm"], [log], diagnose_fn=diagnose)
    status = {r.code: r.status for r in ev.results}
    assert status["open-ratelimited"] == runbooks.APPLIES
    assert status["connections-above-expected"] == runbooks.CANNOT_JUDGE  # no hello lines in an INFO log
    assert status["too-many-websockets"] == runbooks.CLEAR
    assert "connect" in ev.kinds


def test_every_detector_and_every_finding_it_can_name_has_a_runbook():
    from slackops.diagnose.detectors import ALL

    assert {d.slug for d in ALL} <= set(BOOKS)
    named = set()
    for path in (ROOT / "slackops" / "diagnose" / "detectors").glob("*.py"):
        # Every finding code a detector's source names must be answered by that code's runbook.
        for code in set(re.findall(r'Finding\(\s*"([a-z0-9-]+)"', path.read_text())):
            assert code in BOOKS[CODES[code].slug].codes, f"{path.name}: {code}"
            named.add(code)
    assert len(named) >= len(ALL)
