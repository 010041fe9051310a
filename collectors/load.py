"""Load averages from /proc/loadavg (node_exporter's `loadavg` names) and load per cpu.

`hostwarden_load1_per_cpu` is node_load1 divided by the number of online cpus, so one threshold
("load per core above 2") fits every machine size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.procfs import read_text


@dataclass(frozen=True)
class LoadConfig(CollectorConfig):
    pass


@register("load")
class LoadCollector:
    Config = LoadConfig
    metrics = metric_defs(
        MetricDef("node_load1", "gauge", "1m load average."),
        MetricDef("node_load5", "gauge", "5m load average."),
        MetricDef("node_load15", "gauge", "15m load average."),
        MetricDef("hostwarden_load1_per_cpu", "gauge", "1m load average divided by the number of online cpus."),
    )

    def __init__(self, config: LoadConfig | None = None, *, proc_root: str = "/proc",
                 cpu_count: Callable[[], int | None] = os.cpu_count) -> None:
        self.config = config or LoadConfig()
        self._path = os.path.join(proc_root, "loadavg")
        self._cpu_count = cpu_count

    def collect(self, now: float) -> Iterable[Sample]:
        parts = read_text(self._path).split()
        load1, load5, load15 = float(parts[0]), float(parts[1]), float(parts[2])
        out = [Sample("node_load1", (), load1, now), Sample("node_load5", (), load5, now),
               Sample("node_load15", (), load15, now)]
        cpus = self._cpu_count()
        if cpus:
            out.append(Sample("hostwarden_load1_per_cpu", (), load1 / cpus, now))
        return out
