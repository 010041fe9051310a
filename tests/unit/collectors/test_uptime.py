from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from hostwarden.collectors.uptime import UptimeCollector, UptimeConfig

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "proc" / "basic"


def test_uptime_fixture_boot_time_and_collect_time() -> None:
    out = {s.name: s.value for s in UptimeCollector(UptimeConfig(), proc_root=str(FIXTURE)).collect(1795520000.5)}
    assert out == {"node_boot_time_seconds": 1795514684.0, "node_time_seconds": 1795520000.5}


def test_uptime_missing_btime_raises(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("cpu  1 2 3 4\nintr 0\n")
    with pytest.raises(ValueError, match="btime"):
        UptimeCollector(proc_root=str(tmp_path)).collect(1.0)


def test_uptime_real_proc_matches_psutil_and_uptime() -> None:
    now = time.time()
    out = {s.name: s.value for s in UptimeCollector().collect(now)}
    assert out["node_boot_time_seconds"] == psutil.boot_time()
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert out["node_boot_time_seconds"] == pytest.approx(now - uptime, abs=2.0)
    assert out["node_time_seconds"] == now
