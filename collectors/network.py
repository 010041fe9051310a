"""Network interface counters from /proc/net/dev (node_exporter's `netdev` collector names, label `device`).

Every interface is reported, loopback included, as node_exporter does; `device_exclude` (a
regular expression searched in the interface name, default none) drops the noisy ones, e.g.
`^(veth.*|docker\\d+|br-.*)$` on container hosts.

`node_network_receive_nohandler_total` (packets dropped because no protocol handler took them) has
no /proc/net/dev column: it comes from one rtnetlink link dump per cycle, as node_exporter 1.5 reads
its netdev counters. Where netlink is refused the family is left out.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.procfs import read_text
from hostwarden.collectors.rtnetlink import RX_NOHANDLER, link_stats64

log = logging.getLogger(__name__)
NOHANDLER = "node_network_receive_nohandler_total"

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
                  ("device",)) for name in (*COLUMNS, NOHANDLER)))

    def __init__(self, config: NetworkConfig | None = None, *, proc_root: str = "/proc",
                 link_stats: Callable[[], dict[str, tuple[int, ...]]] | None = None) -> None:
        self.config = config or NetworkConfig()
        # netlink answers for this network namespace, whatever proc_root says: only with the real /proc
        self._link_stats = link_stats or (link_stats64 if os.path.realpath(proc_root) == "/proc" else None)
        self._netlink_failed = False
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
        if self._link_stats is not None:
            self._nohandler(now, out)
        return out

    def _nohandler(self, now: float, out: list[Sample]) -> None:
        try:
            stats = self._link_stats()  # type: ignore[misc]
        except OSError as e:
            if not self._netlink_failed:
                log.info("rtnetlink link dump refused (%s): node_network_receive_nohandler_total left out", e)
                self._netlink_failed = True
            return
        for dev, counters in stats.items():
            lab = self._labels[dev] if dev in self._labels else self._labels_for(dev)
            if lab is not None:
                out.append(Sample(NOHANDLER, lab, float(counters[RX_NOHANDLER]), now))
