from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.collectors.cpu import CpuCollector, CpuConfig

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "proc" / "basic"


def values(samples: list[Sample], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {s.labels: s.value for s in samples if s.name == name}


def lab(cpu: str, mode: str | None = None) -> tuple[tuple[str, str], ...]:
    return (("cpu", cpu), ("mode", mode)) if mode else (("cpu", cpu),)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    shutil.copytree(FIXTURE, root)
    return root


def write_stat(root: Path, cpu0: list[int], cpu1: list[int]) -> None:
    total = [a + b for a, b in zip(cpu0, cpu1, strict=True)]
    lines = ["cpu  " + " ".join(map(str, total)), "cpu0 " + " ".join(map(str, cpu0)),
             "cpu1 " + " ".join(map(str, cpu1)), "intr 1 0", "ctxt 5", "btime 1795514684", "processes 3"]
    (root / "stat").write_text("\n".join(lines) + "\n")


def test_cpu_fixture_seconds_per_cpu_and_mode_exact() -> None:
    out = list(CpuCollector(CpuConfig(), proc_root=str(FIXTURE), clock_ticks=100).collect(1000.0))
    secs = values(out, "node_cpu_seconds_total")
    assert len(secs) == 16
    assert secs[lab("0", "user")] == pytest.approx(14.81)
    assert secs[lab("0", "nice")] == pytest.approx(0.02)
    assert secs[lab("0", "system")] == pytest.approx(12.19)
    assert secs[lab("0", "idle")] == pytest.approx(2249.31)
    assert secs[lab("0", "iowait")] == pytest.approx(0.12)
    assert secs[lab("0", "irq")] == pytest.approx(0.03)
    assert secs[lab("0", "softirq")] == pytest.approx(0.75)
    assert secs[lab("0", "steal")] == pytest.approx(0.78)
    assert secs[lab("1", "idle")] == pytest.approx(2193.41)
    guest = values(out, "node_cpu_guest_seconds_total")
    assert guest == {lab("0", "user"): pytest.approx(0.20), lab("0", "nice"): pytest.approx(0.03),
                     lab("1", "user"): 0.0, lab("1", "nice"): 0.0}
    assert all(s.timestamp == 1000.0 for s in out)


def test_cpu_fixture_per_cpu_sums_match_machine_total_line() -> None:
    out = list(CpuCollector(proc_root=str(FIXTURE), clock_ticks=100).collect(1.0))
    secs = values(out, "node_cpu_seconds_total")
    total_line = (FIXTURE / "stat").read_text().splitlines()[0].split()[1:9]
    for mode, ticks in zip(("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"), total_line,
                           strict=True):
        assert secs[lab("0", mode)] + secs[lab("1", mode)] == pytest.approx(int(ticks) / 100)


def test_cpu_first_collect_has_no_usage_ratio() -> None:
    out = list(CpuCollector(proc_root=str(FIXTURE), clock_ticks=100).collect(1.0))
    assert values(out, "hostwarden_cpu_usage_ratio") == {}


def test_cpu_second_collect_usage_ratio_per_cpu_and_all(proc: Path) -> None:
    col = CpuCollector(proc_root=str(proc), clock_ticks=100)
    write_stat(proc, [100, 0, 100, 1000, 10, 0, 0, 0, 0, 0], [200, 0, 0, 1000, 0, 0, 0, 0, 0, 0])
    col.collect(1.0)
    # cpu0: +30 user +10 system +50 idle +10 iowait -> busy 40 of 100; cpu1: +100 user -> busy 100 of 100
    write_stat(proc, [130, 0, 110, 1050, 20, 0, 0, 0, 0, 0], [300, 0, 0, 1000, 0, 0, 0, 0, 0, 0])
    ratios = values(list(col.collect(11.0)), "hostwarden_cpu_usage_ratio")
    assert ratios == {lab("0"): pytest.approx(0.4), lab("1"): pytest.approx(1.0), lab("all"): pytest.approx(0.7)}


def test_cpu_steal_counts_as_busy_guest_not_double_counted(proc: Path) -> None:
    col = CpuCollector(proc_root=str(proc), clock_ticks=100)
    write_stat(proc, [0] * 10, [0] * 10)
    col.collect(1.0)
    # +50 user of which 50 guest, +25 steal, +25 idle: busy 75 of 100 (guest is inside user already)
    write_stat(proc, [50, 0, 0, 25, 0, 0, 0, 25, 50, 0], [0] * 10)
    ratios = values(list(col.collect(2.0)), "hostwarden_cpu_usage_ratio")
    assert ratios[lab("0")] == pytest.approx(0.75)
    assert lab("1") not in ratios  # no ticks elapsed on cpu1: no ratio rather than 0/0


def test_cpu_small_backwards_jump_keeps_previous_value(proc: Path) -> None:
    col = CpuCollector(proc_root=str(proc), clock_ticks=100)
    write_stat(proc, [100, 0, 100, 1000, 50, 0, 0, 0, 0, 0], [0] * 10)
    col.collect(1.0)
    write_stat(proc, [110, 0, 100, 1010, 49, 0, 0, 0, 0, 0], [0] * 10)  # iowait went back one tick
    secs = values(list(col.collect(2.0)), "node_cpu_seconds_total")
    assert secs[lab("0", "iowait")] == pytest.approx(0.50)
    assert secs[lab("0", "user")] == pytest.approx(1.10)


def test_cpu_idle_back_by_3s_or_more_resets_counters(proc: Path) -> None:
    col = CpuCollector(proc_root=str(proc), clock_ticks=100)
    write_stat(proc, [100, 0, 100, 1000, 50, 0, 0, 0, 0, 0], [0] * 10)
    col.collect(1.0)
    write_stat(proc, [5, 0, 5, 10, 1, 0, 0, 0, 0, 0], [0] * 10)  # hot-plugged: counters start over
    secs = values(list(col.collect(2.0)), "node_cpu_seconds_total")
    assert secs[lab("0", "idle")] == pytest.approx(0.10)
    assert secs[lab("0", "iowait")] == pytest.approx(0.01)


def test_cpu_old_kernel_short_lines_fill_zeros(proc: Path) -> None:
    (proc / "stat").write_text("cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 0\nbtime 1\n")
    out = list(CpuCollector(proc_root=str(proc), clock_ticks=100).collect(1.0))
    secs = values(out, "node_cpu_seconds_total")
    assert secs[lab("0", "idle")] == pytest.approx(0.04)
    assert secs[lab("0", "steal")] == 0.0
    assert values(out, "node_cpu_guest_seconds_total")[lab("0", "user")] == 0.0


def test_cpu_guest_disabled_emits_no_guest_series() -> None:
    out = list(CpuCollector(CpuConfig(guest=False), proc_root=str(FIXTURE), clock_ticks=100).collect(1.0))
    assert values(out, "node_cpu_guest_seconds_total") == {}
    assert len(values(out, "node_cpu_seconds_total")) == 16


def test_cpu_real_proc_counters_monotonic_and_ratio_bounded() -> None:
    col = CpuCollector()
    first = values(list(col.collect(1.0)), "node_cpu_seconds_total")
    stat_lines = Path("/proc/stat").read_text().splitlines()
    online = sum(1 for line in stat_lines if line.startswith("cpu") and line[3].isdigit())
    assert len(first) == 8 * online
    assert max(first.values()) > 0
    ratios: dict = {}
    for _ in range(100):  # until the kernel has counted at least one tick (10 ms at USER_HZ 100)
        time.sleep(0.02)
        out = list(col.collect(2.0))
        second = values(out, "node_cpu_seconds_total")
        assert second.keys() == first.keys()
        assert all(second[k] >= first[k] for k in first)
        first = second
        ratios = values(out, "hostwarden_cpu_usage_ratio")
        if lab("all") in ratios:
            break
    assert lab("all") in ratios
    assert all(0.0 <= v <= 1.0 for v in ratios.values())
    assert set(ratios) <= {lab(str(i)) for i in range(os.cpu_count() or 1)} | {lab("all")}
