"""The diagnosis attached to a new ticket: real store, real processes, real directories, bounded."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostwarden.agent.core.samples import labels_of
from hostwarden.agent.core.store import SeriesStore
from hostwarden.agent.incidents.diagnosis import Diagnoser, scan_largest
from hostwarden.collectors.checks import CheckResult

from tests.support.incidents import alert

NOW = 1_700_000_000.0


def test_diagnosis_summary_and_last_ten_minutes_of_the_series() -> None:
    store = SeriesStore()
    lab = labels_of(mountpoint="/data", device="sdb1")
    store.load_series("node_filesystem_avail_bytes", lab, [(NOW - 1200 + 10 * i, float(i)) for i in range(121)])
    store.load_series("node_filesystem_avail_bytes", labels_of(mountpoint="/other", device="sdc1"), [(NOW, 1.0)])
    a = dataclasses.replace(alert("DiskFull", at=NOW - 120, mountpoint="/data", device="sdb1"),
                            expr="node_filesystem_avail_bytes < 1e9", threshold="< 1e9", value=42.0,
                            annotations=(("summary", "disk /data almost full"), ("runbook_url", "https://rb/disk")))
    text = Diagnoser(store, time_budget=0.2)(a, NOW)
    assert "What:     DiskFull (warning)" in text and "Summary:  disk /data almost full" in text
    assert "Where:    testhost  device=sdb1 mountpoint=/data" in text
    assert "Value:    42  (threshold < 1e9)" in text
    series = text.split("Last 10 minutes")[1]
    assert 'node_filesystem_avail_bytes{device="sdb1",mountpoint="/data"}' in series
    assert "sdc1" not in series  # a series whose labels contradict the alert's is not shown
    assert series.count(" UTC  ") == 20  # downsampled to 20 of the 60 points in the window
    assert "2023-11-14 22:13:20 UTC  120" in series  # the newest point is kept
    assert "https://rb/disk" in text


def test_diagnosis_cpu_rule_lists_top_processes_with_the_busy_one() -> None:
    # a multi-line command line on purpose: each process stays one row of the table
    code = "import time\nend = time.time() + 20\nwhile time.time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)
        a = alert("HighCPU", at=NOW)
        text = Diagnoser(SeriesStore(), time_budget=2.0, process_sample_seconds=0.5)(a, NOW)
    finally:
        busy.kill()
        busy.wait(10)
    procs = text.split("Top processes")[1]
    by_cpu = procs.split("By memory:")[0]
    rows = [line for line in by_cpu.splitlines() if line.split() and line.split()[0].isdigit()]
    assert 1 <= len(rows) <= 5
    assert any(line.split()[0] == str(busy.pid) for line in rows), by_cpu
    assert "PID" in procs and "RSS" in procs and "By memory:" in procs


def test_diagnosis_filesystem_largest_directories_and_files(tmp_path: Path) -> None:
    (tmp_path / "big" / "deeper").mkdir(parents=True)
    (tmp_path / "small").mkdir()
    (tmp_path / "big" / "deeper" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (tmp_path / "small" / "note.txt").write_bytes(b"x" * 10)
    out = scan_largest(str(tmp_path), deadline=time.monotonic() + 5)
    dirs = out.split("Files:")[0]
    assert dirs.splitlines()[1].endswith(str(tmp_path / "big"))
    assert str(tmp_path / "big" / "deeper") in dirs
    assert "MiB" in dirs and f"{tmp_path / 'big' / 'deeper' / 'blob.bin'}" in out.split("Files:")[1]
    assert "complete scan" in out


def test_diagnosis_filesystem_scan_stops_at_deadline_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    out = scan_largest(str(tmp_path), deadline=time.monotonic() - 1)
    assert "partial: the scan stopped at its time budget" in out


def test_diagnosis_check_alert_shows_last_output_and_details() -> None:
    result = CheckResult(ok=False, status=2, message="HTTP 503 from /health", details="body: upstream down")
    a = alert("CheckDown", at=NOW, check="web")
    text = Diagnoser(SeriesStore(), check_results=lambda: {"web": result}, time_budget=0.5)(a, NOW)
    section = text.split("Check web")[1]
    assert "Status:  CRITICAL (failing)" in section and "Output:  HTTP 503 from /health" in section
    assert "body: upstream down" in section


@pytest.mark.skipif(shutil.which("journalctl") is None, reason="journalctl (Debian package 'systemd') not installed")
def test_diagnosis_systemd_unit_alert_runs_journalctl() -> None:
    a = alert("UnitFailed", at=NOW, name="hostwarden-test-nonexistent.service", state="failed")
    text = Diagnoser(SeriesStore(), time_budget=3.0)(a, NOW)
    section = text.split("Journal of hostwarden-test-nonexistent.service")[1]
    assert section.strip()  # journalctl's own words: entries, "-- No entries --", or why it could not read


def test_diagnosis_bounded_in_size_and_time() -> None:
    huge = dataclasses.replace(alert("HighCPU", at=NOW), annotations=(("description", "y" * 100_000),))
    text = Diagnoser(SeriesStore(), time_budget=0.0, max_bytes=4096)(huge, NOW)
    assert len(text.encode()) <= 4096 and "(truncated:" in text
    skipped = Diagnoser(SeriesStore(), time_budget=0.0)(alert("HighCPU", at=NOW), NOW)
    assert "time budget of 0s used up before: Last 10 minutes, Top processes" in skipped
