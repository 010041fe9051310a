"""Per-cpu packet processing from /proc/net/softnet_stat, as node_exporter 1.5's `softnet` collector.

Columns (hexadecimal) 1, 2 and 3 of each line: packets processed, dropped (backlog full) and times
net_rx_action ran out of budget; the cpu label is the line's index, as node_exporter 1.5 numbers it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional

COLUMNS = ("node_softnet_processed_total", "node_softnet_dropped_total", "node_softnet_times_squeezed_total")


@dataclass(frozen=True)
class SoftnetConfig(CollectorConfig):
    pass


@register("softnet")
class SoftnetCollector:
    Config = SoftnetConfig
    metrics = metric_defs(
        MetricDef("node_softnet_processed_total", "counter", "Number of processed packets", ("cpu",)),
        MetricDef("node_softnet_dropped_total", "counter", "Number of dropped packets", ("cpu",)),
        MetricDef("node_softnet_times_squeezed_total", "counter",
                  "Number of times processing packets ran out of quota", ("cpu",)),
    )

    def __init__(self, config: SoftnetConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or SoftnetConfig()
        self._path = os.path.join(proc_root, "net", "softnet_stat")
        self._labels: list[Labels] = []

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_optional(self._path)
        if text is None:
            return []
        out = []
        labels = self._labels
        for cpu, line in enumerate(text.splitlines()):
            parts = line.split(None, 3)
            if len(parts) < 3:
                continue
            while cpu >= len(labels):
                labels.append((("cpu", str(len(labels))),))
            lab = labels[cpu]
            for name, raw in zip(COLUMNS, parts, strict=False):
                out.append(Sample(name, lab, float(int(raw, 16)), now))
        return out
