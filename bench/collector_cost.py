#!/usr/bin/env python3
"""CPU cost of each default host collector over this machine's real /proc and /sys, in-process.

Every default-enabled collector is built with its defaults (textfile over an empty directory) and
run for --cycles cycles; a cycle calls every collector once with the same `now`, as the agent's
scheduler does (so /proc/stat is read once for cpu, stat and uptime). Prints, per collector, CPU
microseconds per collect (process time, median over cycles) and series, then the whole cycle.

    .venv/bin/python bench/collector_cost.py [--cycles 300]

No network, no subprocess; bounded by --cycles.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from hostwarden.collectors import base
from hostwarden.collectors.textfile import TextfileConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=300)
    args = ap.parse_args()
    reg = base.registry()
    with tempfile.TemporaryDirectory() as textdir:
        cols = {name: reg[name](TextfileConfig(directory=textdir) if name == "textfile" else reg[name].Config())
                for name in base.DEFAULT_ENABLED}
        costs: dict[str, list[float]] = {name: [] for name in cols}
        series: dict[str, int] = {}
        cycle_costs: list[float] = []
        now = time.time()
        for col in cols.values():  # warm-up: first-read selections, caches
            list(col.collect(now - 1.0))
        for i in range(args.cycles):
            cycle_now = now + i
            start_cycle = time.process_time()
            for name, col in cols.items():
                start = time.process_time()
                series[name] = len(list(col.collect(cycle_now)))
                costs[name].append(time.process_time() - start)
            cycle_costs.append(time.process_time() - start_cycle)
    print(f"{'collector':12s} {'us/collect':>10s} {'series':>7s}")
    for name in sorted(cols, key=lambda n: -statistics.median(costs[n])):
        print(f"{name:12s} {statistics.median(costs[name]) * 1e6:10.0f} {series[name]:7d}")
    print(f"{'cycle':12s} {statistics.median(cycle_costs) * 1e6:10.0f} {sum(series.values()):7d}")


if __name__ == "__main__":
    main()
