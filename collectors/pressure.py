"""Pressure stall information from /proc/pressure, as node_exporter 1.5's `pressure` collector.

The `total=` of a "some" line (at least one task stalled) is the `waiting` counter, of a "full"
line (all non-idle tasks stalled) the `stalled` counter, in seconds (the kernel counts µs).
node_exporter 1.5 reads cpu "some" only, io and memory both. Kernels without PSI (before 4.20,
or CONFIG_PSI off, or psi=0) have no /proc/pressure: nothing is reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional

# resource -> ((line kind, metric), ...)
RESOURCES = {
    "cpu": (("some", "node_pressure_cpu_waiting_seconds_total"),),
    "io": (("some", "node_pressure_io_waiting_seconds_total"), ("full", "node_pressure_io_stalled_seconds_total")),
    "memory": (("some", "node_pressure_memory_waiting_seconds_total"),
               ("full", "node_pressure_memory_stalled_seconds_total")),
}


@dataclass(frozen=True)
class PressureConfig(CollectorConfig):
    pass


@register("pressure")
class PressureCollector:
    Config = PressureConfig
    metrics = metric_defs(
        MetricDef("node_pressure_cpu_waiting_seconds_total", "counter",
                  "Total time in seconds that processes have waited for CPU time"),
        MetricDef("node_pressure_io_waiting_seconds_total", "counter",
                  "Total time in seconds that processes have waited due to IO congestion"),
        MetricDef("node_pressure_io_stalled_seconds_total", "counter",
                  "Total time in seconds no process could make progress due to IO congestion"),
        MetricDef("node_pressure_memory_waiting_seconds_total", "counter",
                  "Total time in seconds that processes have waited for memory"),
        MetricDef("node_pressure_memory_stalled_seconds_total", "counter",
                  "Total time in seconds no process could make progress due to memory congestion"),
    )

    def __init__(self, config: PressureConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or PressureConfig()
        self._files = tuple((os.path.join(proc_root, "pressure", r), dict(kinds)) for r, kinds in RESOURCES.items())

    def collect(self, now: float) -> Iterable[Sample]:
        out = []
        for path, kinds in self._files:
            text = read_optional(path)
            if text is None:
                continue
            for line in text.splitlines():
                kind, _, rest = line.partition(" ")
                name = kinds.get(kind)
                if name is None:
                    continue
                at = rest.find("total=")
                if at < 0:
                    raise ValueError(f"{path}: no total= in {line!r}")
                value = rest[at + 6:].split(None, 1)
                if not value:
                    raise ValueError(f"{path}: empty total= in {line!r}")
                out.append(Sample(name, (), int(value[0]) / 1000.0 / 1000.0, now))
        return out
