#!/usr/bin/env python3
"""Time to detect: from the moment a real CPU load starts to the ticket's existence.

hostwarden (one process: collect → rule → incident → outbox → local ticket store) against Debian's
node_exporter + Prometheus + Alertmanager + a webhook receiver (the ticket "exists" when the
receiver gets the notification), each with
  (a) typical settings: 15 s scrape/collection and evaluation, `for: 1m`, Alertmanager group_wait 30 s;
  (b) the tightest settings each allows: 1 s intervals, no `for`, group_wait 0 s.
The load is stress-ng (or Python busy loops) on every CPU. Prints both chains' seconds and the ratio.

Then outbox throughput: operations per second from IncidentManager.handle() into the `local` and
`webhook` backends (the webhook receiver on 127.0.0.1), in-process.

    .venv/bin/python bench/detect.py [--skip-typical] [--throughput-incidents 300]

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import sqlite3
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
THRESHOLD = 0.8
MAX_WAIT_SECONDS = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


class Receiver(BaseHTTPRequestHandler):
    """Counts webhook deliveries; `first` holds the arrival time of the first one."""

    first: float | None = None
    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        with Receiver.lock:
            Receiver.count += 1
            if Receiver.first is None:
                Receiver.first = time.time()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def _busy() -> None:
    while True:
        pass


class Load:
    def __init__(self) -> None:
        self.procs: list = []

    def start(self) -> float:
        t0 = time.time()
        n = os.cpu_count() or 1
        stress = shutil.which("stress-ng")
        if stress:
            self.procs.append(subprocess.Popen([stress, "--cpu", str(n), "--timeout", f"{MAX_WAIT_SECONDS}s"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        else:
            for _ in range(n):
                p = multiprocessing.Process(target=_busy, daemon=True)
                p.start()
                self.procs.append(p)
        return t0

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            (p.wait if hasattr(p, "wait") else p.join)(10)
        self.procs = []


def wait_quiet(seconds: float = 5) -> None:
    time.sleep(seconds)  # let the previous run's load and processes settle


def hostwarden_chain(workdir: Path, interval: float, for_: str) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    rules = workdir / "rules.yaml"
    rules.write_text("groups:\n  - name: detect\n    rules:\n      - alert: BenchCpuBusy\n"
                     "        expr: hostwarden_cpu_usage_ratio{cpu=\"all\"}\n"
                     f"        warning: \"> {THRESHOLD}\"\n        for: {for_}\n")
    port = free_port()
    cfg = workdir / "hostwarden.yaml"
    cfg.write_text(f"global:\n  interval: {interval:g}s\n  state_dir: {workdir / 'state'}\n"
                   f"web:\n  listen_address: 127.0.0.1:{port}\nrule_files: [{rules}]\n")
    hw = Path(sys.executable).parent / "hostwarden"
    cmd = [str(hw)] if hw.exists() else [sys.executable, "-m", "hostwarden.agent.cli"]
    proc = subprocess.Popen([*cmd, "run", "--config", str(cfg), "--log.level", "warn"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load = Load()
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready")
        time.sleep(interval * 2 + 1)  # a first cpu ratio exists, the rule has evaluated idle
        db = workdir / "state" / "tickets.db"
        t0 = load.start()
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        while time.monotonic() < deadline:
            if db.exists():
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
                        row = c.execute("SELECT opened_at FROM tickets ORDER BY id LIMIT 1").fetchone()
                except sqlite3.Error:
                    row = None
                if row:
                    return time.time() - t0
            time.sleep(0.05)
        raise RuntimeError("hostwarden opened no ticket in time")
    finally:
        load.stop()
        proc.terminate()
        proc.wait(30)


def prometheus_chain(workdir: Path, *, interval: str, rate_window: str, fn: str, for_: str,
                     group_wait: str) -> float:
    ne = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    prom = shutil.which("prometheus")
    am = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not (ne and prom and am):
        raise RuntimeError("needs Debian's prometheus, prometheus-alertmanager and prometheus-node-exporter")
    workdir.mkdir(parents=True, exist_ok=True)
    Receiver.first, Receiver.count = None, 0
    recv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    recv.daemon_threads = True
    threading.Thread(target=recv.serve_forever, daemon=True).start()
    ne_port, prom_port, am_port, am_cluster = free_port(), free_port(), free_port(), free_port()
    (workdir / "am.yml").write_text(
        f"route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: {group_wait}\n  group_interval: 1m\n"
        f"receivers:\n  - name: hook\n    webhook_configs:\n"
        f"      - url: http://127.0.0.1:{recv.server_address[1]}/\n")
    (workdir / "rules.yml").write_text(
        "groups:\n  - name: detect\n    rules:\n      - alert: BenchCpuBusy\n"
        f"        expr: 1 - avg({fn}(node_cpu_seconds_total{{mode=\"idle\"}}[{rate_window}])) > {THRESHOLD}\n"
        f"        for: {for_}\n")
    (workdir / "prom.yml").write_text(
        f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
        f"rule_files: [{workdir / 'rules.yml'}]\n"
        f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n"
        f"scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\n")
    procs = [
        subprocess.Popen([ne, f"--web.listen-address=127.0.0.1:{ne_port}"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL),
        subprocess.Popen([am, f"--config.file={workdir / 'am.yml'}", f"--storage.path={workdir / 'am'}",
                          f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
                          f"--cluster.advertise-address=127.0.0.1:{am_cluster}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([prom, f"--config.file={workdir / 'prom.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{prom_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    load = Load()
    try:
        wait_http(f"http://127.0.0.1:{am_port}/-/ready")
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready")
        # enough history for the rate window, and one idle evaluation
        secs = {"s": 1, "m": 60}
        warm = int(rate_window[:-1]) * secs[rate_window[-1]] + 2 * int(interval[:-1]) * secs[interval[-1]]
        time.sleep(warm)
        t0 = load.start()
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        while time.monotonic() < deadline:
            if Receiver.first is not None:
                return Receiver.first - t0
            time.sleep(0.05)
        raise RuntimeError("the Prometheus chain delivered nothing in time")
    finally:
        load.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        recv.shutdown()


def outbox_throughput(n: int, backend_yaml: str, workdir: Path) -> float:
    """Operations per second: n incidents opened (find + open each) through IncidentManager + OutboxWorker."""
    from hostwarden.agent.core.alert import Alert, AlertState
    from hostwarden.agent.core.samples import labels_of
    from hostwarden.agent.core.schema import Errors
    from hostwarden.agent.core.yamlsrc import load_yaml
    from hostwarden.agent.incidents.manager import IncidentManager
    from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
    from hostwarden.agent.incidents.state import StateDB
    from hostwarden.exporters.tickets.config import parse_tickets
    from hostwarden.rules.alerts import AlertTransition, TransitionKind

    errors = Errors()
    node = load_yaml(backend_yaml, str(workdir / "t.yaml"))
    cfg = parse_tickets(node, errors, node.loc, str(workdir))
    errors.raise_if_any()
    state = StateDB(str(workdir / "state.db"))
    backends = build_backends(cfg, state_dir=str(workdir))
    mgr = IncidentManager(cfg, state=state, hostname="bench", external_labels={"host": "bench"})
    worker = OutboxWorker(state, backends)
    now = time.time()
    transitions = []
    for i in range(n):
        labels = labels_of(alertname="BenchDisk", device=f"d{i}", host="bench", severity="warning")
        alert = Alert(rule="BenchDisk", group="g", labels=labels, identity=labels_of(device=f"d{i}", host="bench"),
                      state=AlertState.FIRING, severity="warning", value=0.97, active_since=now, fired_at=now,
                      category="capacity")
        transitions.append(AlertTransition(alert, TransitionKind.FIRING, now))
    t0 = time.perf_counter()
    mgr.handle(transitions, now)
    ops = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = worker.run_once(time.monotonic())
        ops += done
        if not done:
            pending = state.query("SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'")[0]["n"]
            if not pending:
                break
            time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    state.close()
    return ops / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-typical", action="store_true", help="only the tightest settings (saves ~4 minutes)")
    ap.add_argument("--throughput-incidents", type=int, default=300)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hw-detect-") as d:
        base = Path(d)
        settings = [("tightest", 1.0, "0s", dict(interval="1s", rate_window="5s", fn="irate", for_="0s",
                                                   group_wait="0s"))]
        if not args.skip_typical:
            settings.insert(0, ("typical", 15.0, "1m", dict(interval="15s", rate_window="1m", fn="rate",
                                                            for_="1m", group_wait="30s")))
        for i, (name, hw_interval, hw_for, prom_settings) in enumerate(settings):
            wait_quiet()
            hw_s = hostwarden_chain(base / f"hw{i}", hw_interval, hw_for)
            print(f"  {name}: hostwarden {hw_s:.1f}s", file=sys.stderr)
            wait_quiet()
            prom_s = prometheus_chain(base / f"prom{i}", **prom_settings)
            print(f"  {name}: prometheus chain {prom_s:.1f}s", file=sys.stderr)
            rows.append((name, hw_s, prom_s))
        Receiver.first, Receiver.count = None, 0
        recv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        recv.daemon_threads = True
        threading.Thread(target=recv.serve_forever, daemon=True).start()
        n = args.throughput_incidents
        (base / "tl").mkdir()
        (base / "tw").mkdir()
        local_ops = outbox_throughput(n, "storm_threshold: 1000000\nbackends:\n  - {name: ops, type: local, "
                                         "rate_limit: 100000, burst: 100000}\n", base / "tl")
        url = f"http://127.0.0.1:{recv.server_address[1]}/"
        hook = (f"storm_threshold: 1000000\nbackends:\n  - {{name: hook, type: webhook, url: '{url}', "
                f"rate_limit: 100000, burst: 100000}}\n")
        webhook_ops = outbox_throughput(n, hook, base / "tw")
        recv.shutdown()
    print(f"{'settings':10} {'hostwarden s':>13} {'node_exporter+Prometheus+Alertmanager s':>40} {'ratio':>6}")
    for name, hw_s, prom_s in rows:
        print(f"{name:10} {hw_s:13.1f} {prom_s:40.1f} {hw_s / prom_s:6.2f}")
    print(f"outbox throughput ({n} incidents, find+open each): local {local_ops:.0f} ops/s, "
          f"webhook {webhook_ops:.0f} ops/s")
    print(json.dumps({"detect": rows, "outbox_ops_per_s": {"local": local_ops, "webhook": webhook_ops}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
