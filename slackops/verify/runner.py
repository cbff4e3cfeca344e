"""Start the simulator, run the user's bot against it, drive the scenario's traffic, stop the bot, score it.

Phases, each with a deadline so a hung bot cannot hang CI:

1. **start**: the simulator on 127.0.0.1:0; the bot as a child process in its own process group, with simulator
   tokens and URLs in its environment. Wait until it holds a live Socket Mode connection.
2. **traffic**: the scenario's traffic and chaos for its duration (scenario seconds / time scale).
3. **settle**: stop new traffic; wait until every event is settled (acked, or its retries ran out — a bot that
   acks late is retried, and the retries are what a no-dedup bot processes twice), then until the bot's replies
   stop arriving.
4. **stop**: SIGTERM to the bot's process group, SIGKILL after the stop deadline (a bot that cannot drain in time
   is what Kubernetes does to it too).
5. **score**: the simulator's ground-truth scorecard, plus LLM calls per event when the bot wrote ``llm`` records
   to ``SLACKOPS_RECORD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from slackops.errors import ExitCode, InputError, UsageError
from slackops.simulator import Scorecard, Simulator, load_scenario

#: How long the bot may take to connect after it starts (real seconds; Python + Bolt imports take a while).
DEFAULT_STARTUP_S = 20.0
#: After traffic stops: longest wait for in-flight events to settle (acks, retries) and replies to arrive.
DEFAULT_SETTLE_S = 30.0
#: Replies have stopped once none arrived for this long (real seconds).
QUIET_S = 1.0
#: SIGTERM -> SIGKILL deadline (Kubernetes' default terminationGracePeriodSeconds is 30 s; tests pass less).
DEFAULT_STOP_S = 10.0
#: Default scenario: refresh churn is what every Socket Mode bot meets in production, every few hours.
DEFAULT_SCENARIO = "refresh-churn"

POLL_S = 0.05


def shim_dir() -> Path:
    """The directory holding the zero-code ``sitecustomize`` shim (put it first on the bot's PYTHONPATH)."""
    return Path(__file__).resolve().parent / "shim"


@dataclass
class VerifyOptions:
    """What to run and how (durations in real seconds unless named otherwise)."""

    command: list[str]
    scenario: str = DEFAULT_SCENARIO
    #: None: the scenario's own time scale
    time_scale: float | None = None
    #: traffic duration in wall-clock seconds (as for ``slackops simulate``); None: the scenario's duration
    duration: float | None = None
    seed: int | None = None
    startup_timeout: float = DEFAULT_STARTUP_S
    settle_timeout: float = DEFAULT_SETTLE_S
    stop_timeout: float = DEFAULT_STOP_S
    #: where the bot's stdout/stderr go (None: a new file in the temp directory)
    log_path: Path | None = None
    #: pass the bot's output through to our stderr instead of a log file
    show_output: bool = False
    #: where the bot may write records (SLACKOPS_RECORD); None: a file in the temp directory
    record_path: Path | None = None
    #: write the simulator's own records (what "Slack" saw: envelopes, acks, closes ...) here for diagnose
    sim_record: Path | None = None
    #: put the zero-code shim on PYTHONPATH
    shim: bool = True
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: called with one line per phase (the CLI prints them on stderr)
    progress: Callable[[str], None] | None = None


@dataclass
class LLMStats:
    """Model calls the bot recorded (``llm`` records) against the events that caused them."""

    calls: int
    events: int
    #: calls per event that had at least one call (1.0 is the ideal; retries and duplicates push it up)
    per_event: float
    max_per_event: int
    #: event ids with two or more calls
    repeated: list[str]
    errors: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "events": self.events,
            "per_event": self.per_event,
            "max_per_event": self.max_per_event,
            "repeated": self.repeated,
            "errors": self.errors,
        }


@dataclass
class VerifyResult:
    """The scorecard, the verdict and what happened to the bot process."""

    scorecard: Scorecard
    exit_code: ExitCode
    llm: LLMStats | None
    bot_returncode: int | None
    killed: bool
    log_path: Path | None
    #: things the user should know beyond the numbers (the bot exited early, never connected to a socket ...)
    notes: list[str]
    lost_events: list[str]
    twice_events: list[str]

    @property
    def passed(self) -> bool:
        return self.exit_code == ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        card = self.scorecard.to_dict(with_ledger=False)
        return {
            "passed": self.passed,
            "exit_code": int(self.exit_code),
            "scorecard": card,
            "lost_events": self.lost_events,
            "processed_twice_events": self.twice_events,
            "llm": self.llm.to_dict() if self.llm else None,
            "bot": {
                "returncode": self.bot_returncode,
                "killed": self.killed,
                "log": str(self.log_path) if self.log_path else None,
            },
            "notes": self.notes,
        }


def verdict(card: Scorecard) -> ExitCode:
    """2 when events were lost or processed twice, 1 when some were only acked late, else 0."""
    if card.lost or card.processed_twice:
        return ExitCode.CRITICAL
    if card.acked_late:
        return ExitCode.WARNING
    return ExitCode.OK


def run_verify(options: VerifyOptions) -> VerifyResult:
    """Run one verification (blocking). Raises :class:`UsageError` when the bot cannot even start or connect."""
    if not options.command:
        raise UsageError(
            "no bot command given", hint="Put the command after --: slackops verify -- python bot.py"
        )
    return asyncio.run(_Run(options).run())


class _Run:
    def __init__(self, options: VerifyOptions) -> None:
        self.o = options
        self.scenario = load_scenario(options.scenario)
        self.time_scale = options.time_scale or self.scenario.time_scale
        # self.duration is in scenario seconds; --duration is wall-clock, like every other slackops command.
        if options.duration is not None:
            self.duration = options.duration * self.time_scale
        else:
            self.duration = self.scenario.duration
        if self.duration <= 0:
            raise UsageError(
                f"scenario {self.scenario.name} runs until stopped; verify needs an end",
                hint="Pass --duration SECONDS (wall-clock), or pick a scenario with a duration.",
            )
        self.notes: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.killed = False
        self.log: IO[bytes] | None = None
        self.log_path: Path | None = None
        #: scratch space for this run (the bot's queue db, our record file), removed at the end
        self.workdir = Path(tempfile.mkdtemp(prefix="slackops-verify-"))
        self.record_path = options.record_path or self.workdir / "records.jsonl"

    async def run(self) -> VerifyResult:
        recorder = _open_recorder(self.o.sim_record) if self.o.sim_record else None
        sim = Simulator(self.scenario, time_scale=self.time_scale, seed=self.o.seed, recorder=recorder)
        try:
            await sim.start()
            self._say(f"scenario {self.scenario.name}: starting {self.o.command[0]} against {sim.api_url}")
            await self._spawn(sim)
            await self._wait_connected(sim)
            self._say(f"bot connected; traffic and chaos for {self.duration / self.time_scale:g} s")
            await self._traffic(sim)
            self._say("traffic stopped; waiting for acks, retries and replies to settle")
            await self._settle(sim)
            self._say("stopping the bot (SIGTERM)")
            await self._stop_bot()
            card = sim.scorecard()
            llm = read_llm_stats(self.record_path)
        finally:
            await self._stop_bot()
            await sim.stop()
            if self.log is not None:
                self.log.close()
            if recorder is not None:
                recorder.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self._result(card, llm)

    def _say(self, line: str) -> None:
        if self.o.progress is not None:
            self.o.progress(line)

    # -- the bot process --------------------------------------------------------------------------------------

    def _env(self, sim: Simulator) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.o.env)
        env.update(
            {
                "SLACK_APP_TOKEN": sim.app_token,
                "SLACK_BOT_TOKEN": sim.bot_token,
                "SLACKOPS_SIM_API_URL": sim.api_url,
                # Some clients read SLACK_API_URL (and it is the obvious name for non-Python bots to wire up).
                "SLACK_API_URL": sim.api_url,
                "SLACKOPS_RECORD": str(self.record_path),
                # A fresh durable queue / dedup store per run for bots on the slackops runtime: with a fixed
                # --seed the event ids repeat, and yesterday's dedup keys would swallow today's events.
                "SLACKOPS_BOT_DB": str(self.workdir / "bot.db"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.o.shim:
            parts = [str(shim_dir())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
            env["PYTHONPATH"] = os.pathsep.join(parts)
        return env

    async def _spawn(self, sim: Simulator) -> None:
        if self.o.show_output:
            out: Any = sys.stderr
        else:
            self.log_path = self.o.log_path or Path(
                tempfile.mkstemp(prefix="slackops-verify-", suffix=".log")[1]
            )
            self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in run()
            out = self.log
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.o.command,
                env=self._env(sim),
                cwd=self.o.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group: SIGTERM reaches the bot even behind a wrapper script (sh -c, npm run).
                start_new_session=True,
            )
        except OSError as exc:
            if self.log is not None and self.o.log_path is None and self.log_path is not None:
                self.log.close()
                self.log = None
                self.log_path.unlink(missing_ok=True)  # an empty file nobody asked for
            raise UsageError(
                f"cannot start {self.o.command[0]}: {exc.strerror or exc}",
                hint="The command after -- must be an executable on PATH (e.g. python bot.py).",
            ) from exc

    async def _wait_connected(self, sim: Simulator) -> None:
        deadline = time.monotonic() + self.o.startup_timeout
        while not any(c.state == "live" for c in sim.connections()):
            if self.proc is not None and self.proc.returncode is not None:
                raise InputError(
                    f"the bot exited with status {self.proc.returncode} before it connected",
                    hint=self._log_hint(),
                )
            if time.monotonic() > deadline:
                raise InputError(
                    f"the bot did not open a Socket Mode connection within {self.o.startup_timeout:g} s",
                    hint="It must read SLACK_APP_TOKEN and use the simulator's URL (SLACKOPS_SIM_API_URL; "
                    "Python slack-sdk/Bolt bots get it automatically). " + self._log_hint(),
                )
            await asyncio.sleep(POLL_S)

    def _log_hint(self) -> str:
        return f"Its output is in {self.log_path}." if self.log_path else "See its output above."

    async def _stop_bot(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.o.stop_timeout)
        except TimeoutError:
            self.killed = True
            self.notes.append(
                f"the bot did not exit within {self.o.stop_timeout:g} s of SIGTERM and was killed"
            )
            self._signal(signal.SIGKILL)
            await proc.wait()
            return
        if proc.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            self.notes.append(f"the bot exited with status {proc.returncode} after SIGTERM (see its output)")

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    # -- traffic and settling ---------------------------------------------------------------------------------

    async def _traffic(self, sim: Simulator) -> None:
        seconds = self.duration / self.time_scale
        sim.start_traffic()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.returncode is not None:
                self.notes.append(
                    f"the bot exited with status {self.proc.returncode} during the traffic phase"
                )
                break
            await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        await sim.stop_traffic()

    async def _settle(self, sim: Simulator) -> None:
        deadline = time.monotonic() + self.o.settle_timeout
        if not await sim.drain(self.o.settle_timeout):
            self.notes.append(f"some events were still in flight after {self.o.settle_timeout:g} s")
            return
        # Acked is not answered: an ack-then-process bot replies after the ack. Wait until replies stop.
        last, quiet_since = _replies(sim), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET_S:
            await asyncio.sleep(POLL_S)
            now_count = _replies(sim)
            if now_count != last:
                last, quiet_since = now_count, time.monotonic()

    # -- scoring ----------------------------------------------------------------------------------------------

    def _result(self, card: Scorecard, llm: LLMStats | None) -> VerifyResult:
        if card.connections_opened == 0:
            self.notes.append("the bot never opened a Socket Mode connection")
        if card.events and not card.processed:
            self.notes.append(
                "no reply was attributed to any event: the bot must answer with chat.postMessage "
                "(thread_ts = the event's ts), chat.update or reactions.add for processing to be scored"
            )
        lost = [e["event_id"] for e in card.ledger if e["status"] == "lost"]
        twice = [e["event_id"] for e in card.ledger if len(e["replies"]) >= 2]
        return VerifyResult(
            scorecard=card,
            exit_code=verdict(card),
            llm=llm,
            bot_returncode=self.proc.returncode if self.proc else None,
            killed=self.killed,
            log_path=self.log_path,
            notes=self.notes,
            lost_events=lost,
            twice_events=twice,
        )


def _open_recorder(path: Path) -> Any:
    from slackops.store import RecordWriter

    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return RecordWriter(jsonl=path)
    return RecordWriter(db=path)


def _replies(sim: Simulator) -> int:
    return sum(len(e.replies) for e in sim.ledger.entries.values())


def read_llm_stats(path: Path | None) -> LLMStats | None:
    """Count ``llm`` records per event in the bot's recording; ``None`` when it recorded none."""
    if path is None or not path.exists() or path.stat().st_size == 0:
        return None
    from slackops.store import iter_records

    per_event: Counter[str] = Counter()
    calls = errors = 0
    for rec in iter_records(path, kinds={"llm"}):
        calls += 1
        errors += 1 if rec.get("error") else 0
        if rec.get("event_id"):
            per_event[rec["event_id"]] += 1
    if calls == 0:
        return None
    events = len(per_event)
    return LLMStats(
        calls=calls,
        events=events,
        per_event=round(sum(per_event.values()) / events, 2) if events else 0.0,
        max_per_event=max(per_event.values(), default=0),
        repeated=sorted(e for e, n in per_event.items() if n >= 2),
        errors=errors,
    )
