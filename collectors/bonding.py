"""Bonding masters from /sys/class/net as node_exporter 1.5's `bonding` collector: configured and
active (mii_status "up") slaves per master. No bonding driver (no `bonding_masters`) → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import read_str


@dataclass(frozen=True)
class BondingConfig(CollectorConfig):
    pass


@register("bonding")
class BondingCollector:
    Config = BondingConfig
    metrics = metric_defs(
        MetricDef("node_bonding_slaves", "gauge", "Number of configured slaves per bonding interface.", ("master",)),
        MetricDef("node_bonding_active", "gauge", "Number of active slaves per bonding interface.", ("master",)),
    )

    def __init__(self, config: BondingConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or BondingConfig()
        self._dir = os.path.join(sys_root, "class", "net")

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        masters = read_str(os.path.join(self._dir, "bonding_masters"))
        for master in (masters or "").split():
            slaves = read_str(os.path.join(self._dir, master, "bonding", "slaves"))
            if slaves is None:
                continue
            configured = active = 0
            for slave in slaves.split():
                state = read_str(os.path.join(self._dir, master, f"lower_{slave}", "bonding_slave", "mii_status"))
                if state is None:  # kernels before 4.13 name the link slave_<if>
                    state = read_str(os.path.join(self._dir, master, f"slave_{slave}", "bonding_slave", "mii_status"))
                if state is None:
                    continue
                configured += 1
                active += state == "up"
            labels = (("master", master),)
            out.append(Sample("node_bonding_slaves", labels, float(configured), now))
            out.append(Sample("node_bonding_active", labels, float(active), now))
        return out
