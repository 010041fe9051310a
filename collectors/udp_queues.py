"""Memory queued in UDP sockets from /proc/net/udp and udp6, as node_exporter's `udp_queues` collector.

`node_udp_queues{ip="v4"|"v6", queue="rx"|"tx"}` sums every socket's tx_queue and rx_queue
(hexadecimal bytes, column 5 "tx:rx"). A missing file (IPv6 disabled) reports nothing for that family.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional

LABELS = {(ip, q): (("ip", ip), ("queue", q)) for ip in ("v4", "v6") for q in ("rx", "tx")}


@dataclass(frozen=True)
class UdpQueuesConfig(CollectorConfig):
    pass


@register("udp_queues")
class UdpQueuesCollector:
    Config = UdpQueuesConfig
    metrics = metric_defs(
        MetricDef("node_udp_queues", "gauge", "Number of allocated memory in the kernel for UDP datagrams in bytes.",
                  ("ip", "queue")),
    )

    def __init__(self, config: UdpQueuesConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or UdpQueuesConfig()
        self._files = (("v4", os.path.join(proc_root, "net", "udp")), ("v6", os.path.join(proc_root, "net", "udp6")))

    def collect(self, now: float) -> Iterable[Sample]:
        out = []
        for ip, path in self._files:
            text = read_optional(path)
            if text is None:
                continue
            tx = rx = 0
            for line in text.splitlines()[1:]:
                parts = line.split(None, 5)
                if len(parts) < 5:
                    continue
                t, _, r = parts[4].partition(":")
                tx += int(t, 16)
                rx += int(r, 16)
            out.append(Sample("node_udp_queues", LABELS[(ip, "rx")], float(rx), now))
            out.append(Sample("node_udp_queues", LABELS[(ip, "tx")], float(tx), now))
        return out
