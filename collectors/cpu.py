"""CPU time per cpu and mode from /proc/stat (node_exporter's `cpu` collector), plus the busy ratio.

`node_cpu_seconds_total{cpu,mode}` uses node_exporter's modes (user nice system idle iowait irq softirq
steal) and, like node_exporter, hides the kernel's small backwards jumps (iowait is known to go
backwards): a counter that decreases keeps its previous value, unless idle drops by 3 s or more,
which means the cpu was hot-plugged and its counters start over.

`hostwarden_cpu_usage_ratio{cpu}` is the busy fraction since the previous collect: one series per
cpu (`cpu="0"`, …) and the whole machine as `cpu="all"` (mpstat's name), so every series has the
same label set and a rule selects what it means (`{cpu="all"}` for the machine, `{cpu!="all"}` for
single cores). Busy is everything except idle and iowait (psutil's and htop's definition; iowait is
idle time with I/O outstanding; steal counts as busy). The first collect has no previous reading
and emits no ratio rather than a since-boot average that says nothing about now.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_once

log = logging.getLogger(__name__)

MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
GUEST_MODES = ("user", "nice")  # /proc/stat guest, guest_nice (already included in user, nice)
_IDLE, _IOWAIT = 3, 4
JUMP_BACK_SECONDS = 3.0  # node_exporter's threshold for "this cpu was reset"


@dataclass(frozen=True)
class CpuConfig(CollectorConfig):
    guest: bool = True  # also expose node_cpu_guest_seconds_total


@register("cpu")
class CpuCollector:
    Config = CpuConfig
    metrics = metric_defs(
        MetricDef("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.", ("cpu", "mode")),
        MetricDef("node_cpu_guest_seconds_total", "counter",
                  "Seconds the CPUs spent in guests (VMs) for each mode.", ("cpu", "mode")),
        MetricDef("hostwarden_cpu_usage_ratio", "gauge",
                  "Busy fraction (all modes but idle and iowait) since the previous collection; cpu=\"all\" is "
                  "the whole machine.", ("cpu",)),
    )

    def __init__(self, config: CpuConfig | None = None, *, proc_root: str = "/proc",
                 clock_ticks: int | None = None) -> None:
        self.config = config or CpuConfig()
        self._path = os.path.join(proc_root, "stat")
        self._hz = int(clock_ticks or os.sysconf("SC_CLK_TCK"))
        self._jump_back = JUMP_BACK_SECONDS * self._hz
        self._last: dict[str, list[int]] = {}  # cpu -> ticks per mode after backwards-jump protection
        self._labels: dict[str, tuple[Labels, ...]] = {}  # cpu -> labels per mode
        self._guest_labels: dict[str, tuple[Labels, ...]] = {}
        self._cpu_labels: dict[str, Labels] = {"all": (("cpu", "all"),)}

    def _read(self, now: float) -> list[tuple[str, list[int]]]:
        """(cpu, ticks for user … steal, guest, guest_nice) per cpu line (/proc/stat shared with `stat`)."""
        out = []
        for line in read_once(self._path, now).splitlines():
            if not line.startswith("cpu"):
                if out:
                    break  # the cpu lines are contiguous at the top of the file
                continue
            if line[3:4] == " ":
                continue  # the machine total; the per-cpu lines are summed instead
            parts = line.split()
            ticks = [int(x) for x in parts[1:11]]
            if len(ticks) < 10:  # older kernels have fewer columns
                ticks.extend([0] * (10 - len(ticks)))
            out.append((parts[0][3:], ticks))
        return out

    def _protect(self, cpu: str, new: list[int]) -> list[int]:
        old = self._last.get(cpu)
        if old is None:
            return new
        if old[_IDLE] - new[_IDLE] >= self._jump_back:
            log.info("cpu %s counters went back (idle %.1fs -> %.1fs): cpu reset, starting over",
                     cpu, old[_IDLE] / self._hz, new[_IDLE] / self._hz)
            return new
        return [n if n >= o else o for n, o in zip(new, old, strict=True)]

    def _mode_labels(self, cpu: str) -> tuple[tuple[Labels, ...], tuple[Labels, ...]]:
        lab = self._labels.get(cpu)
        if lab is None:
            lab = self._labels[cpu] = tuple((("cpu", cpu), ("mode", m)) for m in MODES)
            self._guest_labels[cpu] = tuple((("cpu", cpu), ("mode", m)) for m in GUEST_MODES)
            self._cpu_labels[cpu] = (("cpu", cpu),)
        return lab, self._guest_labels[cpu]

    def collect(self, now: float) -> Iterable[Sample]:
        hz = float(self._hz)
        guest = self.config.guest
        previous = self._last
        current: dict[str, list[int]] = {}
        out: list[Sample] = []
        ratios: list[Sample] = []
        sum_busy = sum_total = 0
        for cpu, raw in self._read(now):
            ticks = self._protect(cpu, raw)
            current[cpu] = ticks
            labels, guest_labels = self._mode_labels(cpu)
            for i in range(8):
                out.append(Sample("node_cpu_seconds_total", labels[i], ticks[i] / hz, now))
            if guest:
                out.append(Sample("node_cpu_guest_seconds_total", guest_labels[0], ticks[8] / hz, now))
                out.append(Sample("node_cpu_guest_seconds_total", guest_labels[1], ticks[9] / hz, now))
            old = previous.get(cpu)
            if old is not None:
                total = sum(ticks[:8]) - sum(old[:8])  # guest time is already in user and nice
                busy = total - (ticks[_IDLE] - old[_IDLE]) - (ticks[_IOWAIT] - old[_IOWAIT])
                if total > 0:
                    sum_busy += busy
                    sum_total += total
                    ratio = _clamp(busy / total)
                    ratios.append(Sample("hostwarden_cpu_usage_ratio", self._cpu_labels[cpu], ratio, now))
        self._last = current
        out.extend(ratios)
        if sum_total > 0:
            out.append(Sample("hostwarden_cpu_usage_ratio", self._cpu_labels["all"], _clamp(sum_busy / sum_total), now))
        return out


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
