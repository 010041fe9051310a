"""Collector and check faults in a real `hostwarden run`: the scrape and the other checks go on.

One agent runs for RUN_SECONDS with, at once:
- `hang-plugin`: a Nagios plugin that sleeps forever (killed with its process group at the timeout);
- `hang-fifo`: a logmatch check whose log path is a FIFO nobody writes: open() blocks its thread forever
  (the runner abandons it and never starts it again while it is stuck);
- `spew`: a plugin writing 50 MiB to stdout and 5 MiB to stderr per run;
- `noexec`: a plugin file without the execute bit;
- `good` (a plugin counting its runs in a file) and `tcp-ok` (a TCP check against a local listener);
- a textfile with 1,000 series rewritten in place (truncate + chunked writes, no rename) all the time.
/metrics is scraped every 0.2 s throughout. The blocking-statvfs case runs in-process (the filesystem
collector takes an injectable statvfs; a real process cannot be given a hanging mount here).
"""

from __future__ import annotations

import itertools
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from hostwarden.collectors.filesystem import FilesystemCollector, FilesystemConfig

from tests.reliability.agentprobe import Scrape, Scraper, named, parse_exposition, percentile, record, value
from tests.support.agent import AgentProcess, start_agent, write_config

pytestmark = pytest.mark.integration

RUN_SECONDS = 15.0
TF_SERIES = 1000
SPEW_STDOUT = 50 << 20
SPEW_STDERR = 5 << 20


def _script(path: Path, body: str, executable: bool = True) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _textfile(value: int) -> bytes:
    lines = ["# HELP tf_series Rewritten in place by the reliability test.", "# TYPE tf_series gauge"]
    lines += [f'tf_series{{i="{i}"}} {value}' for i in range(TF_SERIES)]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Run:
    agent: AgentProcess
    scrapes: list[Scrape]
    good_runs: int
    rewrites: int
    final: dict[Any, float]
    rss_start: int
    rss_peak: int
    leftover_plugins: list[int]
    good_max_gap: float = 0.0
    exit_code: int = -1
    log: str = ""
    textfile_states: dict[str, int] = field(default_factory=dict)


def _rewriter(path: Path, stop: threading.Event, counter: list[int]) -> None:
    """Rewrite the file in place (no temp file + rename) in 1 KiB chunks, alternating its values."""
    n = 0
    while not stop.is_set() and n < 100_000:
        data = _textfile(1 + n % 2)
        with open(path, "wb") as f:
            for i in range(0, len(data), 1024):
                f.write(data[i:i + 1024])
                f.flush()
                time.sleep(0.002)
        n += 1
        counter[0] = n
        stop.wait(0.01 * (n % 5))


def _classify(scrape: Scrape) -> str:
    vals = named(scrape.series, "tf_series")
    if not vals:
        return "absent"
    if len(vals) == TF_SERIES and len(set(vals.values())) == 1:
        return "complete"
    return "partial"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    d = tmp_path_factory.mktemp("faults")
    tf = d / "textfile"
    tf.mkdir()
    tf_file = tf / "rewritten.prom"
    tf_file.write_bytes(_textfile(1))
    counter = d / "good-runs"
    good = _script(d / "good", f"import time\nopen({str(counter)!r}, 'a').write(f'{{time.time()}}\\n')\n"
                               "print('OK - fine | v=1')\n")
    hang = _script(d / "hang", "import time\nprint('starting', flush=True)\ntime.sleep(100000)\n")
    spew = _script(d / "spew", "import sys\nprint('OK - spewing')\n"
                               f"sys.stderr.buffer.write(b'e' * {SPEW_STDERR})\n"
                               f"line = b'y' * 1023 + b'\\n'\nfor _ in range({SPEW_STDOUT // 1024}): "
                               "sys.stdout.buffer.write(line)\n")
    noexec = _script(d / "noexec", "print('OK')\n", executable=False)
    fifo = d / "log.fifo"
    os.mkfifo(fifo)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    body = (f"collectors:\n  textfile: {{directory: {tf}}}\n"
            "checks:\n"
            f"  - {{name: good, type: nagios, command: [{good}], interval: 1s, timeout: 1s}}\n"
            f"  - {{name: hang-plugin, type: nagios, command: [{hang}], interval: 2s, timeout: 1s}}\n"
            f"  - {{name: hang-fifo, type: logmatch, path: {fifo}, patterns: {{x: x}}, interval: 2s, timeout: 1s}}\n"
            f"  - {{name: spew, type: nagios, command: [{spew}], interval: 2s, timeout: 2s}}\n"
            f"  - {{name: noexec, type: nagios, command: [{noexec}], interval: 2s, timeout: 1s}}\n"
            f"  - {{name: tcp-ok, type: tcp, address: '127.0.0.1:{listener.getsockname()[1]}', interval: 1s,"
            " timeout: 1s}\n"
            "rule_files: []\n")
    agent = start_agent(write_config(d, body))
    proc = psutil.Process(agent.proc.pid)
    rss_start = proc.memory_info().rss
    stop = threading.Event()
    rewrites = [0]
    writer = threading.Thread(target=_rewriter, args=(tf_file, stop, rewrites), daemon=True)
    scraper = Scraper(agent.url + "/metrics", interval=0.2).start()
    writer.start()
    rss_peak = rss_start
    try:
        deadline = time.monotonic() + RUN_SECONDS
        while time.monotonic() < deadline:
            rss_peak = max(rss_peak, proc.memory_info().rss)
            time.sleep(0.5)
    finally:
        stop.set()
        writer.join(10)
    tf_file.write_bytes(_textfile(7))  # the last write is complete: it must be what the agent ends up showing
    time.sleep(2.5)
    scrapes = scraper.stop()
    final_series = parse_exposition(agent.scrape())
    # a run in flight right now is legitimately alive (at most timeout + grace = 1.25 s old)
    leftovers = [p.pid for p in psutil.process_iter(["cmdline", "status", "create_time"])
                 if str(hang) in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
                 and p.info["create_time"] < time.time() - 2.0]
    good_times = [float(x) for x in counter.read_text().split()] if counter.exists() else []
    result = Run(agent=agent, scrapes=scrapes, good_runs=len(good_times),
                 good_max_gap=max((b - a for a, b in itertools.pairwise(good_times)), default=0.0),
                 rewrites=rewrites[0], final=final_series, rss_start=rss_start, rss_peak=rss_peak,
                 leftover_plugins=leftovers)
    states: dict[str, int] = {}
    for s in scrapes:
        if s.status == 200:
            k = _classify(s)
            states[k] = states.get(k, 0) + 1
    result.textfile_states = states
    result.exit_code = agent.stop()
    result.log = agent.log_text()
    for p in psutil.process_iter(["cmdline"]):  # a hang-plugin run in flight at shutdown outlives the agent: F18
        if str(hang) in " ".join(p.info["cmdline"] or []):
            p.kill()
    listener.close()
    ok = [s for s in scrapes if s.status == 200]
    record("collector-faults", seconds=RUN_SECONDS, scrapes=len(scrapes), scrape_errors=len(scrapes) - len(ok),
           scrape_p99_ms=round(percentile([s.seconds for s in ok], 99) * 1000, 1), good_runs=result.good_runs,
           good_max_gap_s=round(result.good_max_gap, 2),
           textfile_rewrites=result.rewrites, textfile_states=states,
           rss_start_mib=round(rss_start / 2**20, 1), rss_peak_mib=round(rss_peak / 2**20, 1),
           hang_plugin_timeouts=value(final_series, "hostwarden_check_timeouts_total", check="hang-plugin"),
           hang_fifo_timeouts=value(final_series, "hostwarden_check_timeouts_total", check="hang-fifo"),
           spew_runs_seen=len({value(s.series, "hostwarden_check_last_run_timestamp_seconds", check="spew")
                               for s in ok} - {None}))
    yield result


def test_faults_every_scrape_answered_while_checks_hang_and_spew(run: Run) -> None:
    assert len(run.scrapes) >= RUN_SECONDS / 0.2 * 0.8
    assert [s.status for s in run.scrapes if s.status != 200] == []
    assert run.exit_code == 0, run.log[-2000:]


def test_faults_good_checks_keep_running(run: Run) -> None:
    # interval 1 s; hung checks next to them no longer delay them (F17, fixed: see the test below)
    assert run.good_runs >= RUN_SECONDS / 2.5
    assert run.good_max_gap < 1 + 1.25 + 1.5
    assert value(run.final, "hostwarden_check_up", check="good", type="nagios") == 1
    assert value(run.final, "hostwarden_check_up", check="tcp-ok", type="tcp") == 1
    stamps = sorted({value(s.series, "hostwarden_check_last_run_timestamp_seconds", check="tcp-ok")
                     for s in run.scrapes} - {None})
    assert len(stamps) >= RUN_SECONDS / 2.5
    assert max(b - a for a, b in itertools.pairwise(stamps)) < 1 + 1.25 + 1.5


def test_faults_good_check_holds_its_1s_interval_next_to_hung_checks(run: Run) -> None:  # F17 (fixed)
    assert run.good_runs >= RUN_SECONDS - 1
    assert run.good_max_gap < 1.6


def test_faults_hung_plugin_timed_out_and_process_group_killed(run: Run) -> None:
    assert value(run.final, "hostwarden_check_status", check="hang-plugin") == 3
    # the plugin runner enforces the timeout itself (kills the group, reports in time): never abandoned
    assert value(run.final, "hostwarden_check_timeouts_total", check="hang-plugin") == 0
    assert run.leftover_plugins == []
    assert "timed out after 1s (process group killed)" in run.log


def test_faults_check_stuck_in_open_abandoned_once_not_restarted(run: Run) -> None:
    assert value(run.final, "hostwarden_check_status", check="hang-fifo") == 3
    assert value(run.final, "hostwarden_check_timeouts_total", check="hang-fifo") == 1
    assert "check hang-fifo: UNKNOWN: timeout after 1s" in run.log


def test_faults_spewing_plugin_output_capped_memory_flat(run: Run) -> None:
    assert value(run.final, "hostwarden_check_up", check="spew", type="nagios") == 1
    runs_seen = {value(s.series, "hostwarden_check_last_run_timestamp_seconds", check="spew") for s in run.scrapes}
    assert len(runs_seen - {None}) >= 4  # it ran again and again, 55 MiB each time
    assert run.rss_peak - run.rss_start < 100 << 20


def test_faults_non_executable_plugin_unknown_with_reason(run: Run) -> None:
    assert value(run.final, "hostwarden_check_status", check="noexec") == 3
    assert "is not executable" in run.log


def test_faults_textfile_rewritten_in_place_never_sticks_collector_healthy(run: Run) -> None:
    assert run.rewrites >= 20
    assert value(run.final, "hostwarden_collector_success", collector="textfile") == 1
    tf = named(run.final, "tf_series")
    assert len(tf) == TF_SERIES and set(tf.values()) == {7.0}
    assert value(run.final, "node_textfile_scrape_error") == 0
    assert run.textfile_states.get("complete", 0) > 0


def test_faults_plugin_in_flight_killed_when_agent_stops(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    hang = _script(tmp_path / "hang", f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                                      "time.sleep(100000)\n")
    agent = start_agent(write_config(tmp_path, f"checks:\n  - {{name: h, type: nagios, command: [{hang}], "
                                               "interval: 10s, timeout: 9s}\nrule_files: []\n"))
    try:
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        assert agent.stop() == 0
    pid = int(pid_file.read_text())
    try:
        deadline = time.monotonic() + 3
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, 9)  # the plugin this test started: never leave it behind
    assert not alive, "the plugin outlived the agent"


# -- a statvfs that blocks, in-process ----------------------------------------------------------------------------
def test_faults_filesystem_statvfs_blocks_other_mounts_and_cycles_go_on(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "mountinfo").write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "23 22 0:40 / /mnt/nfs rw,relatime shared:2 - nfs4 server:/export rw\n"
        "24 22 8:2 / /srv rw,relatime shared:3 - xfs /dev/sdb1 rw\n")
    release = threading.Event()
    calls: list[str] = []

    def statvfs(path: str) -> os.statvfs_result:
        calls.append(path)
        if path == "/mnt/nfs":
            release.wait(60)  # a hard NFS mount whose server is gone
        return os.statvfs_result((4096, 4096, 1000, 500, 400, 100, 50, 50, 0, 255))

    collector = FilesystemCollector(FilesystemConfig(mount_timeout=0.5), proc_root=str(proc), statvfs=statvfs)
    durations, errors = [], []
    try:
        for cycle in range(6):
            start = time.monotonic()
            samples = list(collector.collect(1_700_000_000.0 + cycle))
            durations.append(time.monotonic() - start)
            by = {(s.name, dict(s.labels)["mountpoint"]): s.value for s in samples}
            errors.append(by[("hostwarden_filesystem_device_error", "/mnt/nfs")])
            assert by[("node_filesystem_avail_bytes", "/")] == 400 * 4096
            assert by[("node_filesystem_avail_bytes", "/srv")] == 400 * 4096
            assert ("node_filesystem_avail_bytes", "/mnt/nfs") not in by
        assert errors == [1.0] * 6
        assert calls.count("/mnt/nfs") == 1  # not called again while the first call is stuck
        assert collector.runner.threads <= 3
        assert max(durations[1:]) < 0.5  # later cycles do not wait for the stuck mount again
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while collector.runner.stuck() and time.monotonic() < deadline:
        time.sleep(0.05)
    samples = list(collector.collect(1_700_000_010.0))
    by = {(s.name, dict(s.labels)["mountpoint"]): s.value for s in samples}
    assert by[("hostwarden_filesystem_device_error", "/mnt/nfs")] == 0.0  # recovered once the call returned
    record("statvfs-blocks", cycles=6, stuck_calls=1, first_cycle_s=round(durations[0], 3),
           later_cycle_max_s=round(max(durations[1:]), 4))
