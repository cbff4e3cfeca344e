"""Scenario files: what traffic the simulator sends and what chaos it injects, as data.

A scenario is a TOML file with four parts::

    description = "one line shown by `slackops simulate --list`"
    duration = 300            # scenario seconds the CLI runs by default (0 = until Ctrl-C)
    time_scale = 1            # default time scale for the CLI (a 5 h lifetime at 1200 lasts 15 s)

    [server]                  # how the fake Slack behaves (see ServerSettings for every key)
    lifetime = 18060

    [traffic]                 # what events arrive (see TrafficSettings)
    rate = 2.0
    mix = { message = 6, app_mention = 2, interactive = 1 }

    [[chaos]]                 # the chaos schedule (see ChaosStep)
    at = 60
    action = "refresh"

Time: every duration in a scenario is in *scenario seconds* and is divided by the simulator's ``time_scale`` —
except ``server.ack_deadline`` (clients ack in real time; set ``scale_ack_deadline = true`` to scale it too),
``server.ticket_ttl`` (a client opens a socket right after asking for its URL), and ``traffic.rate``, which is
events per wall-clock second (a bot processes events in real time whatever the scale).

Errors name the file and line: TOML syntax errors carry tomllib's line; for an unknown key or a bad value we
find the line the key is written on.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from slackops.errors import ConfigError

#: Event kinds the traffic generator knows, with the envelope type each is delivered as.
TRAFFIC_KINDS: dict[str, str] = {
    "message": "events_api",
    "app_mention": "events_api",
    "message_changed": "events_api",
    "bot_message": "events_api",
    "reaction_added": "events_api",
    "slash_command": "slash_commands",
    "block_actions": "interactive",
    "shortcut": "interactive",
    "view_submission": "interactive",
}

CHAOS_ACTIONS = frozenset(
    {
        "refresh",  # warning -> refresh_requested -> hard drop after grace
        "drop",  # hard TCP drop without a close frame (leaves a ghost registration)
        "close",  # clean server close frame (1000)
        "half_open",  # stop reading, ponging and writing; ignore close frames
        "disable_link",  # disconnect/link_disabled and refuse new sockets
        "enable_link",
        "fail_open",  # apps.connections.open returns {"ok": false, "error": <error>}
        "ratelimit_open",  # apps.connections.open returns HTTP 429 + Retry-After
        "reject_upgrade",  # HTTP 409 Conflict on the WebSocket upgrade
        "stop_pings",
        "start_pings",
        "delay_pongs",  # answer client pings `delay` real seconds late (0 = prompt again)
        "garbage",  # a malformed JSON text frame and a binary frame on every socket
        "ghosts",  # add N ghost registrations (sockets that vanished long ago)
        "burst",  # N events at once (fan-out / ack pressure)
    }
)

TARGETS = frozenset({"all", "oldest", "newest", "random"})

ROUTINGS = frozenset({"random", "round_robin"})


@dataclass(frozen=True)
class ServerSettings:
    """How the simulated Slack behaves. Durations are scenario seconds unless noted."""

    #: connection lifetime before refresh_requested (production: hello says 18060)
    lifetime: float = 18060.0
    #: lifetime when the client appends ``debug_reconnects=true`` to the link URL (Slack docs: 360 s)
    debug_lifetime: float = 360.0
    #: send disconnect/warning this long before refresh_requested; 0 = no warning
    warning_lead: float = 10.0
    #: after refresh_requested, hard-drop the socket if the client is still there after this long
    grace: float = 10.0
    #: how the server ends a socket after the grace: "drop" (TCP reset, no close frame, as Slack does) or "close"
    refresh_close: str = "drop"
    #: server control PING ("Ping from <host>") cadence; 0 = never ping
    ping_interval: float = 10.0
    #: leave a ghost registration when a socket vanishes without a close frame
    ghosts: bool = True
    #: how long a ghost registration lingers (python-slack-sdk#1940: up to about 5 h)
    ghost_ttl: float = 18000.0
    #: concurrent registrations per app before too_many_websockets (Slack docs: 10)
    cap: int = 10
    #: how each delivery attempt picks a connection: "random" or "round_robin"
    routing: str = "random"
    #: accept an ack on any connection of the app, not only the one that carried the envelope
    ack_any_connection: bool = True
    #: a retried events_api envelope gets a fresh envelope_id (false: reuse the first one)
    new_envelope_id_per_attempt: bool = True
    #: chance (0..1) that Slack sends a retry twice (python-slack-events-api#93: attempts 0,1,2,2,3,3)
    duplicate_share: float = 0.0
    #: ack deadline in *real* seconds (Slack: 3 s)
    ack_deadline: float = 3.0
    #: divide ack_deadline by time_scale like every other duration
    scale_ack_deadline: bool = False
    #: delays of retries 1..n after an attempt's deadline passes (Events API: immediately, +1 min, +5 min)
    retry_schedule: tuple[float, ...] = (0.0, 60.0, 300.0)
    #: how long an issued WSS ticket stays valid, in real seconds (single use either way)
    ticket_ttl: float = 30.0
    #: apps.connections.open calls allowed per minute (Tier 1 tolerates bursts); 0 = unlimited
    open_rate_limit: int = 0
    #: Retry-After (scenario seconds) on a 429 from the rate limit above
    open_retry_after: float = 30.0
    #: HTTP mode: a Request URL is disabled when more than 95 % of deliveries fail within 60 min, but only
    #: for apps that get at least this many events in that window (Slack: 1,000 an hour)
    http_disable_min_events: int = 1000
    #: debug_info.host in hello, disconnect frames and ping payloads
    host: str = "applink-sim-1"
    build_number: int = 54


@dataclass(frozen=True)
class TrafficSettings:
    """What events the scenario sends. ``rate`` is events per wall-clock second; 0 = no background traffic."""

    rate: float = 0.0
    #: relative weights per kind (see TRAFFIC_KINDS)
    mix: dict[str, float] = field(default_factory=lambda: {"message": 1.0})
    channels: int = 3
    users: int = 5
    #: deliver an app_mention together with its plain `message` event (Slack sends both for one mention)
    mention_pairs: bool = True
    #: after chat.postMessage, deliver the bot's own message back as a `message` event with bot_id (self-loop bait)
    echo_bot_posts: bool = False
    #: stop echoing after this many bot-reply generations (a runaway self-loop ends here)
    echo_depth_limit: int = 20
    #: share of events (0..1) padded to ``large_bytes``: python-slack-sdk's mock sends a ~50 KB block_actions
    large_share: float = 0.0
    large_bytes: int = 60000


@dataclass(frozen=True)
class ChaosStep:
    """One entry of the chaos schedule: do ``action`` at ``at`` (and every ``every`` until ``until``)."""

    at: float
    action: str
    every: float = 0.0
    until: float = 0.0
    target: str = "all"
    error: str = "internal_error"
    times: int = 1
    retry_after: float = 30.0
    count: int = 1
    status: int = 409
    kind: str = "message"
    delay: float = 0.0
    line: int | None = None

    def times_fired(self, elapsed: float) -> int:
        """How many times this step should have fired after ``elapsed`` scenario seconds."""
        if elapsed < self.at:
            return 0
        if self.every <= 0:
            return 1
        end = min(elapsed, self.until) if self.until > 0 else elapsed
        if end < self.at:
            return 1
        return int((end - self.at) // self.every) + 1


@dataclass(frozen=True)
class Scenario:
    """A loaded, validated scenario."""

    name: str
    description: str = ""
    duration: float = 0.0
    #: the time scale the CLI uses when --time-scale is not given
    time_scale: float = 1.0
    server: ServerSettings = field(default_factory=ServerSettings)
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    chaos: tuple[ChaosStep, ...] = ()
    path: str | None = None


_TOP_KEYS = {"name", "description", "duration", "time_scale", "server", "traffic", "chaos"}


def _scenario_dir() -> Any:
    return resources.files("slackops.simulator") / "scenarios"


def list_scenarios() -> list[tuple[str, str]]:
    """The scenarios shipped with slackops, as ``(name, one-line description)`` sorted by name."""
    out = []
    for entry in _scenario_dir().iterdir():
        if entry.name.endswith(".toml"):
            name = entry.name[: -len(".toml")]
            out.append((name, load_scenario(name).description))
    return sorted(out)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a shipped scenario by name (``"refresh-churn"``) or a scenario file by path.

    Raise :class:`ConfigError` naming the file and line of the first problem.
    """
    text_path = str(name_or_path)
    candidate = Path(text_path)
    if candidate.suffix == ".toml" or candidate.exists() or "/" in text_path:
        if not candidate.is_file():
            raise ConfigError(
                f"no scenario file {text_path}", hint="Use --list to see the built-in scenarios."
            )
        return parse_scenario(candidate.read_text(encoding="utf-8"), path=text_path, name=candidate.stem)
    resource = _scenario_dir() / f"{text_path}.toml"
    if not resource.is_file():
        names = ", ".join(n.name[:-5] for n in _scenario_dir().iterdir() if n.name.endswith(".toml"))
        raise ConfigError(f"unknown scenario {text_path!r}", hint=f"Built-in scenarios: {names}.")
    return parse_scenario(
        resource.read_text(encoding="utf-8"), path=f"<builtin>/{text_path}.toml", name=text_path
    )


def parse_scenario(text: str, *, path: str = "<scenario>", name: str = "scenario") -> Scenario:
    """Parse and validate scenario TOML ``text``; ``path`` is used in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib words its errors "... (at line 3, column 7)": pull the line out so ConfigError can say file:line.
        match = re.search(r"at line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"not valid TOML: {message}", path=path, line=line) from None
    locator = _Locator(text, path)
    for key in data:
        if key not in _TOP_KEYS:
            locator.fail(None, key, f"unknown key {key!r}; expected one of: {', '.join(sorted(_TOP_KEYS))}")
    server = _build(ServerSettings, data.get("server", {}), locator, "server")
    traffic = _build(TrafficSettings, data.get("traffic", {}), locator, "traffic")
    _check_server(server, locator)
    _check_traffic(traffic, locator)
    chaos_raw = data.get("chaos", [])
    if not isinstance(chaos_raw, list):
        locator.fail(None, "chaos", "chaos must be an array of tables: write each step as [[chaos]]")
    steps = []
    for index, raw in enumerate(chaos_raw):
        section = ("chaos", index)
        if "at" not in raw or "action" not in raw:
            locator.fail_section(section, "each [[chaos]] step needs `at` (seconds) and `action`")
        step = _build(ChaosStep, raw, locator, section)
        step = dataclasses.replace(step, line=locator.section_line(section))
        _check_step(step, locator, section)
        steps.append(step)
    time_scale = float(_typed(data, "time_scale", (int, float), 1.0, locator, None))
    if time_scale <= 0:
        locator.fail(None, "time_scale", "time_scale must be positive")
    return Scenario(
        name=str(data.get("name", name)),
        time_scale=time_scale,
        description=_typed(data, "description", str, "", locator, None),
        duration=float(_typed(data, "duration", (int, float), 0.0, locator, None)),
        server=server,
        traffic=traffic,
        chaos=tuple(sorted(steps, key=lambda s: s.at)),
        path=path,
    )


def _typed(data: dict, key: str, typ: Any, default: Any, locator: _Locator, section: Any) -> Any:
    value = data.get(key, default)
    if (isinstance(value, bool) and typ is not bool) or not isinstance(value, typ):
        locator.fail(section, key, f"{key} should be {_type_name(typ)}, got {value!r}")
    return value


def _type_name(typ: Any) -> str:
    if typ is bool:
        return "true or false"
    if typ in (float, (int, float)):
        return "a number"
    if typ is int:
        return "an integer"
    if typ is str:
        return "a string"
    return getattr(typ, "__name__", str(typ))


def _build(cls: type, raw: Any, locator: _Locator, section: Any) -> Any:
    """Build dataclass ``cls`` from a TOML table, checking keys and types against the dataclass fields."""
    if not isinstance(raw, dict):
        locator.fail(None, section if isinstance(section, str) else "chaos", "expected a table")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "line"}
    defaults = cls() if cls is not ChaosStep else None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            locator.fail(section, key, f"unknown key {key!r}; known keys: {', '.join(fields)}")
        if defaults is not None:
            default = getattr(defaults, key)
        else:
            default = fields[key].default
            if key == "at":
                default = 0.0
            elif key == "action":
                default = ""
        values[key] = _coerce(key, value, default, locator, section)
    return cls(**values)


def _coerce(key: str, value: Any, default: Any, locator: _Locator, section: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            locator.fail(section, key, f"{key} should be true or false, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            locator.fail(section, key, f"{key} should be a number of seconds, got {value!r}")
        if value < 0:
            locator.fail(section, key, f"{key} cannot be negative ({value})")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            locator.fail(section, key, f"{key} should be an integer, got {value!r}")
        if value < 0:
            locator.fail(section, key, f"{key} cannot be negative ({value})")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            locator.fail(section, key, f"{key} should be a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value
        ):
            locator.fail(section, key, f"{key} should be a list of non-negative numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value.values()
        ):
            locator.fail(section, key, f"{key} should be a table of non-negative weights, got {value!r}")
        return {k: float(v) for k, v in value.items()}
    return value


def _check_server(server: ServerSettings, locator: _Locator) -> None:
    if server.routing not in ROUTINGS:
        locator.fail("server", "routing", f"routing {server.routing!r}: expected random or round_robin")
    if server.refresh_close not in ("drop", "close"):
        locator.fail(
            "server", "refresh_close", f"refresh_close {server.refresh_close!r}: expected drop or close"
        )
    if server.duplicate_share > 1:
        locator.fail("server", "duplicate_share", "duplicate_share is a share between 0 and 1")
    if server.cap < 1:
        locator.fail("server", "cap", "cap must be at least 1")
    if server.ack_deadline <= 0:
        locator.fail("server", "ack_deadline", "ack_deadline must be positive")
    if server.lifetime <= server.warning_lead:
        locator.fail("server", "lifetime", "lifetime must be longer than warning_lead")


def _check_traffic(traffic: TrafficSettings, locator: _Locator) -> None:
    for kind in traffic.mix:
        if kind not in TRAFFIC_KINDS:
            locator.fail(
                "traffic", "mix", f"unknown event kind {kind!r} in mix; known: {', '.join(TRAFFIC_KINDS)}"
            )
    if traffic.rate > 0 and not any(traffic.mix.values()):
        locator.fail("traffic", "mix", "mix needs at least one kind with a positive weight")
    if traffic.large_share > 1:
        locator.fail("traffic", "large_share", "large_share is a share between 0 and 1")
    if traffic.channels < 1 or traffic.users < 1:
        locator.fail("traffic", "channels" if traffic.channels < 1 else "users", "must be at least 1")


def _check_step(step: ChaosStep, locator: _Locator, section: Any) -> None:
    if step.action not in CHAOS_ACTIONS:
        locator.fail(
            section, "action", f"unknown action {step.action!r}; known: {', '.join(sorted(CHAOS_ACTIONS))}"
        )
    if step.target not in TARGETS:
        locator.fail(
            section, "target", f"target {step.target!r}: expected one of {', '.join(sorted(TARGETS))}"
        )
    if step.action == "burst" and step.kind not in TRAFFIC_KINDS:
        locator.fail(section, "kind", f"unknown event kind {step.kind!r}; known: {', '.join(TRAFFIC_KINDS)}")
    if step.until and step.until < step.at:
        locator.fail(section, "until", "until is before at")


class _Locator:
    """Finds the line a key is written on, so semantic errors can say file:line like syntax errors do."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def _sections(self) -> list[tuple[Any, int, int]]:
        """(section, first line, last line) for the root, each [table] and each [[chaos]] entry (1-based)."""
        out: list[tuple[Any, int, int]] = []
        current: Any = None
        start = 1
        counts: dict[str, int] = {}
        for number, line in enumerate(self.lines, start=1):
            match = self._HEADER.match(line)
            if not match:
                continue
            out.append((current, start, number - 1))
            name = match.group(2)
            if match.group(1) == "[[":
                current = (name, counts.get(name, 0))
                counts[name] = counts.get(name, 0) + 1
            else:
                current = name
            start = number
        out.append((current, start, len(self.lines)))
        return out

    def section_line(self, section: Any) -> int | None:
        for name, first, _last in self._sections():
            if name == section:
                return first
        return None

    def key_line(self, section: Any, key: str) -> int | None:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=|[{{,]\s*{re.escape(key)}\s*=")
        for name, first, last in self._sections():
            if name != section:
                continue
            for number in range(first, last + 1):
                if pattern.search(self.lines[number - 1]):
                    return number
            return first
        # Inline tables (`server = { ... }`) and dotted keys: fall back to any line naming the key.
        for number, line in enumerate(self.lines, start=1):
            if pattern.search(line):
                return number
        return None

    def fail(self, section: Any, key: str, message: str) -> None:
        where = _describe(section)
        raise ConfigError(f"{where}{message}", path=self.path, line=self.key_line(section, key))

    def fail_section(self, section: Any, message: str) -> None:
        raise ConfigError(f"{_describe(section)}{message}", path=self.path, line=self.section_line(section))


def _describe(section: Any) -> str:
    if section is None:
        return ""
    if isinstance(section, tuple):
        return f"[[{section[0]}]] #{section[1] + 1}: "
    return f"[{section}] "
