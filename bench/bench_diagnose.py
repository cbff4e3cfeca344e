"""Benchmark ``slackops diagnose`` on a generated 1,000,000-line slackops JSONL recording.

Measures lines per second and peak RSS of a full diagnose (every detector) in a fresh subprocess, then runs
DuckDB (``read_ndjson`` + SQL) and jq over the same file computing comparable aggregates — record counts per
kind, ack latency p50/p99, event_ids delivered more than once — and prints the figures and the ratios.
Targets (issue 6): >= 500,000 lines/s and <= 150 MiB peak RSS on a 2-core machine.

Run: ``python -m bench diagnose [--quick] [--runs N] [--single] [--lines N] [--regen]``. The file is generated
deterministically into bench/out/. Each tool runs ``--runs`` times (default 3) and the median is reported: the
machine may be shared. ``--single`` also times diagnose kept to one process (``SLACKOPS_DIAGNOSE_SPLIT=0``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

OUT = Path(__file__).resolve().parent / "out"
TARGET_LPS = 500_000
TARGET_RSS_MIB = 150


def generate(path: Path, lines: int, seed: int = 6) -> None:
    """A day of a busy LLM bot on two sockets: envelopes, acks, dedup, handler runs, LLM calls, posts, pings.

    Mostly healthy traffic with the failures a real recording has a little of: 1 % slow acks and their
    retries, a few duplicate deliveries, a reconnect every few hours, occasional LLM 429s.
    """
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    dumps = orjson.dumps
    t = 1_760_000_000.0
    written = 0
    n_event = 0
    conns = ["c1", "c2"]
    next_ping = t
    next_reconnect = t + 3 * 3600
    buf: list[bytes] = []
    with open(path, "wb") as fh:

        def put(rec: dict) -> None:
            nonlocal written
            buf.append(dumps(rec))
            written += 1
            if len(buf) >= 10_000:
                fh.write(b"\n".join(buf) + b"\n")
                buf.clear()

        put(
            {
                "t": t,
                "kind": "connect",
                "source": "bot",
                "conn": "c1",
                "attempt": 1,
                "url_host": "wss-primary.slack.com",
            }
        )
        put(
            {
                "t": t + 0.2,
                "kind": "hello",
                "source": "bot",
                "conn": "c1",
                "num_connections": 2,
                "own_connections": 2,
                "host": "applink-1",
            }
        )
        while written < lines:
            t += rng.expovariate(4.0)
            if t >= next_ping:
                for c in conns:
                    put({"t": t, "kind": "ping", "source": "bot", "conn": c, "direction": "sent"})
                    put(
                        {
                            "t": t + 0.03,
                            "kind": "pong",
                            "source": "bot",
                            "conn": c,
                            "direction": "received",
                            "rtt_ms": 30.0 + rng.random() * 20,
                        }
                    )
                next_ping = t + 10.0
            if t >= next_reconnect:
                put(
                    {
                        "t": t,
                        "kind": "disconnect",
                        "source": "bot",
                        "conn": "c1",
                        "reason": "refresh_requested",
                        "host": "applink-1",
                    }
                )
                put(
                    {
                        "t": t + 0.1,
                        "kind": "reconnect",
                        "source": "bot",
                        "conn": "c1",
                        "initiator": "server",
                        "cause": "refresh_requested",
                        "gap_ms": 350.0,
                    }
                )
                put(
                    {
                        "t": t + 0.4,
                        "kind": "connect",
                        "source": "bot",
                        "conn": "c1",
                        "attempt": 1,
                        "url_host": "wss-primary.slack.com",
                    }
                )
                next_reconnect = t + 5 * 3600
            n_event += 1
            ev = f"Ev{n_event:09d}"
            env = f"{n_event:08x}-0000-4000-8000-{rng.getrandbits(48):012x}"
            conn = conns[n_event & 1]
            channel = f"C{rng.randrange(2000):04d}"
            slow = rng.random() < 0.01
            ack_ms = rng.uniform(3100, 4500) if slow else rng.lognormvariate(1.2, 0.6)
            ts = f"{t:.6f}"
            put({"t": t, "kind": "envelope", "source": "bot", "conn": conn, "envelope_id": env, "type": "events_api", "event_id": ev,
                 "event_type": "app_mention", "channel": channel, "user": f"U{rng.randrange(5000):05d}", "ts": ts, "event_ts": ts,
                 "retry_attempt": 0, "accepts_response_payload": False, "bytes": 900 + rng.randrange(600)})  # fmt: skip
            put(
                {
                    "t": t + ack_ms / 1000,
                    "kind": "ack",
                    "source": "bot",
                    "conn": conn,
                    "envelope_id": env,
                    "event_id": ev,
                    "ack_ms": ack_ms,
                    "ok": True,
                    "ack_conn": conn,
                }
            )
            put(
                {
                    "t": t + 0.001,
                    "kind": "queue",
                    "source": "bot",
                    "depth": rng.randrange(3),
                    "action": "enqueue",
                    "event_id": ev,
                }
            )
            put(
                {
                    "t": t + 0.002,
                    "kind": "dedup",
                    "source": "bot",
                    "event_id": ev,
                    "envelope_id": env,
                    "duplicate": False,
                }
            )
            put(
                {
                    "t": t + 0.003,
                    "kind": "process",
                    "source": "bot",
                    "event_id": ev,
                    "envelope_id": env,
                    "channel": channel,
                    "phase": "start",
                }
            )
            status = 429 if rng.random() < 0.002 else 200
            put({"t": t + 0.5, "kind": "llm", "source": "bot", "event_id": ev, "channel": channel, "resource": "gpt-4o", "http_status": status,
                 "latency_ms": 900.0, "tokens_in": 1200, "tokens_out": 250, "cost_usd": 0.006})  # fmt: skip
            put(
                {
                    "t": t + 1.4,
                    "kind": "post",
                    "source": "bot",
                    "method": "chat.postMessage",
                    "channel": channel,
                    "event_id": ev,
                    "ok": True,
                    "http_status": 200,
                }
            )
            put(
                {
                    "t": t + 1.5,
                    "kind": "process",
                    "source": "bot",
                    "event_id": ev,
                    "envelope_id": env,
                    "channel": channel,
                    "phase": "end",
                    "duration_ms": 1497.0,
                }
            )
            if slow:
                # Slack re-sends after the 3 s deadline with a new envelope_id; dedup catches it.
                env2 = f"{n_event:08x}-0001-4000-8000-{rng.getrandbits(48):012x}"
                put({"t": t + 3.1, "kind": "envelope", "source": "bot", "conn": conns[(n_event + 1) & 1], "envelope_id": env2, "type": "events_api",
                     "event_id": ev, "event_type": "app_mention", "channel": channel, "ts": ts, "event_ts": ts, "retry_attempt": 1, "retry_reason": "timeout"})  # fmt: skip
                put(
                    {
                        "t": t + 3.102,
                        "kind": "ack",
                        "source": "bot",
                        "envelope_id": env2,
                        "event_id": ev,
                        "ack_ms": 1.5,
                        "ok": True,
                    }
                )
                put(
                    {
                        "t": t + 3.103,
                        "kind": "dedup",
                        "source": "bot",
                        "event_id": ev,
                        "envelope_id": env2,
                        "duplicate": True,
                    }
                )
        if buf:
            fh.write(b"\n".join(buf) + b"\n")


def _hwm_kib(pid: int | str) -> int:
    """The process's peak RSS (VmHWM) in KiB, 0 if unknown.

    Not ``ru_maxrss`` from wait4: Linux carries the high-water mark of the address space a process had before
    ``execve`` over into it, so a tool started from this (large) process would be charged with our memory.
    """
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _run(
    cmd: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, peak RSS MiB of that child, stdout)."""
    start = time.perf_counter()
    peak = 0
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fin:
        proc = subprocess.Popen(
            cmd, stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
        )
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.wait(0.02):
                peak = max(peak, _hwm_kib(proc.pid))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        out, err = proc.communicate()
        done.set()
        watcher.join()
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1, 2):
        raise RuntimeError(f"{cmd[0]} failed: {err.decode(errors='replace')[-400:]}")
    return wall, peak / 1024.0, out.decode(errors="replace")


# Peak RSS is the sum over the processes diagnose ran: its own (VmHWM, see _hwm_kib) and, when it split the
# work, the forked worker's, which it reaps before returning, so RUSAGE_CHILDREN holds exactly that one (a
# fork without exec: its figure counts the pages it shares with the parent too, so the sum is an upper bound).
_DIAGNOSE = """
import json, resource, sys, time
from slackops.diagnose import diagnose
t0 = time.perf_counter()
r = diagnose([sys.argv[1]])
dt = time.perf_counter() - t0
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
hwm = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
o = r.overview
print(json.dumps({"seconds": dt, "lines": o["parse"]["lines"], "kinds": o["kinds"], "p50": o["ack_latency"].get("p50_ms"),
                  "p99": o["ack_latency"].get("p99_ms"), "multi": o["envelopes"]["events_delivered_more_than_once"],
                  "findings": [f.code for f in r.findings], "rss_sum": (hwm + kids.ru_maxrss) / 1024.0,
                  "processes": 2 if kids.ru_maxrss else 1,
                  "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime}))
"""

_DUCKDB = """
import duckdb, json, sys, time
t0 = time.perf_counter()
p = sys.argv[1]
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(f"CREATE VIEW r AS SELECT * FROM read_ndjson('{p}', columns={{'t': 'DOUBLE', 'kind': 'VARCHAR', 'event_id': 'VARCHAR', 'ack_ms': 'DOUBLE'}})")
con.execute("CREATE TEMP TABLE m AS SELECT kind, event_id, ack_ms FROM r")
kinds = dict(con.execute("SELECT kind, count(*) FROM m GROUP BY kind").fetchall())
p50, p99 = con.execute("SELECT quantile_cont(ack_ms, 0.5), quantile_cont(ack_ms, 0.99) FROM m WHERE kind = 'ack'").fetchone()
multi = con.execute("SELECT count(*) FROM (SELECT event_id FROM m WHERE kind = 'envelope' GROUP BY event_id HAVING count(*) > 1)").fetchone()[0]
print(json.dumps({"seconds": time.perf_counter() - t0, "kinds": kinds, "p50": p50, "p99": p99, "multi": multi}))
"""

# jq 1.6 copies a growing object on every update inside reduce (quadratic), so collect rows once and let
# sort/group_by (C, n log n) do the aggregation.
_JQ = (
    '[inputs | [.kind, (if .kind == "ack" then .ack_ms else null end), (if .kind == "envelope" then .event_id else null end)]] as $rows'
    " | ([$rows[] | .[1] | select(. != null)] | sort) as $acks"
    " | {kinds: ($rows | group_by(.[0]) | map({key: .[0][0], value: length}) | from_entries),"
    " p50: $acks[($acks | length) * 0.5 | floor], p99: $acks[($acks | length) * 0.99 | floor],"
    " multi: ([$rows[] | .[2] | select(. != null)] | group_by(.) | map(select(length > 1)) | length)}"
)


def _median_run(runs: int, cmd: list[str], **kw) -> dict:  # type: ignore[no-untyped-def]
    """Run ``cmd`` ``runs`` times; the run with the median wall time, with every wall time attached."""
    done = []
    for _ in range(runs):
        wall, rss, out = _run(cmd, **kw)
        d = json.loads(out)
        d.update(wall=wall, rss=rss)
        d.setdefault("seconds", wall)
        done.append(d)
    done.sort(key=lambda d: d["seconds"])
    mid = done[len(done) // 2]
    mid["walls"] = [round(d["seconds"], 2) for d in done]
    mid["rss_max"] = max(d.get("rss_sum", d["rss"]) for d in done)
    return mid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench diagnose", description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument(
        "--quick", action="store_true", help="200,000 lines, one run each (a smoke test, not the target)"
    )
    ap.add_argument("--runs", type=int, default=3, help="runs per tool; the median is reported (default 3)")
    ap.add_argument("--regen", action="store_true", help="regenerate the input even if it exists")
    ap.add_argument("--no-contenders", action="store_true", help="skip DuckDB and jq")
    ap.add_argument("--single", action="store_true", help="also time diagnose kept to one process")
    args = ap.parse_args(argv)
    if args.quick:
        args.lines, args.runs = 200_000, 1
    path = OUT / f"diagnose-v2-{args.lines}.jsonl"
    if args.regen or not path.exists():
        t0 = time.perf_counter()
        generate(path, args.lines)
        print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    size_mib = path.stat().st_size / 2**20
    with open(path, "rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 22), b""))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"input: {lines:,} lines, {size_mib:.0f} MiB, {os.cpu_count()} CPU(s), load average {load:.2f} at start"
    )
    print(f"runs per tool: {args.runs} (median reported)\n")

    diag = [sys.executable, "-c", _DIAGNOSE, str(path)]
    results: dict[str, dict] = {"slackops diagnose": _median_run(args.runs, diag)}
    if args.single:
        results["slackops diagnose, 1 process"] = _median_run(
            args.runs, diag, env={"SLACKOPS_DIAGNOSE_SPLIT": "0"}
        )
    if not args.no_contenders:
        try:
            import duckdb  # noqa: F401
        except ImportError:
            print("duckdb: not installed (pip install 'slackops[bench]'), skipped")
        else:
            results["duckdb read_ndjson+SQL"] = _median_run(
                args.runs, [sys.executable, "-c", _DUCKDB, str(path)]
            )
        jq = shutil.which("jq")
        if jq is None:
            print("jq: not installed (apt-get install jq), skipped")
        else:
            # jq is slow (minutes for 1M lines): one run is enough to place it.
            results["jq"] = _median_run(1, [jq, "-n", "-c", _JQ], stdin=str(path))

    ours = results["slackops diagnose"]
    print(
        f"{'tool':30} {'s (median)':>10} {'lines/s':>11} {'peak RSS MiB':>13} {'p50 ms':>8} {'p99 ms':>8} {'multi':>7}  time vs slackops   all runs (s)"
    )
    for name, r in results.items():
        lps = lines / r["seconds"]
        ratio = r["seconds"] / ours["seconds"]
        rss = r.get("rss_sum", r["rss"])
        print(
            f"{name:30} {r['seconds']:10.2f} {lps:11,.0f} {rss:13.0f} {r['p50'] or 0:8.2f} {r['p99'] or 0:8.2f} "
            f"{r['multi'] or 0:7}  {'' if name == 'slackops diagnose' else f'{ratio:.2f}x':17}  {r['walls']}"
        )
    inner = lines / ours["seconds"]
    print(
        f"\nslackops diagnose: {inner:,.0f} lines/s in diagnose() (median of {args.runs}), "
        f"{lines / ours['wall']:,.0f} lines/s end to end (interpreter start and imports included); "
        f"{ours['processes']} process(es), {ours['cpu']:.2f} s CPU in total"
    )
    print(f"  target (issue 6) >= {TARGET_LPS:,} lines/s: {'MET' if inner >= TARGET_LPS else 'NOT MET'}; "
          f"peak RSS (sum over processes, worst run) {ours['rss_max']:.0f} MiB, target <= {TARGET_RSS_MIB} MiB: "
          f"{'MET' if ours['rss_max'] <= TARGET_RSS_MIB else 'NOT MET'}")  # fmt: skip
    duck = results.get("duckdb read_ndjson+SQL")
    if duck:
        print(
            f"  vs DuckDB (the aim beyond issue 6): DuckDB takes {duck['seconds'] / ours['seconds']:.2f}x our time"
        )
    if load > 1.0:
        print(f"  note: the machine was busy (load {load:.2f}): figures are lower than on an idle machine")
    print(f"  findings on the generated data: {', '.join(ours['findings']) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
