"""Shared machinery for the transport benchmarks (reliability, ack, recorder).

One benchmark process hosts the simulator (the common yardstick: its ack latency is measured server side, from
the envelope handed to the socket to the ack read back) and starts each contender as a child process, so a
contender's CPU is its own. Contenders alternate within one run; figures are medians over repetitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slackops.simulator import Simulator
from slackops.simulator.ledger import percentile

ROOT = Path(__file__).resolve().parent.parent

#: A contender must hold a live socket within this long of starting (imports of Bolt/slack-sdk take a while).
STARTUP_S = 30.0
#: SIGTERM -> SIGKILL.
STOP_S = 10.0
#: The latency ceiling of the throughput search (issue 10): "ack p99 under 50 ms".
P99_CEILING_MS = 50.0
#: Pacer resolution: events owed are sent every this many seconds (smoother than the simulator's 20 ms tick).
PACE_S = 0.005
POLL_S = 0.02


# -- contenders -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One client under test. ``client`` is a :mod:`bench.contenders` name, or ``slackops-bot``."""

    name: str
    client: str
    #: record while running (watch: its SQLite recording; sdk clients: slackops.instrument)
    record: bool = False

    def command(self, work: str, workdir: Path) -> list[str]:
        py = sys.executable
        if self.client == "slackops-bot":
            # The runtime as users run it: persist + dedup in SQLite before the ack, 2 sockets (its default).
            return [
                py,
                "-m",
                "slackops",
                "bot",
                "run",
                f"bench.contenders:handle_{work}",
                "--db",
                str(workdir / "bot.db"),
                "--drain-timeout",
                "2",
            ]
        cmd = [py, "-m", "bench.contenders", self.client, "--work", work]
        if self.record:
            cmd += ["--record" if self.client == "watch" else "--instrument", str(workdir / "rec.db")]
        return cmd


SLACKOPS_BOT = Contender("slackops.bot", "slackops-bot")
SDK_AIOHTTP = Contender("slack-sdk aiohttp", "sdk-aiohttp")
SDK_WEBSOCKETS = Contender("slack-sdk websockets", "sdk-websockets")
SDK_BUILTIN = Contender("slack-sdk builtin", "sdk-builtin")
#: The issue's yardstick: every ratio is against slack-sdk's aiohttp client.
BASELINE = SDK_AIOHTTP.name


def check_websockets_adapter() -> str | None:
    """``None`` if slack-sdk's websockets adapter imports here, else why not (it pins websockets majors)."""
    try:
        import slack_sdk.socket_mode.websockets  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def client_contenders() -> list[Contender]:
    """slackops.bot and every slack-sdk client that imports on this machine (a skipped one is announced)."""
    out = [SLACKOPS_BOT, SDK_AIOHTTP]
    problem = check_websockets_adapter()
    if problem is None:
        out.append(SDK_WEBSOCKETS)
    else:
        print(
            f"note: slack-sdk's websockets adapter does not import ({problem}); not measured", file=sys.stderr
        )
    out.append(SDK_BUILTIN)
    return out


def rotation(items: Sequence[Any], rep: int) -> list[Any]:
    """``items`` rotated by ``rep``: contenders alternate, so none always runs first on a warming machine."""
    k = rep % len(items)
    return [*items[k:], *items[:k]]


# -- a contender process ---------------------------------------------------------------------------------------


class BotProcess:
    """A contender running as a child process against ``sim``; output goes to a log file in ``workdir``."""

    def __init__(self, contender: Contender, sim: Simulator, work: str, workdir: Path) -> None:
        self.contender = contender
        self.sim = sim
        self.work = work
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = workdir / "bot.log"

    async def start(self) -> None:
        env = dict(os.environ)
        env.update(
            {
                "SLACK_APP_TOKEN": self.sim.app_token,
                "SLACK_BOT_TOKEN": self.sim.bot_token,
                "SLACK_API_URL": self.sim.api_url,
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            }
        )
        with open(self.log_path, "wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.contender.command(self.work, self.workdir),
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_S
        while not any(c.state == "live" for c in self.sim.connections()):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.contender.name} did not connect (exit {self.proc.returncode}); see {self.log_path}:\n"
                    + self.log_tail()
                )
            await asyncio.sleep(POLL_S)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_s(self) -> float:
        """User + system CPU seconds of the contender so far (all its threads), from /proc (Linux)."""
        assert self.proc is not None
        return process_cpu_s(self.proc.pid)

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def process_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (the counters ``getrusage`` reports, readable while it runs)."""
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    # The command name is in parentheses and may hold spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def self_cpu_s() -> float:
    """CPU seconds of this process (the simulator and the pacer)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Workdir:
    """A scratch directory per contender run (its SQLite files, its log), removed afterwards."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="slackops-bench-"))
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# -- driving traffic and reading acks off the simulator's ledger -------------------------------------------------


@dataclass
class Step:
    """One fixed-rate stretch of traffic and what the simulator saw of its acks."""

    rate: float
    seconds: float
    sent: int = 0
    unacked: int = 0
    ack_p50_ms: float | None = None
    ack_p99_ms: float | None = None
    #: contender CPU ms per 1,000 envelopes during the stretch
    cpu_ms_per_1k: float | None = None
    #: share of one core the simulator process used (near 1.0: the simulator is the bottleneck)
    sim_cpu_share: float | None = None
    achieved_rate: float | None = None

    @property
    def passed(self) -> bool:
        return (
            self.unacked == 0
            and self.ack_p99_ms is not None
            and self.ack_p99_ms < P99_CEILING_MS
            and not self.pacer_behind
        )

    @property
    def pacer_behind(self) -> bool:
        """The simulator could not send at the asked rate: the step says nothing about the contender."""
        return self.achieved_rate is not None and self.achieved_rate < 0.95 * self.rate


async def pace(sim: Simulator, rate: float, seconds: float, kind: str = "message") -> tuple[list[str], float]:
    """Send ``kind`` events at ``rate`` per second for ``seconds``; return their event ids and the real duration."""
    ids: list[str] = []
    start = time.monotonic()
    sent = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        owed = int(elapsed * rate) + 1 - sent
        for _ in range(max(0, owed)):
            ids.extend(ev.event_id for ev in sim.send_event(kind))
            sent += 1
        await asyncio.sleep(PACE_S)
    return ids, time.monotonic() - start


async def settle(sim: Simulator, event_ids: Iterable[str], timeout: float) -> None:
    """Wait until every event's first attempt is acked or past its deadline (or ``timeout``)."""
    ids = list(event_ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_first_attempt_done(sim, i) for i in ids):
            return
        await asyncio.sleep(POLL_S)


def _first_attempt_done(sim: Simulator, event_id: str) -> bool:
    entry = sim.entry(event_id)
    if entry is None or not entry.attempts:
        return True
    first = entry.attempts[0]
    # The simulator's clock is its event loop's (this loop): deadlines compare against loop.time().
    return first.acked or asyncio.get_running_loop().time() > first.deadline


def first_ack_ms(sim: Simulator, event_ids: Iterable[str]) -> tuple[list[float], int]:
    """Ack latency of each event's first delivery attempt, and how many were never acked."""
    out: list[float] = []
    missing = 0
    for event_id in event_ids:
        entry = sim.entry(event_id)
        first = entry.attempts[0] if entry is not None and entry.attempts else None
        if first is None or first.ack_ms is None:
            missing += 1
        else:
            out.append(first.ack_ms)
    return out, missing


async def measure_step(bot: BotProcess, rate: float, seconds: float) -> Step:
    """Drive ``rate`` envelopes/s for ``seconds`` and read back ack latency, CPU and the simulator's load."""
    sim = bot.sim
    cpu0, sim0, t0 = bot.cpu_s(), self_cpu_s(), time.monotonic()
    ids, real = await pace(sim, rate, seconds)
    cpu1, sim1, t1 = bot.cpu_s(), self_cpu_s(), time.monotonic()
    await settle(sim, ids, sim.engine.settings.ack_deadline + 1.0)
    latencies, missing = first_ack_ms(sim, ids)
    step = Step(rate=rate, seconds=seconds, sent=len(ids), unacked=missing)
    step.achieved_rate = len(ids) / real if real else None
    if latencies:
        # An envelope never acked counts as infinitely late in the percentiles.
        latencies += [math.inf] * missing
        step.ack_p50_ms = percentile(latencies, 50)
        step.ack_p99_ms = percentile(latencies, 99)
    if ids:
        step.cpu_ms_per_1k = (cpu1 - cpu0) * 1000.0 / len(ids) * 1000.0
    step.sim_cpu_share = (sim1 - sim0) / (t1 - t0) if t1 > t0 else None
    return step


# -- output -----------------------------------------------------------------------------------------------------


def median(values: Iterable[float | None]) -> float | None:
    """Median of the known values (``None`` when there are none)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    if float(value).is_integer() and digits <= 1:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def ratio(value: float | None, base: float | None) -> str:
    """``value / base`` as ``x1.23``; ``-`` when either is unknown or the base is zero."""
    if value is None or base is None or base == 0 or math.isinf(value) or math.isinf(base):
        return "-"
    return f"x{value / base:.2f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain Markdown table on stdout (pastes straight into BENCHMARKS.md)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def machine() -> str:
    """One line about where the figures came from."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{now}; {os.cpu_count()} CPUs ({model}); Python {platform.python_version()}; "
        f"load average {load} at start"
    )


@dataclass
class Results:
    """Per-contender lists of per-repetition values, by metric."""

    values: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)

    def add(self, contender: str, metric: str, value: float | None) -> None:
        self.values.setdefault(contender, {}).setdefault(metric, []).append(value)

    def median(self, contender: str, metric: str) -> float | None:
        return median(self.values.get(contender, {}).get(metric, []))
