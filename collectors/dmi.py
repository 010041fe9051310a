"""/sys/class/dmi/id as node_exporter 1.5's `dmi` collector: one `node_dmi_info` series labelled
with every DMI field the kernel exposes (serials and the uuid are root-only: a field that cannot
be read is left out, as node_exporter does). DMI does not change while the machine runs, so it is
read once, when the collector is built. No DMI (VMs without SMBIOS, ARM boards) → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import read_str

FIELDS = (
    "bios_date", "bios_release", "bios_vendor", "bios_version", "board_asset_tag", "board_name",
    "board_serial", "board_vendor", "board_version", "chassis_asset_tag", "chassis_serial",
    "chassis_vendor", "chassis_version", "product_family", "product_name", "product_serial",
    "product_sku", "product_uuid", "product_version", "sys_vendor",
)


@dataclass(frozen=True)
class DmiConfig(CollectorConfig):
    pass


@register("dmi")
class DmiCollector:
    Config = DmiConfig
    metrics = metric_defs(
        MetricDef("node_dmi_info", "gauge",
                  "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, bios_version, "
                  "board_asset_tag, board_name, board_serial, board_vendor, board_version, chassis_asset_tag, "
                  "chassis_serial, chassis_vendor, chassis_version, product_family, product_name, product_serial, "
                  "product_sku, product_uuid, product_version, system_vendor if provided by DMI.",
                  tuple(sorted(f if f != "sys_vendor" else "system_vendor" for f in FIELDS))),
    )

    def __init__(self, config: DmiConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or DmiConfig()
        self.labels: Labels | None = _read(os.path.join(sys_root, "class", "dmi", "id"))

    def collect(self, now: float) -> Iterable[Sample]:
        if self.labels is None:
            return []
        return [Sample("node_dmi_info", self.labels, 1.0, now)]


def _read(path: str) -> Labels | None:
    if not os.path.isdir(path):
        return None
    found = []
    for f in FIELDS:
        value = read_str(os.path.join(path, f))
        if value:  # empty fields are left out, as Prometheus treats an empty label value as absent
            found.append(("system_vendor" if f == "sys_vendor" else f, value))
    return tuple(sorted(found)) if found else None
