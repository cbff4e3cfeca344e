"""Runbooks: one Markdown file per failure mode, loaded, found, rendered and checked against recorded data.

A runbook is ``runbooks/<slug>.md`` in the repository (shipped inside the wheel as ``slackops/_runbooks``). It
opens with a small front-matter block in a strict ``key: value`` subset of YAML, so GitHub still renders it as
a table and no YAML library is needed::

    ---
    slug: ack-timeout
    title: Ack timeout — envelopes acked after Slack's 3 s deadline
    severity: critical
    codes: [ack-late, never-acked]
    scenarios: [slow-consumer]
    related: [queue-overflow, retry-duplication]
    needs:
      ack-late: [envelope, ack]
      never-acked: [envelope]
    ---

``codes`` are finding codes from :data:`slackops.findings.CODES` that belong to this slug; each is one
machine-checkable *confirm-check*. ``needs`` lists, per code, the record kinds an input must hold before the
absence of that finding means "does not apply" rather than "cannot judge" (``a|b`` means either kind will do).
``scenarios`` are simulator scenarios that rehearse the failure (``slackops verify --scenario ...``).

The body is Markdown with these ``##`` sections, in this order: Symptoms, Confirm, Likely causes, Fix,
Prove the fix, Prevention and alerts. Anything before the first section is the runbook's summary.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from slackops.errors import ConfigError, InputError, UsageError
from slackops.findings import CODES, SLUGS

#: Severity words a runbook may declare (the same words :class:`slackops.findings.Severity` prints).
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

#: The ``##`` sections every runbook has, in this order.
SECTIONS: tuple[str, ...] = (
    "Symptoms",
    "Confirm",
    "Likely causes",
    "Fix",
    "Prove the fix",
    "Prevention and alerts",
)

#: Simulator scenarios a runbook may point at. Kept in step with the simulator's scenario files (a test checks
#: this list against them once the simulator ships them).
SCENARIOS: tuple[str, ...] = (
    "steady",
    "refresh-churn",
    "disconnect-storm",
    "half-open",
    "slow-consumer",
    "ghost-connections",
    "rate-limited-open",
    "auth-errors",
    "cost-spike",
    "self-loop",
    "fan-out",
)

_KEYS_REQUIRED = ("slug", "title", "severity", "codes", "scenarios", "needs")
_KEYS_OPTIONAL = ("related",)
_KEY = re.compile(r"[a-z][a-z0-9_-]*")
_TOKEN = re.compile(r"[A-Za-z0-9_.|-]+")

#: Check statuses, worst first.
APPLIES, CANNOT_JUDGE, CLEAR = "applies", "cannot-judge", "clear"


# --------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Check:
    """One confirm-check: a finding code, and the record kinds the input must hold to judge it."""

    code: str
    title: str
    #: each item is a kind, or alternatives joined by ``|``
    needs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "needs": list(self.needs)}


@dataclass(frozen=True)
class Section:
    """One ``##`` section of a runbook body."""

    title: str
    body: str

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "body": self.body}


@dataclass(frozen=True)
class Runbook:
    """A parsed runbook: its front matter, its sections, and the Markdown it came from."""

    slug: str
    title: str
    severity: str
    codes: tuple[str, ...]
    checks: tuple[Check, ...]
    scenarios: tuple[str, ...]
    related: tuple[str, ...]
    summary: str
    sections: tuple[Section, ...]
    #: the Markdown body (everything after the front matter)
    markdown: str
    #: where it was read from (a path inside the wheel or the checkout)
    origin: str = ""

    def section(self, title: str) -> Section:
        """The section called ``title`` (raises ``KeyError`` if absent)."""
        for sec in self.sections:
            if sec.title == title:
                return sec
        raise KeyError(title)

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.title,
            "severity": self.severity,
            "codes": list(self.codes),
            "checks": [c.to_dict() for c in self.checks],
            "scenarios": list(self.scenarios),
            "related": list(self.related),
            "summary": self.summary,
            "sections": [s.to_dict() for s in self.sections],
        }


# --------------------------------------------------------------------------------------------------- parsing


def parse_front_matter(text: str, *, path: str = "<runbook>") -> tuple[dict[str, Any], str, int]:
    """Split ``text`` into (front matter, body, line number where the body starts).

    The front matter is a strict subset of YAML: ``key: value``, ``key: [a, b]``, and ``key:`` followed by
    indented ``sub: value`` / ``sub: [a, b]`` lines (a one-level map). Anything else is a :class:`ConfigError`
    pointing at the line.
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ConfigError("a runbook must start with a '---' front-matter line", path=path, line=1)
    meta: dict[str, Any] = {}
    current_map: dict[str, Any] | None = None
    for number, raw in enumerate(lines[1:], start=2):
        if raw.strip() == "---":
            return meta, "\n".join(lines[number:]), number + 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indented = raw[0] in " \t"
        key, value = _split_pair(raw.strip(), path, number)
        if indented:
            if current_map is None:
                raise ConfigError(
                    f"indented line {raw.strip()!r} belongs to no map key", path=path, line=number
                )
            target = current_map
        else:
            current_map = None
            target = meta
        if key in target:
            raise ConfigError(f"duplicate key {key!r}", path=path, line=number)
        if value == "" and not indented:
            current_map = target[key] = {}
        else:
            target[key] = _parse_value(value, path, number)
    raise ConfigError("front matter has no closing '---' line", path=path, line=len(lines))


def _split_pair(line: str, path: str, number: int) -> tuple[str, str]:
    key, sep, value = line.partition(":")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        raise ConfigError(f"expected 'key: value', got {line!r}", path=path, line=number)
    return key, value.strip()


def _parse_value(value: str, path: str, number: int) -> str | list[str]:
    if value.startswith("["):
        if not value.endswith("]"):
            raise ConfigError(f"unclosed list {value!r}", path=path, line=number)
        items = [item.strip() for item in value[1:-1].split(",") if item.strip()]
        for item in items:
            if not _TOKEN.fullmatch(item):
                raise ConfigError(f"list item {item!r} is not a plain name", path=path, line=number)
        return items
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    if not value:
        raise ConfigError("empty value", path=path, line=number)
    return value


def parse(text: str, *, path: str = "<runbook>", expected_slug: str | None = None) -> Runbook:
    """Parse and validate one runbook. Every problem is a :class:`ConfigError` naming the file and line."""
    meta, body, body_line = parse_front_matter(text, path=path)
    for key in _KEYS_REQUIRED:
        if key not in meta:
            raise ConfigError(f"front matter lacks {key!r}", path=path)
    for key in meta:
        if key not in _KEYS_REQUIRED and key not in _KEYS_OPTIONAL:
            known = ", ".join(_KEYS_REQUIRED + _KEYS_OPTIONAL)
            raise ConfigError(f"unknown front-matter key {key!r}; known keys: {known}", path=path)
    slug = _scalar(meta, "slug", path)
    if expected_slug is not None and slug != expected_slug:
        raise ConfigError(f"slug {slug!r} does not match the file name {expected_slug!r}", path=path)
    severity = _scalar(meta, "severity", path)
    if severity not in SEVERITIES:
        raise ConfigError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}", path=path)
    codes = tuple(_list(meta, "codes", path))
    if not codes:
        raise ConfigError("a runbook must answer at least one finding code", path=path)
    for code in codes:
        if code not in CODES:
            raise ConfigError(f"unknown finding code {code!r} (see slackops.findings.CODES)", path=path)
        if CODES[code].slug != slug:
            raise ConfigError(f"finding code {code!r} belongs to runbook {CODES[code].slug!r}", path=path)
    checks = _checks(meta, codes, path)
    scenarios = tuple(_list(meta, "scenarios", path))
    for name in scenarios:
        if name not in SCENARIOS:
            raise ConfigError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}", path=path)
    related = tuple(_list(meta, "related", path)) if "related" in meta else ()
    for other in related:
        if other not in SLUGS or other == slug:
            raise ConfigError(f"related runbook {other!r} is not another runbook slug", path=path)
    summary, sections = _sections(body, path, body_line)
    return Runbook(
        slug=slug,
        title=_scalar(meta, "title", path),
        severity=severity,
        codes=codes,
        checks=checks,
        scenarios=scenarios,
        related=related,
        summary=summary,
        sections=sections,
        markdown=body.strip("\n") + "\n",
        origin=path,
    )


def _scalar(meta: Mapping[str, Any], key: str, path: str) -> str:
    value = meta[key]
    if not isinstance(value, str):
        raise ConfigError(f"{key!r} must be a single value, not a list or map", path=path)
    return value


def _list(meta: Mapping[str, Any], key: str, path: str) -> list[str]:
    value = meta[key]
    if not isinstance(value, list):
        raise ConfigError(f"{key!r} must be a list like [a, b]", path=path)
    return value


def _checks(meta: Mapping[str, Any], codes: Sequence[str], path: str) -> tuple[Check, ...]:
    from slackops.records import KINDS

    needs = meta["needs"]
    if not isinstance(needs, dict):
        raise ConfigError("'needs' must be a map of finding code -> [record kinds]", path=path)
    if set(needs) != set(codes):
        missing, extra = sorted(set(codes) - set(needs)), sorted(set(needs) - set(codes))
        raise ConfigError(
            f"'needs' must list exactly the codes (missing {missing}, extra {extra})", path=path
        )
    checks = []
    for code in codes:
        kinds = needs[code]
        if not isinstance(kinds, list) or not kinds:
            raise ConfigError(f"needs.{code} must be a non-empty list of record kinds", path=path)
        for alternatives in kinds:
            for kind in alternatives.split("|"):
                if kind not in KINDS:
                    raise ConfigError(f"needs.{code}: {kind!r} is not a record kind", path=path)
        checks.append(Check(code, CODES[code].title, tuple(kinds)))
    return tuple(checks)


def _sections(body: str, path: str, first_line: int) -> tuple[str, tuple[Section, ...]]:
    summary: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    fenced = False
    for offset, line in enumerate(body.splitlines()):
        # A '## ' inside a fenced code block (a shell comment, say) is not a heading.
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            title = line[3:].strip()
            if title not in SECTIONS:
                raise ConfigError(
                    f"unexpected section {title!r}; sections are: {', '.join(SECTIONS)}",
                    path=path,
                    line=first_line + offset,
                )
            sections.append((title, []))
        elif sections:
            sections[-1][1].append(line)
        else:
            summary.append(line)
    titles = [title for title, _ in sections]
    if titles != list(SECTIONS):
        raise ConfigError(f"sections must be, in order: {', '.join(SECTIONS)} (found: {titles})", path=path)
    parsed = tuple(Section(title, "\n".join(lines).strip("\n")) for title, lines in sections)
    return "\n".join(summary).strip("\n"), parsed


# --------------------------------------------------------------------------------------------------- loading


def runbook_dir() -> Traversable:
    """Where the runbooks live: inside the installed wheel, else the source checkout's ``runbooks/``."""
    # An editable install may leave a stale, partial _runbooks beside the package: only a full one counts.
    shipped = resources.files("slackops") / "_runbooks"
    if shipped.is_dir() and any(p.name.endswith(".md") and p.name != "README.md" for p in shipped.iterdir()):
        return shipped
    checkout = Path(__file__).resolve().parent.parent / "runbooks"
    if checkout.is_dir():
        return checkout
    raise InputError(
        "cannot find the runbooks: neither slackops/_runbooks in the installed package nor runbooks/ in a checkout",
        hint="Reinstall slackops from a wheel (pip install --force-reinstall slackops).",
    )


def load_all(directory: Traversable | Path | str | None = None) -> list[Runbook]:
    """Every runbook, failure-mode order first (the order of :data:`slackops.findings.SLUGS`)."""
    where: Traversable = Path(directory) if isinstance(directory, str) else (directory or runbook_dir())
    books = []
    for entry in where.iterdir():
        if not entry.name.endswith(".md") or entry.name == "README.md":
            continue
        slug = entry.name[: -len(".md")]
        books.append(parse(entry.read_text(encoding="utf-8"), path=str(entry), expected_slug=slug))
    order = {slug: i for i, slug in enumerate(SLUGS)}
    return sorted(books, key=lambda b: (order.get(b.slug, len(order)), b.slug))


def catalogue_problems(books: Iterable[Runbook]) -> list[str]:
    """What is missing between the runbooks and the finding catalogue (empty when they agree)."""
    by_slug = {b.slug: b for b in books}
    problems = [f"no runbook for failure mode {slug!r}" for slug in SLUGS if slug not in by_slug]
    problems += [f"runbook {slug!r} is not a failure mode in SLUGS" for slug in by_slug if slug not in SLUGS]
    for code, info in CODES.items():
        book = by_slug.get(info.slug)
        if book is not None and code not in book.codes:
            problems.append(f"runbook {info.slug!r} does not list finding code {code!r}")
    return problems


def find(name: str, books: Sequence[Runbook] | None = None) -> Runbook:
    """The runbook called ``name`` (a slug, or a finding code, which leads to its runbook).

    Unknown names raise :class:`UsageError` suggesting the nearest slugs.
    """
    books = list(books) if books is not None else load_all()
    key = name.strip().lower()
    slug = CODES[key].slug if key in CODES else key
    for book in books:
        if book.slug == slug:
            return book
    near = suggest(key, [b.slug for b in books])
    hint = "List them all with: slackops runbook"
    if near:
        raise UsageError(f"no runbook named {name!r}; did you mean {' or '.join(near)}?", hint=hint)
    raise UsageError(f"no runbook named {name!r}", hint=hint)


def suggest(name: str, slugs: Sequence[str], n: int = 3) -> list[str]:
    """The slugs nearest to ``name``: close spellings first, then slugs owning a close finding code."""
    near = difflib.get_close_matches(name, slugs, n=n, cutoff=0.6)
    for code in difflib.get_close_matches(name, list(CODES), n=n, cutoff=0.6):
        slug = CODES[code].slug
        if slug in slugs and slug not in near:
            near.append(slug)
    if not near and len(name) >= 3:
        # Single words ("storm", "ghost") match a word of a slug, or of a finding code owned by a slug.
        words = [(s, s) for s in slugs] + [(c, info.slug) for c, info in CODES.items() if info.slug in slugs]
        for text, slug in words:
            if any(part.startswith(name) for part in text.split("-")) and slug not in near:
                near.append(slug)
    return near[:n]


# --------------------------------------------------------------------------------------------------- evaluation


@dataclass
class CheckResult:
    """The verdict of one confirm-check on the user's data."""

    code: str
    title: str
    #: ``applies`` (the detector fired), ``clear`` (it could judge and did not fire), ``cannot-judge``
    status: str
    reason: str
    #: the findings' summaries, evidence and cost, one per finding of this code
    findings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "findings": self.findings,
        }


@dataclass
class Evaluation:
    """A runbook's confirm-checks evaluated against one or more recordings or logs."""

    slug: str
    inputs: list[str]
    results: list[CheckResult]
    #: record kinds seen in the input, when they could be established
    kinds: list[str] | None
    #: what diagnose said it could not judge for this failure mode
    caveats: list[str] = field(default_factory=list)

    @property
    def applies(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == APPLIES]

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "inputs": self.inputs,
            "applies": [r.code for r in self.applies],
            "kinds": self.kinds,
            "caveats": self.caveats,
            "checks": [r.to_dict() for r in self.results],
        }


DiagnoseFn = Callable[..., Any]


def evaluate(
    book: Runbook,
    paths: Sequence[str | Path],
    *,
    diagnose_fn: DiagnoseFn | None = None,
    **diagnose_options: Any,
) -> Evaluation:
    """Run ``diagnose`` over ``paths`` and mark each of ``book``'s checks applies / clear / cannot-judge.

    ``diagnose_fn`` defaults to :func:`slackops.diagnose.diagnose` (``diagnose(paths, **options) -> Report``
    with ``report.findings``). A check *applies* when a finding of its code was reported; it is *clear* when
    the input holds the record kinds the check needs and no such finding was reported; otherwise the data
    cannot say (*cannot-judge*) — e.g. an ack-latency check over a log with no ack lines.
    """
    inputs = [str(p) for p in paths]
    for p in inputs:
        if not Path(p).exists():
            raise InputError(
                f"no such file: {p}", hint="Pass a slackops recording (--db) or a log file (--log)."
            )
    if diagnose_fn is None:
        from slackops.diagnose import diagnose as diagnose_fn
    report = diagnose_fn(inputs, **diagnose_options)
    by_code: dict[str, list[dict[str, Any]]] = {}
    for finding in getattr(report, "findings", []):
        by_code.setdefault(finding.code, []).append(_finding_dict(finding))
    kinds = _kinds_seen(report)
    results = [_judge(check, by_code.get(check.code, []), kinds) for check in book.checks]
    # Detectors say what they could not judge as "<slug>: ..." caveats; keep this runbook's.
    caveats = [str(c) for c in getattr(report, "caveats", None) or [] if str(c).startswith(book.slug + ":")]
    return Evaluation(book.slug, inputs, results, sorted(kinds) if kinds is not None else None, caveats)


def _judge(check: Check, findings: list[dict[str, Any]], kinds: set[str] | None) -> CheckResult:
    if findings:
        summary = findings[0].get("summary") or check.title
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return CheckResult(check.code, check.title, APPLIES, summary + more, findings)
    if kinds is None:
        return CheckResult(
            check.code,
            check.title,
            CLEAR,
            "not reported (could not tell which record kinds the input holds)",
        )
    missing = [alts for alts in check.needs if not set(alts.split("|")) & kinds]
    if missing:
        what = ", ".join(alts.replace("|", " or ") for alts in missing)
        return CheckResult(check.code, check.title, CANNOT_JUDGE, f"the input holds no {what} records")
    return CheckResult(check.code, check.title, CLEAR, "not seen in the data")


def _finding_dict(finding: Any) -> dict[str, Any]:
    if hasattr(finding, "to_dict"):
        return finding.to_dict()
    return {"code": finding.code, "summary": finding.summary, "evidence": dict(finding.evidence or {})}


def _kinds_seen(report: Any) -> set[str] | None:
    """Record kinds the input holds, as diagnose counted them (``report.overview["kinds"]``: kind -> count).

    diagnose's readers understand foreign logs too, so this works for ``--log`` as for ``--db``; a report that
    does not say leaves it unknown (``None``).
    """
    overview = getattr(report, "overview", None)
    counts = overview.get("kinds") if isinstance(overview, Mapping) else None
    if not isinstance(counts, Mapping):
        return None
    return {kind for kind, n in counts.items() if n}


# --------------------------------------------------------------------------------------------------- rendering

_STATUS_MARK = {APPLIES: "APPLIES", CLEAR: "clear", CANNOT_JUDGE: "cannot judge"}
_STATUS_STYLE = {APPLIES: "bold red", CLEAR: "green", CANNOT_JUDGE: "yellow"}


def to_json(books: Runbook | Sequence[Runbook], evaluation: Evaluation | None = None) -> str:
    """The structured content: one runbook (with its evaluation) or the list of runbooks."""
    if isinstance(books, Runbook):
        data = books.to_dict()
        if evaluation is not None:
            data["evaluation"] = evaluation.to_dict()
    else:
        data = [
            {"slug": b.slug, "severity": b.severity, "title": b.title, "codes": list(b.codes)} for b in books
        ]
    return json.dumps(data, indent=2, ensure_ascii=False)


def to_text(book: Runbook, evaluation: Evaluation | None = None) -> str:
    """Plain text for pipes and files: a header, the evaluation if any, then the Markdown as written."""
    head = [
        f"{book.title}",
        f"runbook: {book.slug}    severity: {book.severity}    codes: {', '.join(book.codes)}",
    ]
    if book.scenarios:
        head.append(f"rehearse: slackops verify --scenario {book.scenarios[0]} -- python bot.py")
    parts = ["\n".join(head)]
    if evaluation is not None:
        parts.append(evaluation_text(evaluation))
    parts.append(book.markdown.rstrip("\n"))
    return "\n\n".join(parts) + "\n"


def evaluation_text(evaluation: Evaluation) -> str:
    """The checks as plain lines: status, code, reason, and the evidence of those that apply."""
    lines = [f"Checks against {', '.join(evaluation.inputs)}:"]
    for res in evaluation.results:
        lines.append(f"  [{_STATUS_MARK[res.status]}] {res.code}: {res.reason}")
        for finding in res.findings:
            evidence = finding.get("evidence") or {}
            for key, value in evidence.items():
                lines.append(f"      {key}: {_short(value, key=key)}")
    lines += [f"  note: {caveat}" for caveat in evaluation.caveats]
    return "\n".join(lines)


def list_text(books: Sequence[Runbook]) -> str:
    """One line per runbook: slug, severity, title (tab-separated for ``cut``/``awk``)."""
    return "".join(f"{b.slug}\t{b.severity}\t{b.title}\n" for b in books)


def _short(value: Any, limit: int = 160, key: str = "") -> str:
    if (key == "t" or key.endswith("_t")) and isinstance(value, (int, float)) and not isinstance(value, bool):
        from slackops.records import iso

        return iso(value)  # epoch seconds mean nothing at 3 a.m.
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(book: Runbook, console: Any, evaluation: Evaluation | None = None) -> None:
    """Print ``book`` on a rich console: Markdown on a terminal, plain text otherwise (no ANSI in pipes)."""
    if not console.is_terminal:
        console.file.write(to_text(book, evaluation))
        return
    from rich.markdown import Markdown
    from rich.panel import Panel
    from rich.text import Text

    header = Text()
    header.append(book.title, style="bold")
    header.append(f"\nrunbook {book.slug}  ·  severity ")
    header.append(book.severity, style=_severity_style(book.severity))
    header.append(f"  ·  codes {', '.join(book.codes)}")
    # soft_wrap=False: the shared stdout console soft-wraps (good for data), which would crop Markdown.
    console.print(Panel(header, expand=False), soft_wrap=False)
    if evaluation is not None:
        console.print(_evaluation_table(evaluation), soft_wrap=False)
    console.print(Markdown(book.markdown, code_theme="ansi_dark", hyperlinks=False), soft_wrap=False)


def render_list(books: Sequence[Runbook], console: Any) -> None:
    """Print the runbook index: a table on a terminal, tab-separated lines otherwise."""
    if not console.is_terminal:
        console.file.write(list_text(books))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title="slackops runbooks", title_justify="left")
    table.add_column("slug", style="bold")
    table.add_column("severity")
    table.add_column("title")
    for b in books:
        table.add_row(b.slug, Text(b.severity, style=_severity_style(b.severity)), Text(b.title))
    console.print(table, soft_wrap=False)
    console.print(
        "Read one with: slackops runbook SLUG  (add --db slackops.db to check it against a recording)"
    )


def _evaluation_table(evaluation: Evaluation) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Checks against {', '.join(evaluation.inputs)}", title_justify="left")
    table.add_column("status")
    table.add_column("check")
    table.add_column("evidence")
    for res in evaluation.results:
        evidence = [res.reason]
        for finding in res.findings:
            evidence += [f"{k}: {_short(v, 100, k)}" for k, v in (finding.get("evidence") or {}).items()]
        table.add_row(
            Text(_STATUS_MARK[res.status], style=_STATUS_STYLE[res.status]),
            Text(res.code),
            # Evidence comes from the user's data: never interpret it as Rich markup.
            Text("\n".join(evidence)),
        )
    for caveat in evaluation.caveats:
        table.add_row(Text("note", style="dim"), Text(""), Text(caveat))
    return table


def _severity_style(severity: str) -> str:
    return {"critical": "bold red", "warning": "yellow"}.get(severity, "cyan")
