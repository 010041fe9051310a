#!/usr/bin/env python3
"""The status page and the read API under a real agent: latency per endpoint and the agent's CPU for it.

A real `hostwarden run` (1 s collection/evaluation, the shipped rules plus `--alerts` textfile series
that fire one alert each, i.e. that many charts up to the page's 12) is asked `--requests` times in a
row for each endpoint, one client at a time over a keep-alive connection, after the alerts fired and
their tickets were opened. Prints p50/p95/max milliseconds and the agent's CPU seconds per request.

    .venv/bin/python bench/web.py [--alerts 20] [--requests 100]

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.agent import start_agent, wait_for, write_config  # noqa: E402

ENDPOINTS = ("/", "/api/v1/rules", "/api/v1/alerts", "/api/v1/query?query=sum+by+(kind)+(bench_value)",
             "/api/v1/query_range?query=sum+by+(kind)+(bench_value)&start={start}&end={end}&step=1",
             "/api/hostwarden/v1/status")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=20)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "rules").mkdir()
        for f in (ROOT / "config" / "rules").glob("*.yaml"):
            (d / "rules" / f.name).write_text(f.read_text())
        (d / "rules" / "bench.yaml").write_text(
            "groups:\n  - name: bench\n    interval: 1s\n    rules:\n"
            "      - alert: BenchHigh\n        expr: bench_value > 10\n        labels: {severity: warning}\n"
            "        annotations: {summary: 'bench {{ $labels.kind }} at {{ $value }}'}\n")
        textfile = d / "state" / "textfile"
        textfile.mkdir(parents=True)
        (textfile / "bench.prom").write_text("".join(f'bench_value{{kind="k{i}"}} {20 + i}\n'
                                                     for i in range(args.alerts)))
        agent = start_agent(write_config(d, "rule_files: [rules/*.yaml]\n"))
        try:
            def ticketed() -> bool:
                data = json.loads(agent.scrape("/api/hostwarden/v1/status"))
                return sum(1 for a in data["alerts"] if a["ticket"] and a["name"] == "BenchHigh") >= args.alerts

            wait_for(ticketed, 60, what="every bench alert with its ticket")
            time.sleep(5)  # some history for the charts
            print(f"agent with the shipped rules + {args.alerts} firing alerts; {args.requests} requests each")
            print(f"{'endpoint':<44} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'KiB':>7} {'CPU ms/req':>10}")
            conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=30)
            for template in ENDPOINTS:
                now = time.time()
                path = template.format(start=now - 20, end=now)
                times, size = [], 0
                cpu0 = cpu_seconds(agent.proc.pid)
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    body = resp.read()
                    times.append((time.perf_counter() - t0) * 1000)
                    assert resp.status == 200, (path, resp.status, body[:200])
                    size = len(body)
                cpu = (cpu_seconds(agent.proc.pid) - cpu0) / args.requests * 1000
                times.sort()
                p95 = times[max(0, int(len(times) * 0.95) - 1)]
                name = path if "?" not in path else path[:path.index("?") + 15]
                print(f"{name:<44} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f} "
                      f"{size / 1024:7.1f} {cpu:10.1f}")
            conn.close()
        finally:
            agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
