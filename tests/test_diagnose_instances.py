"""Several replicas in one recording: per-instance delivery share, and an instance that died holding work."""

from __future__ import annotations

from slackops import records
from slackops.diagnose.engine import diagnose_records


def envelope(t: float, instance: str, n: int) -> dict:
    return records.make(
        "envelope", t=t, source="bot", conn=f"{instance}.s0.1", instance=instance,
        envelope_id=f"env-{n}", type="events_api", event_id=f"Ev{n}", event_type="message", channel="C1",
    )  # fmt: skip


def process(t: float, instance: str, n: int, phase: str, **fields) -> dict:
    return records.make(
        "process", t=t, source="bot", instance=instance, event_id=f"Ev{n}", envelope_id=f"env-{n}", phase=phase, **fields
    )  # fmt: skip


def replicas(orphan_fields: dict) -> list[dict]:
    recs = []
    for n in range(30):
        inst = ("i1", "i2", "i3")[n % 3]
        recs.append(envelope(1000.0 + n, inst, n))
        if n != 7:
            recs.append(process(1000.2 + n, inst, n, "start"))
            recs.append(process(1000.4 + n, inst, n, "end", duration_ms=200.0))
    # Event 7 was acked by i2, which died; i3 reclaims it after the visibility timeout.
    recs.append(process(1040.0, "i3", 7, "requeue", **orphan_fields))
    recs.append(process(1040.1, "i3", 7, "start"))
    recs.append(process(1040.3, "i3", 7, "end", duration_ms=200.0))
    return sorted(recs, key=lambda r: r["t"])


def test_an_instance_that_died_holding_work_is_named():
    report = diagnose_records(replicas({"error": "orphan", "owner": "i2"}))
    (finding,) = [f for f in report.findings if f.code == "instance-died-with-work"]
    assert finding.runbook == "competing-consumers"
    assert finding.evidence["by_instance"] == {"i2": 1}
    assert finding.evidence["examples"] == ["Ev7"]


def test_a_single_instance_restart_is_not_a_dead_replica():
    # SQLite queue: the same process re-dispatches its own orphans on restart (no owner): lost-in-flight's
    # business, not a competing consumer.
    for fields in ({"error": "orphan"}, {"error": "orphan", "owner": "i3"}, {"error": "handler failed"}):
        codes = {f.code for f in diagnose_records(replicas(fields)).findings}
        assert "instance-died-with-work" not in codes, fields


def test_overview_shows_each_instance_share_of_deliveries():
    report = diagnose_records(replicas({"error": "orphan", "owner": "i2"}))
    assert report.to_dict()["overview"]["envelopes_by_instance"] == {"i1": 10, "i2": 10, "i3": 10}
