"""cpufreq from /sys/devices/system/cpu/cpuN/cpufreq as node_exporter 1.5's `cpufreq` collector:
current, minimum and maximum hardware and scaling frequencies in hertz (sysfs gives kHz). A cpu
without a cpufreq directory (most VMs) contributes nothing; a file missing (cpuinfo_cur_freq is
root-only) leaves out just that series.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import numbered, read_int

_FILES = (
    ("cpuinfo_cur_freq", "node_cpu_frequency_hertz", "Current cpu thread frequency in hertz."),
    ("cpuinfo_min_freq", "node_cpu_frequency_min_hertz", "Minimum cpu thread frequency in hertz."),
    ("cpuinfo_max_freq", "node_cpu_frequency_max_hertz", "Maximum cpu thread frequency in hertz."),
    ("scaling_cur_freq", "node_cpu_scaling_frequency_hertz", "Current scaled CPU thread frequency in hertz."),
    ("scaling_min_freq", "node_cpu_scaling_frequency_min_hertz", "Minimum scaled CPU thread frequency in hertz."),
    ("scaling_max_freq", "node_cpu_scaling_frequency_max_hertz", "Maximum scaled CPU thread frequency in hertz."),
)


@dataclass(frozen=True)
class CpufreqConfig(CollectorConfig):
    pass


@register("cpufreq")
class CpufreqCollector:
    Config = CpufreqConfig
    metrics = metric_defs(*(MetricDef(name, "gauge", text, ("cpu",)) for _, name, text in _FILES))

    def __init__(self, config: CpufreqConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or CpufreqConfig()
        self._dir = os.path.join(sys_root, "devices", "system", "cpu")

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for cpu, path in numbered(self._dir, "cpu"):
            freq_dir = os.path.join(path, "cpufreq")
            if not os.path.isdir(freq_dir):
                continue
            labels = (("cpu", cpu),)
            for fname, name, _ in _FILES:
                khz = read_int(os.path.join(freq_dir, fname))
                if khz is not None:
                    out.append(Sample(name, labels, khz * 1000.0, now))
        return out
