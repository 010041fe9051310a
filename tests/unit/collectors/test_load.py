from __future__ import annotations

import os
from pathlib import Path

import pytest
from hostwarden.collectors.load import LoadCollector, LoadConfig

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "proc" / "basic"


def test_load_fixture_values_and_per_cpu() -> None:
    col = LoadCollector(LoadConfig(), proc_root=str(FIXTURE), cpu_count=lambda: 4)
    out = {s.name: s.value for s in col.collect(3.0)}
    assert out == {"node_load1": 1.25, "node_load5": 0.75, "node_load15": 0.5, "hostwarden_load1_per_cpu": 0.3125}


def test_load_unknown_cpu_count_omits_per_cpu() -> None:
    out = {s.name for s in LoadCollector(proc_root=str(FIXTURE), cpu_count=lambda: None).collect(3.0)}
    assert out == {"node_load1", "node_load5", "node_load15"}


def test_load_real_proc_matches_getloadavg() -> None:
    before = os.getloadavg()
    out = {s.name: s.value for s in LoadCollector().collect(3.0)}
    after = os.getloadavg()
    for i, name in enumerate(("node_load1", "node_load5", "node_load15")):
        # /proc/loadavg has two decimals; the kernel updates it every 5 s, so it may move between reads
        assert min(before[i], after[i]) - 0.01 <= out[name] <= max(before[i], after[i]) + 0.01
    assert out["hostwarden_load1_per_cpu"] == pytest.approx(out["node_load1"] / (os.cpu_count() or 1))
