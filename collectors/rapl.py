"""Intel RAPL energy counters from /sys/class/powercap as node_exporter 1.5's `rapl` collector:
`node_rapl_<zone name>_joules_total{index,path}` (or, with `enable_zone_label`, one
`node_rapl_joules_total{index,path,rapl_zone}`). `energy_uj` is root-only on kernels since 5.10
(CVE-2020-8694): unreadable, like absent, gives nothing.

`path` is the zone directory under the configured sysfs root, as node_exporter reports it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import listdir, read_int, read_str

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class RaplConfig(CollectorConfig):
    enable_zone_label: bool = False  # node_exporter's --collector.rapl.enable-zone-label


@register("rapl")
class RaplCollector:
    Config = RaplConfig

    def __init__(self, config: RaplConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or RaplConfig()
        self._dir = os.path.join(sys_root, "class", "powercap")
        self.metrics: dict[str, MetricDef] = metric_defs(
            MetricDef("node_rapl_joules_total", "counter", "Current RAPL value in joules",
                      ("index", "path", "rapl_zone")))

    def _zones(self) -> list[tuple[str, str, str]]:
        """(name, index, path) per zone, node_exporter's naming: `package-0` → name package, index 0;
        a name without a numeric suffix is numbered by how often it was seen."""
        seen: dict[str, int] = {}
        zones = []
        for entry in listdir(self._dir):
            path = os.path.join(self._dir, entry)
            raw = read_str(os.path.join(path, "name"))
            if raw is None:
                continue
            base, sep, suffix = raw.rpartition("-")
            if sep and suffix.isdigit() and "-" not in base:
                name, index = base, int(suffix)
            else:
                name, index = raw, seen.get(raw, 0)
            seen[name] = index + 1
            zones.append((name, str(index), path))
        return zones

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for name, index, path in self._zones():
            uj = read_int(os.path.join(path, "energy_uj"))
            if uj is None:
                return []  # node_exporter: permission denied on one zone → no data at all
            joules = uj / 1e6
            if self.config.enable_zone_label:
                labels = (("index", index), ("path", path), ("rapl_zone", name))
                out.append(Sample("node_rapl_joules_total", labels, joules, now))
                continue
            metric = f"node_rapl_{_INVALID.sub('_', name)}_joules_total"
            if metric not in self.metrics:
                self.metrics = {**self.metrics, metric: MetricDef(
                    metric, "counter", f"Current RAPL {name} value in joules", ("index", "path"))}
            out.append(Sample(metric, (("index", index), ("path", path)), joules, now))
        return out
