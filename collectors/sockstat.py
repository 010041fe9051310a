"""Socket counts from /proc/net/sockstat and sockstat6, as node_exporter's `sockstat` collector.

"TCP: inuse 2 orphan 0 tw 284 alloc 2 mem 90" becomes `node_sockstat_TCP_inuse` … `node_sockstat_TCP_mem`
(all gauges); a protocol's `mem` is in pages, so `node_sockstat_<P>_mem_bytes` is added with it times
the page size. "sockets: used 41" is `node_sockstat_sockets_used`; sockstat6 gives TCP6, UDP6, … .
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional

USED = "node_sockstat_sockets_used"
KEYS = frozenset(("inuse", "orphan", "tw", "alloc", "mem", "memory"))  # what node_exporter maps


@dataclass(frozen=True)
class SockstatConfig(CollectorConfig):
    pass


@register("sockstat")
class SockstatCollector:
    Config = SockstatConfig

    def __init__(self, config: SockstatConfig | None = None, *, proc_root: str = "/proc",
                 page_size: int | None = None) -> None:
        self.config = config or SockstatConfig()
        self._paths = (os.path.join(proc_root, "net", "sockstat"), os.path.join(proc_root, "net", "sockstat6"))
        self._page = float(page_size or os.sysconf("SC_PAGE_SIZE"))
        self._names: dict[tuple[str, str], str] = {}
        self.metrics: dict[str, MetricDef] = {USED: MetricDef(USED, "gauge", "Number of IPv4 sockets in use.")}

    def _name(self, proto: str, key: str) -> str:
        name = self._names[(proto, key)] = f"node_sockstat_{proto}_{key}"
        if name not in self.metrics:
            self.metrics = {**self.metrics,
                            name: MetricDef(name, "gauge", f"Number of {proto} sockets in state {key}.")}
        return name

    def collect(self, now: float) -> Iterable[Sample]:
        names = self._names
        out: list[Sample] = []
        for path in self._paths:
            text = read_optional(path)
            if text is None:
                continue
            for line in text.splitlines():
                proto, sep, rest = line.partition(":")
                if not sep:
                    continue
                parts = rest.split()
                if proto == "sockets":
                    if len(parts) >= 2 and parts[0] == "used":
                        out.append(Sample(USED, (), float(int(parts[1])), now))
                    continue
                for key, raw in zip(parts[0::2], parts[1::2], strict=False):
                    if key not in KEYS:
                        continue
                    value = float(int(raw))
                    nk = (proto, key)
                    out.append(Sample(names.get(nk) or self._name(proto, key), (), value, now))
                    if key == "mem":
                        nk = (proto, "mem_bytes")
                        out.append(Sample(names.get(nk) or self._name(proto, "mem_bytes"), (), value * self._page,
                                          now))
        return out
