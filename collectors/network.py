"""Network interface counters from /proc/net/dev (node_exporter's `netdev` collector names, label `device`).

Every interface is reported, loopback included, as node_exporter does; `device_exclude` (a
regular expression searched in the interface name, default none) drops the noisy ones, e.g.
`^(veth.*|docker\\d+|br-.*)$` on container hosts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.procfs import read_text

# /proc/net/dev columns after "iface:", in order
COLUMNS = tuple(f"node_network_receive_{c}_total" for c in
                ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")) + tuple(
    f"node_network_transmit_{c}_total" for c in
    ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed"))


@dataclass(frozen=True)
class NetworkConfig(CollectorConfig):
    device_exclude: Regex | None = None


@register("network")
class NetworkCollector:
    Config = NetworkConfig
    metrics = metric_defs(*(
        MetricDef(name, "counter", f"Network device statistic {name[len('node_network_'):-len('_total')]}.",
                  ("device",)) for name in COLUMNS))

    def __init__(self, config: NetworkConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or NetworkConfig()
        self._path = os.path.join(proc_root, "net", "dev")
        self._exclude = re.compile(self.config.device_exclude) if self.config.device_exclude else None
        self._labels: dict[str, Labels | None] = {}  # device -> labels, None when excluded

    def _labels_for(self, device: str) -> Labels | None:
        excluded = self._exclude is not None and self._exclude.search(device) is not None
        lab = self._labels[device] = None if excluded else (("device", device),)
        return lab

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_text(self._path)
        out: list[Sample] = []
        for line in text.splitlines()[2:]:
            name, sep, rest = line.partition(":")
            if not sep:
                continue
            dev = name.strip()
            lab = self._labels[dev] if dev in self._labels else self._labels_for(dev)
            if lab is None:
                continue
            for metric, raw in zip(COLUMNS, rest.split(), strict=False):
                out.append(Sample(metric, lab, float(raw), now))
        return out
