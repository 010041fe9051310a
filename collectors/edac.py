"""EDAC memory-controller error counts from /sys/devices/system/edac/mc as node_exporter 1.5's `edac`
collector. Errors the controller could not attribute to a csrow (`*_noinfo_count`) are reported
with csrow="unknown", as node_exporter does. No EDAC driver → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import numbered, read_int


@dataclass(frozen=True)
class EdacConfig(CollectorConfig):
    pass


@register("edac")
class EdacCollector:
    Config = EdacConfig
    metrics = metric_defs(
        MetricDef("node_edac_correctable_errors_total", "counter", "Total correctable memory errors.",
                  ("controller",)),
        MetricDef("node_edac_uncorrectable_errors_total", "counter", "Total uncorrectable memory errors.",
                  ("controller",)),
        MetricDef("node_edac_csrow_correctable_errors_total", "counter",
                  "Total correctable memory errors for this csrow.", ("controller", "csrow")),
        MetricDef("node_edac_csrow_uncorrectable_errors_total", "counter",
                  "Total uncorrectable memory errors for this csrow.", ("controller", "csrow")),
    )

    def __init__(self, config: EdacConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or EdacConfig()
        self._dir = os.path.join(sys_root, "devices", "system", "edac", "mc")

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for mc, path in numbered(self._dir, "mc"):
            ctl = (("controller", mc),)
            unknown = (("controller", mc), ("csrow", "unknown"))
            for fname, name, labels in (
                ("ce_count", "node_edac_correctable_errors_total", ctl),
                ("ce_noinfo_count", "node_edac_csrow_correctable_errors_total", unknown),
                ("ue_count", "node_edac_uncorrectable_errors_total", ctl),
                ("ue_noinfo_count", "node_edac_csrow_uncorrectable_errors_total", unknown),
            ):
                value = read_int(os.path.join(path, fname))
                if value is not None:
                    out.append(Sample(name, labels, float(value), now))
            for row, row_path in numbered(path, "csrow"):
                labels = (("controller", mc), ("csrow", row))
                ce = read_int(os.path.join(row_path, "ce_count"))
                ue = read_int(os.path.join(row_path, "ue_count"))
                if ce is not None:
                    out.append(Sample("node_edac_csrow_correctable_errors_total", labels, float(ce), now))
                if ue is not None:
                    out.append(Sample("node_edac_csrow_uncorrectable_errors_total", labels, float(ue), now))
        return out
