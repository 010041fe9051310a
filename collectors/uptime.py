"""Boot time from /proc/stat's btime and the collection time (node_exporter's `stat`/`time` names).

Uptime in PromQL is `node_time_seconds - node_boot_time_seconds`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_once


@dataclass(frozen=True)
class UptimeConfig(CollectorConfig):
    pass


@register("uptime")
class UptimeCollector:
    Config = UptimeConfig
    metrics = metric_defs(
        MetricDef("node_boot_time_seconds", "gauge", "Node boot time, in unixtime."),
        MetricDef("node_time_seconds", "gauge", "System time in seconds since epoch (1970)."),
    )

    def __init__(self, config: UptimeConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or UptimeConfig()
        self._path = os.path.join(proc_root, "stat")

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_once(self._path, now)  # shared with cpu and stat
        at = text.find("\nbtime ")
        if at < 0:
            raise ValueError(f"{self._path}: no btime line")
        end = text.find("\n", at + 1)
        btime = float(text[at + 7: end if end > 0 else None])
        return [Sample("node_boot_time_seconds", (), btime, now), Sample("node_time_seconds", (), now, now)]
