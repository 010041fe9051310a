"""/sys/class/nvme as node_exporter 1.5's `nvme` collector: one info series per controller.
No NVMe controllers → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, labels_of, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import listdir, read_str

_FILES = (("firmware_revision", "firmware_rev"), ("model", "model"), ("serial", "serial"), ("state", "state"))


@dataclass(frozen=True)
class NvmeConfig(CollectorConfig):
    pass


@register("nvme")
class NvmeCollector:
    Config = NvmeConfig
    metrics = metric_defs(
        MetricDef("node_nvme_info", "gauge", "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
                  ("device", "firmware_revision", "model", "serial", "state")),
    )

    def __init__(self, config: NvmeConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or NvmeConfig()
        self._dir = os.path.join(sys_root, "class", "nvme")

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for dev in listdir(self._dir):
            path = os.path.join(self._dir, dev)
            values = {label: read_str(os.path.join(path, f)) for label, f in _FILES}
            if any(v is None for v in values.values()):
                continue  # node_exporter fails the device when a file is missing
            out.append(Sample("node_nvme_info", labels_of(values, device=dev), 1.0, now))
        return out
