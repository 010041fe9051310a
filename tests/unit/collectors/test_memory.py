from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.collectors.memory import MemoryCollector, MemoryConfig, metric_name

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "proc" / "basic"


def values(samples: list[Sample]) -> dict[str, float]:
    out = {s.name: s.value for s in samples}
    assert len(out) == len(samples), "one series per name"
    return out


def test_memory_metric_name_follows_node_exporter() -> None:
    assert metric_name("MemTotal", True) == "node_memory_MemTotal_bytes"
    assert metric_name("Active(anon)", True) == "node_memory_Active_anon_bytes"
    assert metric_name("HugePages_Total", False) == "node_memory_HugePages_Total"


def test_memory_fixture_bytes_and_ratios_exact() -> None:
    col = MemoryCollector(MemoryConfig(), proc_root=str(FIXTURE))
    out = list(col.collect(5.0))
    v = values(out)
    assert v["node_memory_MemTotal_bytes"] == 24683656 * 1024
    assert v["node_memory_MemAvailable_bytes"] == 6170914 * 1024
    assert v["node_memory_MemFree_bytes"] == 24376844 * 1024
    assert v["node_memory_Buffers_bytes"] == 3952 * 1024
    assert v["node_memory_Cached_bytes"] == 147688 * 1024
    assert v["node_memory_SwapTotal_bytes"] == 2097148 * 1024
    assert v["node_memory_SwapFree_bytes"] == 1572861 * 1024
    assert v["node_memory_Active_anon_bytes"] == 1572 * 1024
    assert v["node_memory_Inactive_file_bytes"] == 79960 * 1024
    assert v["node_memory_HugePages_Total"] == 4
    assert v["node_memory_Hugepagesize_bytes"] == 2048 * 1024
    assert v["hostwarden_memory_used_ratio"] == pytest.approx(0.75)
    assert v["hostwarden_swap_used_ratio"] == pytest.approx(0.25, abs=1e-6)
    lines = (FIXTURE / "meminfo").read_text().splitlines()
    assert len(out) == len(lines) + 2
    assert all(s.labels == () and s.timestamp == 5.0 for s in out)


def test_memory_every_series_has_a_gauge_definition() -> None:
    col = MemoryCollector(proc_root=str(FIXTURE))
    out = list(col.collect(1.0))
    for s in out:
        assert col.metrics[s.name].type == "gauge"
    assert col.metrics["node_memory_Active_anon_bytes"].help == "Memory information field Active_anon_bytes."


def test_memory_no_swap_ratio_zero_and_old_kernel_available_fallback(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text(
        "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
    v = values(list(MemoryCollector(proc_root=str(tmp_path)).collect(1.0)))
    assert v["hostwarden_swap_used_ratio"] == 0.0
    assert v["hostwarden_memory_used_ratio"] == pytest.approx(0.6)  # 1 - (100+50+250)/1000
    assert "node_memory_MemAvailable_bytes" not in v


def test_memory_real_proc_matches_meminfo_and_psutil() -> None:
    text = Path("/proc/meminfo").read_text()
    total_kb = int(next(line for line in text.splitlines() if line.startswith("MemTotal:")).split()[1])
    col = MemoryCollector()
    v = values(list(col.collect(1.0)))
    assert v["node_memory_MemTotal_bytes"] == total_kb * 1024
    assert v["node_memory_MemTotal_bytes"] == psutil.virtual_memory().total
    assert sum(1 for n in v if n.startswith("node_memory_")) == len(text.splitlines())
    assert 0.0 <= v["hostwarden_memory_used_ratio"] <= 1.0
    assert 0.0 <= v["hostwarden_swap_used_ratio"] <= 1.0
