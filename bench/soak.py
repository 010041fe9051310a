#!/usr/bin/env python3
"""Series churn soak: 100,000 collection cycles in accelerated time, in-process.

The agent's data path — SeriesStore, RuleManager (a real rule file) and the Exposition — is driven
with explicit timestamps (one cycle = --step seconds of simulated time, 10 s by default: 100,000
cycles are 11.6 simulated days). Labels come and go the way containers and mounts do:
  - --live containers are running at any time; each cycle --churn of them stop and as many new ones
    (never seen before) start, each with cpu/memory gauges and a CPU counter;
  - a handful of mounts are unmounted and mounted again (the same labels return);
  - the rules (alerting with `for`, a recording rule, a rate() over 5 m) make alerts fire, resolve
    and vanish with their series.
Every --render-every cycles the exposition is rendered (a scrape).

Reported: RSS after warm-up and at the end (growth in MiB), the store's series count and estimated
bytes, the exposition's series, alert records held by the rule manager — sampled along the way — and
the checks that stale series left the store and /metrics: at the end no container that stopped more
than the retention window ago is in the store, and none that stopped is in the rendered /metrics.

    .venv/bin/python bench/soak.py [--cycles 100000] [--live 200] [--churn 5] [--json out.json]

Exit status 1 when a stale series is still present or RSS grew by more than --max-growth-mib.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs  # noqa: E402
from hostwarden.agent.core.schema import Errors  # noqa: E402
from hostwarden.agent.core.store import SeriesStore  # noqa: E402
from hostwarden.exporters.prometheus import Exposition  # noqa: E402
from hostwarden.rules.loader import load_rule_files  # noqa: E402
from hostwarden.rules.manager import METRICS as RULE_METRICS  # noqa: E402
from hostwarden.rules.manager import RuleManager  # noqa: E402

T0 = 1_700_000_000.0
SWEEP_SLACK = 120.0  # the store drops fully stale series in a sweep at most once a minute
NODES = ("node-a", "node-b", "node-c", "node-d")
MOUNTS = tuple(f"/mnt/vol{i}" for i in range(8))

RULES = """groups:
  - name: churn
    rules:
      - alert: ContainerCPUHigh
        expr: container_cpu_usage_ratio > 0.9
        for: 1m
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.container }} on {{ $labels.node }} uses {{ $value | humanizePercentage }}"}
      - alert: ContainerBurningCPU
        expr: rate(container_cpu_seconds_total[5m]) > 0.95
        for: 2m
      - record: node:container_memory_bytes:sum
        expr: sum by (node) (container_memory_bytes)
      - alert: NodeMemoryHeavy
        expr: node:container_memory_bytes:sum > 60e9
      - alert: MountAlmostFull
        expr: mount_used_ratio > 0.95
        keep_firing_for: 5m
"""

DEFS = metric_defs(
    MetricDef("container_cpu_usage_ratio", "gauge", "CPU use of the container.", ("container", "node")),
    MetricDef("container_memory_bytes", "gauge", "Memory of the container.", ("container", "node")),
    MetricDef("container_cpu_seconds_total", "counter", "CPU seconds of the container.", ("container", "node")),
    MetricDef("mount_used_ratio", "gauge", "Used fraction of the mount.", ("mountpoint",)),
)


class Churn:
    """The live population: containers that come and go, mounts that disappear and come back."""

    def __init__(self, live: int, churn: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_id = 0
        self.churn = churn
        self.containers: dict[str, dict[str, Any]] = {}
        self.recent_stops: dict[str, float] = {}  # container -> simulated time it stopped (recent ones only)
        self.stopped = 0
        for _ in range(live):
            self._start()
        self.mounted = set(MOUNTS)

    def _start(self) -> None:
        cid = f"c{self.next_id:07d}"
        self.next_id += 1
        self.containers[cid] = {"node": self.rng.choice(NODES), "cpu_total": 0.0,
                                "hot": self.rng.random() < 0.05, "mem": self.rng.uniform(1e8, 4e9)}

    def step(self, t: float, remember: float) -> None:
        """Replace `churn` containers; stopped ones are remembered for `remember` simulated seconds (bounded:
        the soak measures the agent's memory, not its own)."""
        for cid in [c for c, at in self.recent_stops.items() if at < t - remember]:
            del self.recent_stops[cid]
        for cid in self.rng.sample(sorted(self.containers), self.churn):
            del self.containers[cid]
            self.recent_stops[cid] = t
            self.stopped += 1
        for _ in range(self.churn):
            self._start()
        mount = self.rng.choice(MOUNTS)  # one mount flips per cycle: unmounted, or mounted again
        self.mounted.symmetric_difference_update({mount})

    def samples(self, t: float, step: float) -> list[Sample]:
        out: list[Sample] = []
        for cid, c in self.containers.items():
            cpu = 0.97 if c["hot"] else self.rng.uniform(0.0, 0.6)
            c["cpu_total"] += cpu * step
            lab = (("container", cid), ("node", c["node"]))
            out.append(Sample("container_cpu_usage_ratio", lab, cpu, t))
            out.append(Sample("container_memory_bytes", lab, c["mem"], t))
            out.append(Sample("container_cpu_seconds_total", lab, c["cpu_total"], t))
        for m in sorted(self.mounted):
            out.append(Sample("mount_used_ratio", (("mountpoint", m),), self.rng.uniform(0.8, 0.99), t))
        return out


def rss_mib() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "churn.rules.yaml"
        path.write_text(RULES)
        errors = Errors()
        groups = load_rule_files([str(path)], errors, default_interval=args.step)
        errors.raise_if_any()
    manager = RuleManager(groups, external_labels={"host": "soak"})
    store = SeriesStore()
    by_name, all_names = manager.retention()
    store.set_retention(by_name, all_names=all_names)
    retention = max(by_name.values())
    exposition = Exposition(process_metrics=False)
    population = Churn(args.live, args.churn, args.seed)
    samples_log: list[dict[str, Any]] = []
    transitions = 0
    rss_warm = None
    started = time.perf_counter()
    deadline = time.monotonic() + args.time_limit
    t = T0
    cycle = 0
    rendered_text = b""
    for cycle in range(1, args.cycles + 1):
        if time.monotonic() > deadline:
            print(f"time limit of {args.time_limit:g}s reached at cycle {cycle}", file=sys.stderr)
            break
        t += args.step
        population.step(t, remember=retention + SWEEP_SLACK)
        samples = population.samples(t, args.step)
        store.append("churn", samples, t)
        exposition.update("churn", samples, DEFS)
        for group in manager.groups:
            transitions += len(manager.evaluate(group, store, t))
        exposition.update("rules", manager.alert_samples(t) + manager.self_samples(), RULE_METRICS)
        if cycle % args.render_every == 0:
            rendered_text = exposition.render().text
        if cycle == args.warmup:
            rss_warm = rss_mib()
        if cycle % args.sample_every == 0 or cycle == args.cycles:
            point = {"cycle": cycle, "simulated_days": round((t - T0) / 86400, 2), "rss_mib": round(rss_mib(), 1),
                     "store_series": store.series_count(), "store_bytes": store.memory_bytes(max_age=0),
                     "exposition_series": exposition.current().series, "active_alerts": len(manager.active_alerts()),
                     "containers_seen": population.next_id}
            samples_log.append(point)
            if args.verbose:
                print(json.dumps(point), flush=True)
    elapsed = time.perf_counter() - started
    rss_end = rss_mib()

    # stale series: every container that stopped more than the retention window (+ the store's sweep period)
    # ago is gone from the store; every container that stopped is gone from the last rendered /metrics
    rendered_text = exposition.render().text
    live = set(population.containers)
    in_store = {dict(s.labels).get("container") for s in store.series() if dict(s.labels).get("container")}
    stale_in_store = sorted(in_store - live - set(population.recent_stops))
    text = rendered_text.decode()
    in_metrics = {line.split('container="', 1)[1].split('"', 1)[0] for line in text.splitlines()
                  if 'container="' in line}
    stale_in_metrics = sorted(in_metrics - live)
    mounts_exposed = {line.split('mountpoint="', 1)[1].split('"', 1)[0] for line in text.splitlines()
                      if line.startswith("mount_used_ratio{")}
    result = {
        "cycles": cycle, "step_seconds": args.step, "simulated_days": round((t - T0) / 86400, 2),
        "live_containers": args.live, "churn_per_cycle": args.churn, "containers_seen": population.next_id,
        "unique_series_seen": population.next_id * 3 + len(MOUNTS), "retention_seconds": retention,
        "warmup_cycles": args.warmup, "rss_first_sample_mib": samples_log[0]["rss_mib"] if samples_log else None,
        "rss_warm_mib": round(rss_warm or 0.0, 1), "rss_end_mib": round(rss_end, 1),
        "rss_growth_mib": round(rss_end - (rss_warm or rss_end), 1),
        "store_series_end": store.series_count(), "store_series_max": max(p["store_series"] for p in samples_log),
        "store_bytes_end": store.memory_bytes(max_age=0), "exposition_series_end": exposition.current().series,
        "transitions": transitions, "stale_in_store": len(stale_in_store), "stale_in_metrics": len(stale_in_metrics),
        "mounts_exposed_match_mounted": mounts_exposed == population.mounted,
        "seconds": round(elapsed, 1), "ms_per_cycle": round(elapsed / max(cycle, 1) * 1000, 3),
        "samples": samples_log,
    }
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=100_000)
    ap.add_argument("--step", type=float, default=10.0, help="simulated seconds per cycle")
    ap.add_argument("--live", type=int, default=200, help="containers running at any time")
    ap.add_argument("--churn", type=int, default=5, help="containers replaced per cycle")
    ap.add_argument("--render-every", type=int, default=10, help="render /metrics every N cycles (a scrape)")
    ap.add_argument("--warmup", type=int, default=20_000,
                    help="cycle at which the baseline RSS is taken (the evaluator's bounded caches are full by then)")
    ap.add_argument("--sample-every", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-growth-mib", type=float, default=20.0)
    ap.add_argument("--time-limit", type=float, default=3600.0, help="stop after this many wall seconds")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    args.warmup = min(args.warmup, max(1, args.cycles // 5))
    result = run(args)
    summary = {k: v for k, v in result.items() if k != "samples"}
    for k, v in summary.items():
        print(f"{k:32} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    ok = (result["stale_in_store"] == 0 and result["stale_in_metrics"] == 0 and result["mounts_exposed_match_mounted"]
          and result["rss_growth_mib"] <= args.max_growth_mib)
    print("soak:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
