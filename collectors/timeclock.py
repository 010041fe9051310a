"""System time, time zone and clock source, as node_exporter's `time` collector.

`node_time_seconds` is the collection time (the `uptime` collector reports the same series; the
exposition keeps one), `node_time_zone_offset_seconds{time_zone}` the local zone's offset from
UTC at that time, and `node_time_clocksource_{available,current}_info{clocksource,device}` come
from /sys/devices/system/clocksource/clocksource<N>/. The zone rules are the ones the process started
with (TZ, else /etc/localtime), as node_exporter's: a changed zone shows after a restart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_attr

BASE = ("devices", "system", "clocksource")


@dataclass(frozen=True)
class TimeConfig(CollectorConfig):
    pass


@register("time")
class TimeCollector:
    Config = TimeConfig
    metrics = metric_defs(
        MetricDef("node_time_seconds", "gauge", "System time in seconds since epoch (1970)."),
        MetricDef("node_time_zone_offset_seconds", "gauge", "System time zone offset in seconds.", ("time_zone",)),
        MetricDef("node_time_clocksource_available_info", "gauge",
                  "Available clocksources read from '/sys/devices/system/clocksource'.", ("clocksource", "device")),
        MetricDef("node_time_clocksource_current_info", "gauge",
                  "Current clocksource read from '/sys/devices/system/clocksource'.", ("clocksource", "device")),
    )

    def __init__(self, config: TimeConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or TimeConfig()
        self._base = os.path.join(sys_root, *BASE)

    def collect(self, now: float) -> Iterable[Sample]:
        local = time.localtime(now)
        out = [Sample("node_time_seconds", (), now, now),
               Sample("node_time_zone_offset_seconds", (("time_zone", local.tm_zone),), float(local.tm_gmtoff), now)]
        try:
            names = sorted(n for n in os.listdir(self._base) if n.startswith("clocksource"))
        except (FileNotFoundError, NotADirectoryError):
            return out
        for name in names:
            device = name[len("clocksource"):]
            if not device.isdigit():
                continue
            available = read_attr(os.path.join(self._base, name, "available_clocksource"))
            for source in (available or "").split():
                out.append(Sample("node_time_clocksource_available_info",
                                  (("clocksource", source), ("device", device)), 1.0, now))
            current = read_attr(os.path.join(self._base, name, "current_clocksource"))
            if current:
                out.append(Sample("node_time_clocksource_current_info",
                                  (("clocksource", current), ("device", device)), 1.0, now))
        return out
