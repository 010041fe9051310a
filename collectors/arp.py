"""ARP table entries per interface from /proc/net/arp, as node_exporter's `arp` collector.

`device_include` / `device_exclude` (regular expressions searched in the interface name, at most
one of them) are node_exporter's `--collector.arp.device-include/-exclude`; default: every device.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional


@dataclass(frozen=True)
class ArpConfig(CollectorConfig):
    device_include: Regex | None = None
    device_exclude: Regex | None = None

    def validate(self) -> list[str]:
        return ["device_include and device_exclude are mutually exclusive"] if (
            self.device_include and self.device_exclude) else []


@register("arp")
class ArpCollector:
    Config = ArpConfig
    metrics = metric_defs(MetricDef("node_arp_entries", "gauge", "ARP entries by device", ("device",)))

    def __init__(self, config: ArpConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or ArpConfig()
        if self.config.device_include and self.config.device_exclude:
            raise ValueError("arp: device_include and device_exclude are mutually exclusive")
        self._path = os.path.join(proc_root, "net", "arp")
        self._include = re.compile(self.config.device_include) if self.config.device_include else None
        self._exclude = re.compile(self.config.device_exclude) if self.config.device_exclude else None
        self._labels: dict[str, Labels | None] = {}

    def _label(self, device: str) -> Labels | None:
        keep = ((self._include is None or self._include.search(device) is not None)
                and (self._exclude is None or self._exclude.search(device) is None))
        lab = self._labels[device] = (("device", device),) if keep else None
        return lab

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_optional(self._path)
        if text is None:
            return []
        counts: dict[str, int] = {}
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 6:
                counts[parts[5]] = counts.get(parts[5], 0) + 1
        out = []
        for device in sorted(counts):
            lab = self._labels[device] if device in self._labels else self._label(device)
            if lab is not None:
                out.append(Sample("node_arp_entries", lab, float(counts[device]), now))
        return out
