"""IPVS from /proc/net/ip_vs_stats and /proc/net/ip_vs as node_exporter 1.5's `ipvs` collector:
totals (hex counters) and per-backend active/inactive connections and weight, summed over the
configured `backend_labels` (node_exporter's --collector.ipvs.backend-labels). No IPVS module → nothing.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import read_text_or_none

BACKEND_LABELS = ("local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark")
_TOTALS = (
    ("node_ipvs_connections_total", "The total number of connections made."),
    ("node_ipvs_incoming_packets_total", "The total number of incoming packets."),
    ("node_ipvs_outgoing_packets_total", "The total number of outgoing packets."),
    ("node_ipvs_incoming_bytes_total", "The total amount of incoming data."),
    ("node_ipvs_outgoing_bytes_total", "The total amount of outgoing data."),
)


@dataclass(frozen=True)
class IpvsConfig(CollectorConfig):
    backend_labels: str = ",".join(BACKEND_LABELS)


def _addr_port(s: str) -> tuple[str, int]:
    """`0A000001:0050` (IPv4 hex) or `[2620:0:...]:0050` → ("10.0.0.1", 80)."""
    if s.startswith("["):
        return str(ipaddress.ip_address(s[1:s.index("]")])), int(s[-4:], 16)
    return str(ipaddress.IPv4Address(bytes.fromhex(s[:8]))), int(s[-4:], 16)


@register("ipvs")
class IpvsCollector:
    Config = IpvsConfig

    def __init__(self, config: IpvsConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or IpvsConfig()
        wanted = {x.strip() for x in self.config.backend_labels.split(",") if x.strip()}
        unknown = wanted - set(BACKEND_LABELS)
        if unknown:
            raise ValueError(f"unknown IPVS backend labels: {', '.join(sorted(unknown))}")
        self._labels = tuple(x for x in BACKEND_LABELS if x in wanted)
        self._stats = os.path.join(proc_root, "net", "ip_vs_stats")
        self._backends = os.path.join(proc_root, "net", "ip_vs")
        names = tuple(sorted(self._labels))
        self.metrics = metric_defs(
            *(MetricDef(n, "counter", h) for n, h in _TOTALS),
            MetricDef("node_ipvs_backend_connections_active", "gauge",
                      "The current active connections by local and remote address.", names),
            MetricDef("node_ipvs_backend_connections_inactive", "gauge",
                      "The current inactive connections by local and remote address.", names),
            MetricDef("node_ipvs_backend_weight", "gauge", "The current backend weight by local and remote address.",
                      names),
        )

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_text_or_none(self._stats)
        if text is None:
            return []
        lines = text.split("\n")
        fields = lines[2].split() if len(lines) > 3 else []
        if len(fields) != 5:
            raise ValueError("ip_vs_stats: unexpected format")
        out = [Sample(name, (), float(int(v, 16)), now) for (name, _), v in zip(_TOTALS, fields, strict=True)]
        sums: dict[tuple[tuple[str, str], ...], list[float]] = {}
        proto = mark = laddr = ""
        lport = 0
        for line in (read_text_or_none(self._backends) or "").splitlines():
            f = line.split()
            if len(f) < 2 or f[0] in ("IP", "Prot") or f[1] == "RemoteAddress:Port":
                continue
            if f[0] in ("TCP", "UDP"):
                proto, mark = f[0], ""
                laddr, lport = _addr_port(f[1])
            elif f[0] == "FWM":
                proto, mark, laddr, lport = f[0], f[1], "", 0
            elif f[0] == "->" and len(f) >= 6:
                raddr, rport = _addr_port(f[1])
                values = {"local_address": laddr, "local_port": str(lport), "remote_address": raddr,
                          "remote_port": str(rport), "proto": proto, "local_mark": mark}
                key = tuple(sorted((k, values[k]) for k in self._labels if values[k] != ""))
                acc = sums.setdefault(key, [0.0, 0.0, 0.0])
                acc[0] += int(f[4])
                acc[1] += int(f[5])
                acc[2] += int(f[3])
        for labels, (active, inactive, weight) in sums.items():
            out.append(Sample("node_ipvs_backend_connections_active", labels, active, now))
            out.append(Sample("node_ipvs_backend_connections_inactive", labels, inactive, now))
            out.append(Sample("node_ipvs_backend_weight", labels, weight, now))
        return out
