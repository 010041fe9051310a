"""/sys/class/thermal as node_exporter 1.5's `thermal_zone` collector: zone temperatures and
cooling-device throttle states. No thermal class (VMs, containers) → nothing.

A zone whose temperature cannot be read (the driver answers ENODATA while the sensor sleeps) is
skipped, as node_exporter does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import numbered, read_int, read_str


@dataclass(frozen=True)
class ThermalZoneConfig(CollectorConfig):
    pass


@register("thermal_zone")
class ThermalZoneCollector:
    Config = ThermalZoneConfig
    metrics = metric_defs(
        MetricDef("node_thermal_zone_temp", "gauge", "Zone temperature in Celsius", ("type", "zone")),
        MetricDef("node_cooling_device_cur_state", "gauge", "Current throttle state of the cooling device",
                  ("name", "type")),
        MetricDef("node_cooling_device_max_state", "gauge", "Maximum throttle state of the cooling device",
                  ("name", "type")),
    )

    def __init__(self, config: ThermalZoneConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or ThermalZoneConfig()
        self._dir = os.path.join(sys_root, "class", "thermal")

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for zone, path in numbered(self._dir, "thermal_zone"):
            kind = read_str(os.path.join(path, "type"))
            temp = read_int(os.path.join(path, "temp"))
            if kind is not None and temp is not None:
                out.append(Sample("node_thermal_zone_temp", (("type", kind), ("zone", zone)), temp / 1000.0, now))
        for name, path in numbered(self._dir, "cooling_device"):
            kind = read_str(os.path.join(path, "type"))
            cur = read_int(os.path.join(path, "cur_state"))  # -1 is valid (intel powerclamp)
            top = read_int(os.path.join(path, "max_state"))
            if kind is None or cur is None or top is None:
                continue
            labels = (("name", name), ("type", kind))
            out.append(Sample("node_cooling_device_cur_state", labels, float(cur), now))
            out.append(Sample("node_cooling_device_max_state", labels, float(top), now))
        return out
