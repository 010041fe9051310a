"""/proc/schedstat as node_exporter 1.5's `schedstat` collector: per-cpu run time, run-queue wait
time and timeslices (fields 7-9 of each `cpuN` line, nanoseconds since 2.6.23). Absent → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import read_text_or_none


@dataclass(frozen=True)
class SchedstatConfig(CollectorConfig):
    pass


@register("schedstat")
class SchedstatCollector:
    Config = SchedstatConfig
    metrics = metric_defs(
        MetricDef("node_schedstat_running_seconds_total", "counter",
                  "Number of seconds CPU spent running a process.", ("cpu",)),
        MetricDef("node_schedstat_waiting_seconds_total", "counter",
                  "Number of seconds spent by processing waiting for this CPU.", ("cpu",)),
        MetricDef("node_schedstat_timeslices_total", "counter", "Number of timeslices executed by CPU.", ("cpu",)),
    )

    def __init__(self, config: SchedstatConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or SchedstatConfig()
        self._path = os.path.join(proc_root, "schedstat")

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_text_or_none(self._path)
        out: list[Sample] = []
        if text is None:
            return out
        for line in text.splitlines():
            if not line.startswith("cpu"):
                continue
            parts = line.split()
            if len(parts) < 10 or not parts[0][3:].isdigit():
                continue
            labels = (("cpu", parts[0][3:]),)
            out.append(Sample("node_schedstat_running_seconds_total", labels, int(parts[7]) / 1e9, now))
            out.append(Sample("node_schedstat_waiting_seconds_total", labels, int(parts[8]) / 1e9, now))
            out.append(Sample("node_schedstat_timeslices_total", labels, float(parts[9]), now))
        return out
