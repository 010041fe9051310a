"""Kernel activity counters from /proc/stat, as node_exporter's `stat` collector.

`node_context_switches_total` (ctxt), `node_forks_total` (processes), `node_intr_total` (the first
number of the intr line: all interrupts), `node_procs_running`, `node_procs_blocked`. /proc/stat is
read once per cycle and shared with the `cpu` and `uptime` collectors; node_exporter's
`node_boot_time_seconds`, which this collector also produces there, comes from `uptime` here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_once

FIELDS = {
    "ctxt": "node_context_switches_total",
    "processes": "node_forks_total",
    "intr": "node_intr_total",
    "procs_running": "node_procs_running",
    "procs_blocked": "node_procs_blocked",
}


@dataclass(frozen=True)
class StatConfig(CollectorConfig):
    pass


@register("stat")
class StatCollector:
    Config = StatConfig
    metrics = metric_defs(
        MetricDef("node_context_switches_total", "counter", "Total number of context switches."),
        MetricDef("node_forks_total", "counter", "Total number of forks."),
        MetricDef("node_intr_total", "counter", "Total number of interrupts serviced."),
        MetricDef("node_procs_running", "gauge", "Number of processes in runnable state."),
        MetricDef("node_procs_blocked", "gauge", "Number of processes blocked waiting for I/O to complete."),
    )

    def __init__(self, config: StatConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or StatConfig()
        self._path = os.path.join(proc_root, "stat")

    def collect(self, now: float) -> Iterable[Sample]:
        try:
            text = read_once(self._path, now)
        except FileNotFoundError:
            return []
        out = []
        for key, name in FIELDS.items():
            at = text.find("\n" + key + " ")
            if at < 0:
                continue
            start = at + len(key) + 2
            end = text.find(" " if key == "intr" else "\n", start)
            out.append(Sample(name, (), float(int(text[start:end if end > 0 else None])), now))
        return out
