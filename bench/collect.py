#!/usr/bin/env python3
"""Collection and scrape benchmark: hostwarden side by side with Debian's node_exporter.

Starts, on 127.0.0.1:
  - node_exporter with its defaults,
  - node_exporter with only the collectors hostwarden has (cpu, meminfo, filesystem, loadavg,
    diskstats, netdev),
  - hostwarden with its host collectors (optionally plus 50 mixed service checks, one of which
    hangs past its timeout),
then scrapes each N times (sequentially, one keep-alive connection, as Prometheus does) and prints
series count, scrape latency p50/p99, CPU seconds per scrape (node_exporter collects on scrape),
hostwarden's CPU seconds per collection cycle (each cycle scraped once, as Prometheus would) and per
extra scrape, and RSS; the ratios hostwarden / node_exporter, checked against issue 14's targets
(against node_exporter with its defaults: scrape p50 and p99 at most 0.1x, CPU per cycle at most its
CPU per scrape, RSS under 50 MB); and what each collector costs: hostwarden's measured in this process
(CPU per collect over --collector-runs runs, series), next to node_exporter's own
node_scrape_collector_duration_seconds (wall time) for the collector of the same source.

    .venv/bin/python bench/collect.py [--scrapes 500] [--checks] [--idle 30] [--collector-runs 200]

Loopback only; every loop is bounded by --scrapes and a time limit.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
SAME_SET = ["--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.filesystem",
            "--collector.loadavg", "--collector.diskstats", "--collector.netdev"]
TIME_LIMIT_SECONDS = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its reaped children (plugins), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_http(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port}{path}")


@dataclass
class Result:
    name: str
    series: int
    p50_ms: float
    p99_ms: float
    cpu_per_scrape_s: float
    cpu_per_cycle_s: float | None
    rss_mb: float
    bytes_per_scrape: int


def scrape_loop(port: int, n: int, *, gzip_ok: bool = True) -> tuple[list[float], int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat: list[float] = []
    series = size = 0
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    deadline = time.monotonic() + TIME_LIMIT_SECONDS / 4
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        lat.append(time.perf_counter() - t0)
        size = len(body)
        if resp.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        series = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
    conn.close()
    return lat, series, size


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def measure(name: str, proc: subprocess.Popen, port: int, scrapes: int, idle: float, cycle_s: float | None) -> Result:
    scrape_loop(port, 5)  # warm up
    cpu_per_cycle = None
    if cycle_s:
        # one collection cycle + one scrape of it, repeated: the whole cost of serving Prometheus,
        # comparable with node_exporter's CPU per scrape (which collects and renders on the scrape)
        # on one keep-alive connection, as Prometheus scrapes (node_exporter's loop below uses one too)
        cycles = max(1, round(idle / cycle_s))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c0 = cpu_seconds(proc.pid)
        for _ in range(cycles):
            time.sleep(cycle_s)
            try:
                conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):  # the server closed an idle connection: reconnect
                conn.close()
                conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
                conn.getresponse().read()
        cpu_per_cycle = (cpu_seconds(proc.pid) - c0) / cycles
        conn.close()
    c0, t0 = cpu_seconds(proc.pid), time.monotonic()
    lat, series, size = scrape_loop(port, scrapes)
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(proc.pid) - c0
    if cpu_per_cycle is not None:  # remove the collection cycles that ran during the scrape loop
        cpu = max(0.0, cpu - cpu_per_cycle * elapsed / cycle_s)
    return Result(name, series, pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000, cpu / max(1, len(lat)),
                  cpu_per_cycle, rss_bytes(proc.pid) / 2**20, size)


class _SlowHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/hang"):
            time.sleep(30)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def checks_config(http_port: int, tcp_port: int, workdir: Path) -> str:
    (workdir / "backup.dump").write_bytes(b"x" * 1024)
    lines = ["checks:"]
    for i in range(15):
        lines.append(f"  - {{name: http-{i}, type: http, url: 'http://127.0.0.1:{http_port}/ok', timeout: 2s}}")
    for i in range(15):
        lines.append(f"  - {{name: tcp-{i}, type: tcp, address: '127.0.0.1:{tcp_port}', timeout: 2s}}")
    for i in range(10):
        lines.append(f"  - {{name: file-{i}, type: file, path: '{workdir / 'backup.dump'}'}}")
    for i in range(5):
        lines.append(f"  - {{name: proc-{i}, type: process, process: python3}}")
    for i in range(4):
        plugin = "/usr/lib/nagios/plugins/check_dummy"
        lines.append(f"  - {{name: nagios-{i}, type: nagios, command: [{plugin}, '0', 'fine']}}")
    lines.append(f"  - {{name: hung, type: http, url: 'http://127.0.0.1:{http_port}/hang', timeout: 3s}}")
    return "\n".join(lines) + "\n"


# hostwarden collector -> node_exporter collector reading the same source (where the names differ)
NE_NAME = {"memory": "meminfo", "diskio": "diskstats", "network": "netdev", "load": "loadavg", "uptime": "stat"}


def collector_costs(runs: int) -> list[tuple[str, int, float, float]]:
    """(collector, series, CPU ms per collect, wall ms per collect) for every default collector, in this process."""
    from hostwarden.collectors import base
    from hostwarden.collectors.textfile import TextfileConfig

    out = []
    reg = base.registry()
    with tempfile.TemporaryDirectory() as tmp:
        for name in base.DEFAULT_ENABLED:
            cls = reg[name]
            cfg = TextfileConfig(directory=tmp) if name == "textfile" else cls.Config()
            col = cls(cfg)
            series = len(list(col.collect(time.time())))  # first run: caches and definitions
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(runs):
                col.collect(time.time())
            out.append((name, series, (time.process_time() - c0) * 1000 / runs,
                        (time.perf_counter() - w0) * 1000 / runs))
    return out


def node_exporter_collector_durations(port: int, samples: int = 20) -> dict[str, float]:
    """Median of node_exporter's node_scrape_collector_duration_seconds per collector, in ms."""
    seen: dict[str, list[float]] = {}
    for _ in range(samples):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        conn.close()
        for line in body.splitlines():
            if line.startswith("node_scrape_collector_duration_seconds{"):
                name = line.split('collector="', 1)[1].split('"', 1)[0]
                seen.setdefault(name, []).append(float(line.rsplit(" ", 1)[1]) * 1000)
    return {k: pct(v, 0.5) for k, v in seen.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scrapes", type=int, default=500)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds to measure hostwarden's idle CPU per cycle")
    ap.add_argument("--interval", type=float, default=10.0, help="hostwarden collection interval (s)")
    ap.add_argument("--checks", action="store_true", help="add 50 mixed service checks (one hangs)")
    ap.add_argument("--collector-runs", type=int, default=200, help="collects per collector for the cost table")
    args = ap.parse_args()
    ne = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if not ne:
        print("Debian's prometheus-node-exporter is not installed: apt-get install -y prometheus-node-exporter")
        return 2
    hw = Path(sys.executable).parent / "hostwarden"
    hw_cmd = [str(hw)] if hw.exists() else [sys.executable, "-m", "hostwarden.agent.cli"]
    procs: list[subprocess.Popen] = []
    results: list[Result] = []
    workdir = Path(tempfile.mkdtemp(prefix="hw-bench-"))
    srv = None
    try:
        ports = {}
        for label, extra in (("node_exporter (defaults)", []), ("node_exporter (same collectors)", SAME_SET)):
            port = free_port()
            p = subprocess.Popen([ne, f"--web.listen-address=127.0.0.1:{port}", *extra],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            ports[label] = (p, port)
            wait_http(port, "/metrics")
        port = free_port()
        body = "rule_files: []\n"
        if args.checks:
            srv = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
            srv.daemon_threads = True
            srv.handle_error = lambda *_a: None  # the agent hangs up on /hang at its timeout: expected
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            body += checks_config(srv.server_address[1], listener.getsockname()[1], workdir)
        cfg = workdir / "hostwarden.yaml"
        cfg.write_text(f"global:\n  interval: {args.interval}s\n  state_dir: {workdir / 'state'}\n"
                       f"web:\n  listen_address: 127.0.0.1:{port}\n{body}")
        log = open(workdir / "agent.log", "wb")  # noqa: SIM115 - the child's lifetime
        p = subprocess.Popen([*hw_cmd, "run", "--config", str(cfg), "--log.level", "warn"],
                             stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        procs.append(p)
        try:
            wait_http(port, "/-/ready")
        except RuntimeError:
            print((workdir / "agent.log").read_text(), file=sys.stderr)
            raise
        time.sleep(min(args.interval, 5))
        for label, (proc, pport) in ports.items():
            results.append(measure(label, proc, pport, args.scrapes, 0, None))
        ne_durations = node_exporter_collector_durations(ports["node_exporter (defaults)"][1])
        results.append(measure("hostwarden" + (" + 50 checks" if args.checks else ""), p, port, args.scrapes,
                               args.idle, args.interval))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if srv is not None:
            srv.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"scrapes per target: {args.scrapes}, hostwarden interval {args.interval:g}s, "
          f"idle window {args.idle:g}s, {os.cpu_count()} CPUs")
    print(f"{'target':36} {'series':>7} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/scrape':>14} "
          f"{'CPU ms/cycle':>13} {'RSS MB':>7} {'bytes':>8}")
    for r in results:
        cyc = f"{r.cpu_per_cycle_s * 1000:.2f}" if r.cpu_per_cycle_s is not None else "-"
        print(f"{r.name:36} {r.series:7d} {r.p50_ms:8.3f} {r.p99_ms:8.3f} {r.cpu_per_scrape_s * 1000:14.3f} "
              f"{cyc:>13} {r.rss_mb:7.1f} {r.bytes_per_scrape:8d}")
    hwr = results[-1]
    for base in results[:-1]:
        cycle_ratio = (hwr.cpu_per_cycle_s or 0) / base.cpu_per_scrape_s if base.cpu_per_scrape_s else float("nan")
        print(f"ratio hostwarden / {base.name}: series {hwr.series / base.series:.2f}, "
              f"p50 {hwr.p50_ms / base.p50_ms:.2f}, p99 {hwr.p99_ms / base.p99_ms:.2f}, "
              f"CPU per cycle vs its CPU per scrape {cycle_ratio:.2f}, RSS {hwr.rss_mb / base.rss_mb:.2f}")
    ne_def = results[0]
    cycle_ratio = (hwr.cpu_per_cycle_s or 0) / ne_def.cpu_per_scrape_s if ne_def.cpu_per_scrape_s else float("nan")
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print("issue 14 targets against node_exporter (defaults): "
          f"p50 {hwr.p50_ms / ne_def.p50_ms:.3f} (<= 0.1: {verdict(hwr.p50_ms <= 0.1 * ne_def.p50_ms)}), "
          f"p99 {hwr.p99_ms / ne_def.p99_ms:.3f} (<= 0.1: {verdict(hwr.p99_ms <= 0.1 * ne_def.p99_ms)}), "
          f"CPU/cycle {cycle_ratio:.2f} (<= 1: {verdict(cycle_ratio <= 1)}), "
          f"RSS {hwr.rss_mb:.1f} MB (< 50: {verdict(hwr.rss_mb < 50)})")

    costs = collector_costs(args.collector_runs)
    print(f"\nper collector, {args.collector_runs} collects in this process (hostwarden) / "
          f"node_exporter's own node_scrape_collector_duration_seconds, median of 20 scrapes")
    print(f"{'collector':18} {'series':>7} {'CPU ms/collect':>15} {'wall ms':>8}   {'node_exporter':18} {'wall ms':>8}")
    total_cpu = 0.0
    for name, series, cpu_ms, wall_ms in costs:
        total_cpu += cpu_ms
        ne_name = NE_NAME.get(name, name)
        ne_ms = ne_durations.get(ne_name)
        print(f"{name:18} {series:7d} {cpu_ms:15.3f} {wall_ms:8.3f}   {ne_name:18} "
              f"{(f'{ne_ms:.3f}' if ne_ms is not None else '-'):>8}")
    print(f"{'all collectors':18} {sum(c[1] for c in costs):7d} {total_cpu:15.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
