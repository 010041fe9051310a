#!/usr/bin/env python3
"""/metrics under a bounded loopback load while the agent collects 10,000 series and evaluates 1,000 rules.

Starts a real `hostwarden run` on 127.0.0.1 with
  - a textfile of --series series (`load_series{shard, i}`; the values move every cycle), collected every
    --interval seconds together with the host collectors;
  - --rules rules in 10 groups (evaluated every --interval seconds): threshold alerts with `for`, aggregations,
    range functions and recording rules over those series (a few of them fire);
then, after a warm-up, runs Debian's `wrk` against /metrics for --duration seconds with --connections
connections (bounded: wrk's own rate, --timeout per request), and meanwhile reads the agent's self-metrics
once a second on its own connection.

Reported: requests, scrape errors (socket errors, timeouts, non-2xx) and the error rate; latency p50/p90/p99
(wrk --latency) and the self-sampler's p99; the largest `hostwarden_scheduler_lag_seconds` seen; per rule
group the evaluations seen in `hostwarden_rule_group_last_evaluation_timestamp_seconds` against the
expected count, gaps longer than 1.5 intervals (missed evaluations), and evaluation durations; the
agent's CPU and RSS. The same figures for an idle window before the load make the comparison.

    .venv/bin/python bench/load.py [--duration 60] [--connections 8] [--series 10000] [--rules 1000]
                                   [--json out.json]

Exit status 1 when a scrape failed or an evaluation was missed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.agent import AgentProcess, start_agent, write_config  # noqa: E402

GROUPS = 10
SHARDS = 100
TIME_LIMIT_SECONDS = 900


def textfile(series: int, cycle: int) -> str:
    """`series` series: 3/4 gauges `load_series{shard,i}`, 1/4 counters `load_requests_total{shard,i}`
    (each family written contiguously, as the text format requires); values move with `cycle`."""
    per = math.ceil(series / SHARDS)
    gauges: list[str] = []
    counters: list[str] = []
    n = 0
    for shard in range(SHARDS):
        for i in range(per):
            if n >= series:
                break
            if i % 4:
                gauges.append(f'load_series{{shard="{shard}",i="{i}"}} {(shard * 7 + i * 13 + cycle) % 100}')
            else:
                counters.append(f'load_requests_total{{shard="{shard}",i="{i}"}} {1000 * cycle + shard + i}')
            n += 1
    lines = ["# HELP load_series Synthetic series for the load benchmark.", "# TYPE load_series gauge", *gauges,
             "# HELP load_requests_total Synthetic counter.", "# TYPE load_requests_total counter", *counters]
    return "\n".join(lines) + "\n"


def rules_yaml(count: int, interval: float) -> str:
    per_group = math.ceil(count / GROUPS)
    out = ["groups:"]
    n = 0
    for g in range(GROUPS):
        out += [f"  - name: load{g}", f"    interval: {interval:g}s", "    rules:"]
        for r in range(per_group):
            if n >= count:
                break
            shard = n % SHARDS
            kind = n % 5
            if kind == 0:
                out += [f"      - alert: LoadHigh{n}", f'        expr: load_series{{shard="{shard}"}} > 98',
                        "        for: 1m"]
            elif kind == 1:
                out += [f"      - alert: LoadAvgHigh{n}",
                        f'        expr: avg by (shard) (load_series{{shard="{shard}"}}) > 90']
            elif kind == 2:
                out += [f"      - alert: LoadRate{n}",
                        f'        expr: sum(rate(load_requests_total{{shard="{shard}"}}[1m])) > 1e9']
            elif kind == 3:
                out += [f"      - record: shard:load_series:max{n}",
                        f'        expr: max by (shard) (load_series{{shard="{shard}"}})']
            else:
                out += [f"      - alert: LoadTrend{n}", "        critical: '> 1e6'",
                        f'        expr: max_over_time(load_series{{shard="{shard}"}}[5m])']
            n += 1
            del r
    return "\n".join(out) + "\n"


def parse_metrics(text: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        m = re.match(r"^(hostwarden_[a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


class SelfSampler:
    """Reads the agent's self-metrics once a second, on its own connection (bounded by a stop event)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.points: list[tuple[float, dict[tuple[str, str], float]]] = []
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as resp:
                    text = resp.read().decode()
                self.latencies.append(time.monotonic() - start)
                self.points.append((time.time(), parse_metrics(text)))
            except OSError:
                self.errors += 1
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - start)))

    def start(self) -> SelfSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def evaluations(points: list[tuple[float, dict[tuple[str, str], float]]], interval: float,
                window: tuple[float, float]) -> dict[str, Any]:
    """Per group: distinct last-evaluation timestamps in the window, gaps over 1.5 intervals, durations."""
    per_group: dict[str, list[float]] = {}
    durations: list[float] = []
    for _, m in points:
        for (name, labels), v in m.items():
            if name == "hostwarden_rule_group_last_evaluation_timestamp_seconds" and window[0] <= v <= window[1]:
                per_group.setdefault(labels, [])
                if v not in per_group[labels]:
                    per_group[labels].append(v)
            if name == "hostwarden_rule_evaluation_duration_seconds":
                durations.append(v)
    expected = (window[1] - window[0]) / interval
    seen = [len(v) for v in per_group.values()]
    gaps = [b - a for v in per_group.values() for a, b in zip(sorted(v), sorted(v)[1:], strict=False)]
    missed = sum(max(0, round(g / interval) - 1) for g in gaps if g > 1.5 * interval)
    return {"groups": len(per_group), "expected_per_group": round(expected, 1),
            "seen_per_group_min": min(seen, default=0), "seen_per_group_max": max(seen, default=0),
            "max_gap_s": round(max(gaps, default=0.0), 3), "missed_evaluations": missed,
            "eval_duration_p50_s": round(statistics.median(durations), 4) if durations else None,
            "eval_duration_max_s": round(max(durations), 4) if durations else None}


def window_stats(sampler: SelfSampler, proc: psutil.Process, seconds: float, interval: float) -> dict[str, Any]:
    """Sample for `seconds`, return self-metric figures of that window and the agent's CPU use."""
    first = len(sampler.points)
    cpu0 = proc.cpu_times()
    t0 = time.time()
    time.sleep(seconds)
    t1 = time.time()
    cpu1 = proc.cpu_times()
    pts = sampler.points[first:]
    lags = [m.get(("hostwarden_scheduler_lag_seconds", ""), 0.0) for _, m in pts]
    return {"seconds": round(t1 - t0, 1),
            "cpu_ratio": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0), 3),
            "rss_mib": round(proc.memory_info().rss / 2**20, 1),
            "scheduler_lag_max_s": round(max(lags, default=0.0), 3),
            "exposition_series": max((m.get(("hostwarden_exposition_series", ""), 0.0) for _, m in pts), default=0),
            "render_seconds_max": round(max((m.get(("hostwarden_exposition_render_duration_seconds", ""), 0.0)
                                             for _, m in pts), default=0.0), 4),
            "rules": evaluations(pts, interval, (t0 + interval, t1))}


def parse_wrk(out: str) -> dict[str, Any]:
    def ms(text: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s|m)", text)
        if not m:
            return float("nan")
        factor = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]
        return float(m.group(1)) * factor

    res: dict[str, Any] = {}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.MULTILINE)
        res[f"latency_p{pct}_ms"] = round(ms(m.group(1)), 2) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(map(int, m.groups())) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["requests_per_second"] = float(m.group(1)) if m else 0.0
    errors = res["socket_errors"] + res["non_2xx"]
    res["error_rate"] = round(errors / res["requests"], 6) if res["requests"] else None
    return res


def rewrite_loop(path: Path, series: int, interval: float, stop: threading.Event) -> None:
    cycle = 0
    while not stop.wait(interval) and cycle < 100_000:
        cycle += 1
        tmp = path.with_suffix(".tmp")
        tmp.write_text(textfile(series, cycle))
        tmp.rename(path)  # atomic, as the textfile collector's docs ask


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if not wrk:
        raise SystemExit("bench/load.py needs `wrk` (Debian package wrk): apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="hw-load-") as tmp:
        d = Path(tmp)
        tf = d / "textfile"
        tf.mkdir()
        prom = tf / "load.prom"
        prom.write_text(textfile(args.series, 0))
        (d / "load.rules.yaml").write_text(rules_yaml(args.rules, args.interval))
        cfg = write_config(d, f"collectors:\n  textfile: {{directory: {tf}}}\nrule_files: [load.rules.yaml]\n")
        cfg.write_text(cfg.read_text().replace("interval: 1s", f"interval: {args.interval:g}s", 1))
        agent: AgentProcess = start_agent(cfg, wait_ready=120)
        stop = threading.Event()
        writer = threading.Thread(target=rewrite_loop, args=(prom, args.series, args.interval, stop), daemon=True)
        sampler = SelfSampler(agent.url + "/metrics").start()
        try:
            writer.start()
            proc = psutil.Process(agent.proc.pid)
            time.sleep(args.warmup)
            idle = window_stats(sampler, proc, args.idle, args.interval)
            first = len(sampler.points)
            cpu0, t0 = proc.cpu_times(), time.time()
            cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration:g}s", "--latency",
                   f"--timeout={args.timeout:g}s", agent.url + "/metrics"]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 120).stdout
            t1, cpu1 = time.time(), proc.cpu_times()
            pts = sampler.points[first:]
            lags = [m.get(("hostwarden_scheduler_lag_seconds", ""), 0.0) for _, m in pts]
            loaded = {"seconds": round(t1 - t0, 1),
                      "cpu_ratio": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0), 3),
                      "rss_mib": round(proc.memory_info().rss / 2**20, 1),
                      "scheduler_lag_max_s": round(max(lags, default=0.0), 3),
                      "self_sampler_p99_ms": round(sorted(sampler.latencies[first:])[
                          max(0, math.ceil(0.99 * len(sampler.latencies[first:])) - 1)] * 1000, 1)
                      if sampler.latencies[first:] else None,
                      "self_sampler_errors": sampler.errors,
                      "exposition_series": max((m.get(("hostwarden_exposition_series", ""), 0.0) for _, m in pts),
                                               default=0),
                      "rules": evaluations(pts, args.interval, (t0 + args.interval, t1))}
        finally:
            sampler.stop()
            stop.set()
            writer.join(10)
            code = agent.stop(timeout=60)
        return {"series": args.series, "rules": args.rules, "interval_s": args.interval,
                "wrk": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration,
                        **parse_wrk(out)},
                "idle": idle, "loaded": loaded, "agent_exit_code": code, "wrk_output": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of wrk load")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0, help="wrk's per-request timeout (s)")
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--rules", type=int, default=1_000)
    ap.add_argument("--interval", type=float, default=10.0, help="collection and evaluation interval (s)")
    ap.add_argument("--warmup", type=float, default=25.0, help="seconds before measuring")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement before the load")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    args = ap.parse_args()
    if args.duration + args.warmup + args.idle > TIME_LIMIT_SECONDS:
        ap.error(f"duration + warmup + idle must stay under {TIME_LIMIT_SECONDS}s")
    result = run(args)
    summary = {k: v for k, v in result.items() if k != "wrk_output"}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    loaded = result["loaded"]
    ok = (result["wrk"]["error_rate"] == 0 and loaded["rules"]["missed_evaluations"] == 0
          and result["wrk"]["requests"] > 0 and loaded["exposition_series"] >= args.series)
    print("load:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
