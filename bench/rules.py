#!/usr/bin/env python3
"""Rule evaluation benchmark: hostwarden's evaluator vs a real Prometheus, same rules, same series.

For each rule count (default 100, 1,000, 10,000) over 10,000 series:
  - hostwarden: the rule file is loaded with rules.loader and evaluated by rules.manager.RuleManager
    over a SeriesStore holding 10,000 series with 5 minutes of 10 s samples; prints evaluation
    seconds per cycle (median of --cycles) and the store's memory;
  - Prometheus (Debian's `prometheus`): scrapes the same 10,000 series from a small exporter on
    127.0.0.1 and evaluates the same rule file; prints the sum over groups of
    `prometheus_rule_group_last_duration_seconds` (median over several evaluations).
and the ratio hostwarden / Prometheus.

    .venv/bin/python bench/rules.py [--counts 100,1000,10000] [--series 10000] [--cycles 5] [--regex]

Loopback only; loops bounded by counts and a time limit per Prometheus run.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hostwarden.agent.core.samples import labels_of  # noqa: E402
from hostwarden.agent.core.schema import Errors  # noqa: E402
from hostwarden.agent.core.store import SeriesStore  # noqa: E402

SHARDS = 100
PROM_WAIT_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rule_file(n: int, path: Path, *, regex: bool = False) -> None:
    """n alert rules in groups of 100: thresholds, rates and aggregations, like shipped rules. With `regex`,
    every selector uses regular-expression matchers instead (alternation, prefix, infix, character classes),
    so the run measures regex label matching against Prometheus' (Go RE2)."""
    lines = ["groups:"]
    for i in range(n):
        if i % 100 == 0:
            lines.append(f"  - name: g{i // 100}\n    interval: 10s\n    rules:")
        shard = i % SHARDS
        kind = i % 4
        if regex:
            expr = [f'bench_gauge{{shard=~"{shard}|{(shard + 1) % SHARDS}"}} > 0.9',
                    f'rate(bench_counter_total{{instance=~"i{shard}.*"}}[1m]) > 50',
                    f'avg by (shard) (bench_gauge{{instance=~".*{shard}[0-9]"}}) > 0.95',
                    f'max_over_time(bench_gauge{{shard=~"{shard % 10}[0-9]?", instance!~"i1.*"}}[2m]) > 0.99'][kind]
        elif kind == 0:
            expr = f'bench_gauge{{shard="{shard}"}} > 0.9'
        elif kind == 1:
            expr = f'rate(bench_counter_total{{shard="{shard}"}}[1m]) > 50'
        elif kind == 2:
            expr = f'avg by (shard) (bench_gauge{{shard="{shard}"}}) > 0.95'
        else:
            expr = f'max_over_time(bench_gauge{{shard="{shard}"}}[2m]) > 0.99'
        lines.append(f"      - alert: Bench{i}\n        expr: '{expr}'\n        for: 1m")
    path.write_text("\n".join(lines) + "\n")


def series_values(i: int, step: int) -> tuple[float, float]:
    gauge = ((i * 7919 + step * 13) % 1000) / 1000.0
    counter = float(step * (i % 97 + 1) * 10)
    return gauge, counter


def fill_store(store: SeriesStore, n_series: int, now: float, points: int = 30) -> None:
    per = n_series // 2
    for i in range(per):
        lab = labels_of(shard=str(i % SHARDS), instance=f"i{i}")
        g, c = [], []
        for step in range(points):
            t = now - (points - 1 - step) * 10
            gv, cv = series_values(i, step)
            g.append((t, gv))
            c.append((t, cv))
        store.load_series("bench_gauge", lab, g)
        store.load_series("bench_counter_total", lab, c)


def bench_hostwarden(rules_path: Path, n_series: int, cycles: int) -> tuple[float, int]:
    from hostwarden.rules.loader import load_rule_files
    from hostwarden.rules.manager import RuleManager

    errors = Errors()
    groups = load_rule_files([str(rules_path)], errors, default_interval=10.0)
    errors.raise_if_any()
    mgr = RuleManager(groups, external_labels={"host": "bench"})
    store = SeriesStore()
    now = time.time()
    fill_store(store, n_series, now)
    times = []
    for c in range(cycles):
        t0 = time.perf_counter()
        for g in mgr.groups:
            mgr.evaluate(g, store, now + c * 10)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), store.memory_bytes()


class Exporter(BaseHTTPRequestHandler):
    n_series = 10000
    step = 0

    def do_GET(self) -> None:
        Exporter.step += 1
        out = ["# TYPE bench_gauge gauge", "# TYPE bench_counter_total counter"]
        for i in range(self.n_series // 2):
            g, c = series_values(i, Exporter.step)
            lab = f'shard="{i % SHARDS}",instance="i{i}"'
            out.append(f"bench_gauge{{{lab}}} {g}")
            out.append(f"bench_counter_total{{{lab}}} {c}")
        body = ("\n".join(out) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def prom_metric_sum(port: int, name: str) -> tuple[float, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    vals = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]
    return sum(vals), len(vals)


def bench_prometheus(rules_path: Path, exporter_port: int, n_groups: int, workdir: Path) -> float | None:
    binary = shutil.which("prometheus")
    if not binary:
        return None
    port = free_port()
    cfg = workdir / "prometheus.yml"
    cfg.write_text(f"global:\n  scrape_interval: 5s\n  evaluation_interval: 10s\nrule_files: ['{rules_path}']\n"
                   f"scrape_configs:\n  - job_name: bench\n    static_configs:\n"
                   f"      - targets: ['127.0.0.1:{exporter_port}']\n")
    proc = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.tsdb.path={workdir / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[float] = []
    try:
        deadline = time.monotonic() + PROM_WAIT_SECONDS
        seen_ts = 0.0
        while time.monotonic() < deadline and len(samples) < 4:
            time.sleep(2)
            try:
                total, groups = prom_metric_sum(port, "prometheus_rule_group_last_duration_seconds")
                ts, _ = prom_metric_sum(port, "prometheus_rule_group_last_evaluation_timestamp_seconds")
            except OSError:
                continue
            if groups >= n_groups and ts > seen_ts and total > 0:
                if seen_ts:  # skip the first evaluation (before 5 min of data exist)
                    samples.append(total)
                seen_ts = ts
    finally:
        proc.terminate()
        proc.wait(30)
    return statistics.median(samples) if samples else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="100,1000,10000")
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--no-prometheus", action="store_true")
    ap.add_argument("--regex", action="store_true", help="regex matchers in every selector (see rule_file)")
    args = ap.parse_args()
    Exporter.n_series = args.series
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    rows = []
    try:
        for n in (int(x) for x in args.counts.split(",")):
            with tempfile.TemporaryDirectory(prefix="hw-rules-") as d:
                path = Path(d) / "rules.yaml"
                rule_file(n, path, regex=args.regex)
                hw_s, mem = bench_hostwarden(path, args.series, args.cycles)
                prom_s = None if args.no_prometheus else bench_prometheus(path, srv.server_address[1],
                                                                          (n + 99) // 100, Path(d))
                rows.append((n, hw_s, mem, prom_s))
                print(f"  {n} rules done", file=sys.stderr)
    finally:
        srv.shutdown()
    print(f"series: {args.series}, matchers: {'regex' if args.regex else 'equality'}, "
          f"hostwarden cycles: {args.cycles} (median), Prometheus: median of 4 evaluations")
    print(f"{'rules':>6} {'hostwarden s/cycle':>19} {'store MB':>9} {'Prometheus s/cycle':>19} {'ratio':>7}")
    for n, hw_s, mem, prom_s in rows:
        prom = f"{prom_s:.4f}" if prom_s is not None else "n/a"
        ratio = f"{hw_s / prom_s:.1f}" if prom_s else "n/a"
        print(f"{n:6d} {hw_s:19.4f} {mem / 2**20:9.1f} {prom:>19} {ratio:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
