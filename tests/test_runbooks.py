"""Runbooks: one per failure mode, valid front matter, codes from the catalogue, content a 3 a.m. reader needs."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from slackops import runbooks
from slackops.errors import ConfigError, UsageError
from slackops.findings import CODES, SLUGS
from slackops.records import loads

ROOT = Path(__file__).resolve().parents[1]
RUNBOOKS = ROOT / "runbooks"
RECORDINGS = Path(__file__).parent / "fixtures" / "recordings"

BOOKS = runbooks.load_all(RUNBOOKS)
BY_SLUG = {b.slug: b for b in BOOKS}


def test_every_failure_mode_has_a_runbook_and_every_code_is_answered():
    assert [b.slug for b in BOOKS] == list(SLUGS)
    assert runbooks.catalogue_problems(BOOKS) == []


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.slug)
def test_front_matter_names_codes_of_its_own_slug(book):
    assert book.codes, book.slug
    for code in book.codes:
        assert CODES[code].slug == book.slug
    assert [c.code for c in book.checks] == list(book.codes)
    assert book.severity in runbooks.SEVERITIES
    assert book.scenarios and set(book.scenarios) <= set(runbooks.SCENARIOS)
    assert set(book.related) <= set(SLUGS) - {book.slug}


def test_loader_prefers_the_checkout_in_a_source_tree():
    # An editable install has no slackops/_runbooks with runbooks in it: the loader falls back to the checkout.
    assert Path(str(runbooks.runbook_dir())).resolve() == RUNBOOKS.resolve()
    assert [b.slug for b in runbooks.load_all()] == list(SLUGS)


def test_scenarios_exist_in_the_simulator():
    shipped = ROOT / "slackops" / "simulator" / "scenarios"
    if not shipped.is_dir():
        pytest.skip("the simulator's scenario files are not in this tree yet")
    names = {p.stem for p in shipped.glob("*.toml")}
    assert set(runbooks.SCENARIOS) <= names
    for book in BOOKS:
        assert set(book.scenarios) <= names, book.slug


# ----------------------------------------------------------------------------------------------- content


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.slug)
def test_sections_carry_commands_to_paste(book):
    confirm = book.section("Confirm").body
    assert f"slackops runbook {book.slug} --" in confirm
    assert "slackops diagnose" in confirm
    assert "sqlite3" in confirm
    for code in book.codes:
        assert f"`{code}`" in confirm, f"{book.slug}: Confirm does not name check {code}"
    fix = book.section("Fix").body
    for who in ("slackops.bot", "Bolt Python", "Bolt JS"):
        assert who in fix, f"{book.slug}: Fix has no pointer for {who}"
    prove = book.section("Prove the fix").body
    assert f"slackops verify --scenario {book.scenarios[0]} --" in prove
    causes = book.section("Likely causes").body
    assert re.search(r"^(1\.|\| )", causes, re.M), f"{book.slug}: causes are not ranked"
    assert book.section("Prevention and alerts").body.strip()
    assert book.summary.strip()


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.slug)
def test_links_between_runbooks_resolve(book):
    for target in re.findall(r"\]\(([^)]+\.md)\)", book.markdown):
        assert (RUNBOOKS / target).is_file(), f"{book.slug} links to missing {target}"


def test_the_trio_is_complete_and_cross_linked():
    trio = ("disconnect-storm", "ack-timeout", "queue-overflow")
    for slug in trio:
        for other in trio:
            if other != slug:
                assert f"({other}.md)" in BY_SLUG[slug].markdown, f"{slug} does not link {other}"


def test_mission_content_lives_where_the_reader_needs_it():
    storm = BY_SLUG["disconnect-storm"].section("Fix").body
    for step in (
        "apps.connections.open",
        "hello",
        '"warning"',
        '"refresh_requested"',
        "overlap window",
        "drain A",
    ):
        assert step in storm, step
    assert (
        storm.index("apps.connections.open") < storm.index('"warning"') < storm.index('"refresh_requested"')
    )
    assert "Make-before-break with an overlap window" in storm and "reconnect_lock" in storm
    ack = BY_SLUG["ack-timeout"].section("Fix").body
    assert "Ack first, then process" in ack
    assert ack.index("ack(env)") < ack.index("queue.put(env)")
    dedup = BY_SLUG["retry-duplication"].section("Fix").body
    for part in ("event_id", "insert-if-absent", "TTL >= 10 min", "Shared store", "ON CONFLICT", "NX"):
        assert part in dedup, part
    assert "Ordering-tolerance guidance" in BY_SLUG["out-of-order"].section("Fix").body


def test_no_runbook_promises_exactly_once():
    for book in BOOKS:
        for line in book.markdown.splitlines():
            if re.search(r"exactly[- ]once", line, re.I):
                assert re.search(r"\b(never|no|not)\b", line, re.I), f"{book.slug}: {line.strip()}"


def test_slack_facts_agree_with_the_reference():
    text = "\n".join(b.markdown for b in BOOKS)
    assert "3 seconds" in BY_SLUG["ack-timeout"].summary
    assert "18060" in text and "360 s" in text and "too_many_websockets" in text
    assert "10-connection cap" in BY_SLUG["disconnect-storm"].summary
    # Wrong numbers that are easy to write by mistake.
    for wrong in ("5 seconds to ack", "within 5 s", "20 connections", "every hour", "TTL of 60 s"):
        assert wrong not in text


def _recording_db(tmp_path: Path) -> Path:
    """All fixture recordings in one SQLite file, written by the real store (the schema users query)."""
    from slackops.store import RecordWriter

    db = tmp_path / "slackops.db"
    with RecordWriter(db=str(db)) as writer:
        for path in sorted(RECORDINGS.glob("*.jsonl")):
            for line in path.read_bytes().splitlines():
                writer.write(loads(line))
    return db


def test_every_sql_snippet_runs_against_a_recording(tmp_path):
    db = sqlite3.connect(_recording_db(tmp_path))
    snippets = 0
    for book in BOOKS:
        for sql in re.findall(r'sqlite3 [^"\n]*slackops\.db "(.*?)"', book.markdown, re.S):
            for statement in filter(str.strip, sql.split(";")):
                try:
                    db.execute(statement).fetchall()
                except sqlite3.Error as exc:
                    pytest.fail(f"{book.slug}: {exc}\n{statement}")
                snippets += 1
    assert snippets >= 30


# ----------------------------------------------------------------------------------------------- finding


def test_find_by_slug_or_finding_code():
    assert runbooks.find("ack-timeout", BOOKS).slug == "ack-timeout"
    assert runbooks.find("ACK-TIMEOUT ", BOOKS).slug == "ack-timeout"
    assert runbooks.find("ghost-connections", BOOKS).slug == "silent-deafness"


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("ack-timout", "ack-timeout"),
        ("disconect-storm", "disconnect-storm"),
        ("storm", "disconnect-storm"),
        ("ghost", "silent-deafness"),
        ("duplicate-procesing", "retry-duplication"),
    ],
)
def test_unknown_slug_suggests_the_nearest(typo, expected):
    with pytest.raises(UsageError) as err:
        runbooks.find(typo, BOOKS)
    assert f"no runbook named {typo!r}; did you mean" in err.value.message
    assert expected in err.value.message


def test_unknown_slug_with_nothing_near():
    with pytest.raises(UsageError) as err:
        runbooks.find("zzzz", BOOKS)
    assert "did you mean" not in err.value.message and "slackops runbook" in err.value.hint


# ----------------------------------------------------------------------------------------------- parsing

GOOD = """---
slug: out-of-order
title: Out of order
severity: warning
codes: [order-inversion]
scenarios: [refresh-churn]
related: [ack-timeout]
needs:
  order-inversion: [envelope, process|queue]
---

Summary.

## Symptoms
s
## Confirm
```sh
## not a heading: a shell comment
```
## Likely causes
1. c
## Fix
f
## Prove the fix
p
## Prevention and alerts
a
"""


def test_parse_a_minimal_runbook():
    book = runbooks.parse(GOOD, expected_slug="out-of-order")
    assert book.checks[0].needs == ("envelope", "process|queue")
    assert book.summary == "Summary."
    assert "## not a heading" in book.section("Confirm").body
    assert book.to_dict()["sections"][0] == {"title": "Symptoms", "body": "s"}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("---\nslug", "slug", "must start with a '---'"),
        ("severity: warning", "severity: bad", "severity 'bad'"),
        ("severity: warning", "severity: warning\nseverity: info", "duplicate key 'severity'"),
        ("severity: warning", "severity: warning\ncolour: red", "unknown front-matter key 'colour'"),
        ("title: Out of order\n", "", "lacks 'title'"),
        ("slug: out-of-order", "slug: ack-timeout", "does not match the file name"),
        ("codes: [order-inversion]", "codes: [order-inversion, nope]", "unknown finding code 'nope'"),
        (
            "codes: [order-inversion]",
            "codes: [order-inversion, ack-late]",
            "belongs to runbook 'ack-timeout'",
        ),
        (
            "  order-inversion: [envelope, process|queue]",
            "  order-inversion: [envelope, frob]",
            "'frob' is not",
        ),
        ("  order-inversion: [envelope, process|queue]", "  other: [envelope]", "exactly the codes"),
        ("scenarios: [refresh-churn]", "scenarios: [nope]", "unknown scenario 'nope'"),
        ("related: [ack-timeout]", "related: [out-of-order]", "not another runbook slug"),
        ("codes: [order-inversion]", "codes: [order-inversion", "unclosed list"),
        ("## Fix\n", "## Fixes\n", "unexpected section 'Fixes'"),
        ("## Symptoms\ns\n", "", "sections must be, in order"),
        ("\n---\n\nSummary", "\n\nSummary", ":11: expected 'key: value', got 'Summary.'"),
        ("title: Out of order", "title out of order", "expected 'key: value'"),
        ("needs:\n  order-inversion: [envelope, process|queue]\n", "needs: [a]\n", "'needs' must be a map"),
    ],
)
def test_bad_front_matter_is_a_config_error_naming_the_file(old, new, message):
    text = GOOD.replace(old, new, 1)
    assert text != GOOD, old
    with pytest.raises(ConfigError) as err:
        runbooks.parse(text, path="runbooks/out-of-order.md", expected_slug="out-of-order")
    assert message in err.value.message
    assert err.value.message.startswith("runbooks/out-of-order.md")


def test_front_matter_without_its_closing_line():
    with pytest.raises(ConfigError) as err:
        runbooks.parse("---\nslug: out-of-order\n", path="x.md")
    assert err.value.message == "x.md:2: front matter has no closing '---' line"
