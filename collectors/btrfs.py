"""Btrfs from /sys/fs/btrfs/<uuid> as node_exporter 1.5's `btrfs` collector (its sysfs part): info
with the label, global reserve, reserved bytes per block-group type, used/size/allocation ratio per
type and profile, and device sizes. node_exporter additionally asks mounted filesystems for
per-device error counters through a root-only ioctl (`node_btrfs_device_errors_total`,
`node_btrfs_device_unused_bytes`, and the device label gains `btrfs_dev_uuid`); hostwarden does
not (a reasoned exception of tests/integration/test_node_exporter_parity.py). No btrfs filesystem
(only /sys/fs/btrfs/features) → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import listdir, read_int, read_str

SECTOR = 512
_TYPES = ("data", "metadata", "system")
_RATIOS = {"single": 1.0, "raid0": 1.0, "dup": 2.0, "raid1": 2.0, "raid10": 2.0}
_LAYOUT = ("block_group_type", "mode", "uuid")


@dataclass(frozen=True)
class BtrfsConfig(CollectorConfig):
    pass


@register("btrfs")
class BtrfsCollector:
    Config = BtrfsConfig
    metrics = metric_defs(
        MetricDef("node_btrfs_info", "gauge", "Filesystem information", ("label", "uuid")),
        MetricDef("node_btrfs_global_rsv_size_bytes", "gauge", "Size of global reserve.", ("uuid",)),
        MetricDef("node_btrfs_reserved_bytes", "gauge", "Amount of space reserved for a data type",
                  ("block_group_type", "uuid")),
        MetricDef("node_btrfs_used_bytes", "gauge", "Amount of used space by a layout/data type", _LAYOUT),
        MetricDef("node_btrfs_size_bytes", "gauge", "Amount of space allocated for a layout/data type", _LAYOUT),
        MetricDef("node_btrfs_allocation_ratio", "gauge", "Data allocation ratio for a layout/data type", _LAYOUT),
        MetricDef("node_btrfs_device_size_bytes", "gauge", "Size of a device that is part of the filesystem.",
                  ("device", "uuid")),
    )

    def __init__(self, config: BtrfsConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or BtrfsConfig()
        self._dir = os.path.join(sys_root, "fs", "btrfs")

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for entry in listdir(self._dir):
            if "-" in entry:
                self._fs(os.path.join(self._dir, entry), entry, now, out)
        return out

    def _fs(self, path: str, entry: str, now: float, out: list[Sample]) -> None:
        uuid = read_str(os.path.join(path, "metadata_uuid")) or entry
        devices = listdir(os.path.join(path, "devices"))
        out.append(Sample("node_btrfs_info", (("label", read_str(os.path.join(path, "label")) or ""),
                                              ("uuid", uuid)), 1.0, now))
        rsv = read_int(os.path.join(path, "allocation", "global_rsv_size")) or 0
        out.append(Sample("node_btrfs_global_rsv_size_bytes", (("uuid", uuid),), float(rsv), now))
        for kind in _TYPES:
            alloc = os.path.join(path, "allocation", kind)
            reserved = read_int(os.path.join(alloc, "bytes_reserved")) or 0
            out.append(Sample("node_btrfs_reserved_bytes", (("block_group_type", kind), ("uuid", uuid)),
                              float(reserved), now))
            for mode in listdir(alloc):
                layout = os.path.join(alloc, mode)
                if not os.path.isdir(layout):
                    continue
                labels = (("block_group_type", kind), ("mode", mode), ("uuid", uuid))
                used = read_int(os.path.join(layout, "used_bytes")) or 0
                total = read_int(os.path.join(layout, "total_bytes")) or 0
                out.append(Sample("node_btrfs_used_bytes", labels, float(used), now))
                out.append(Sample("node_btrfs_size_bytes", labels, float(total), now))
                out.append(Sample("node_btrfs_allocation_ratio", labels, _ratio(mode, len(devices)), now))
        for dev in devices:
            size = read_int(os.path.join(path, "devices", dev, "size")) or 0
            out.append(Sample("node_btrfs_device_size_bytes", (("device", dev), ("uuid", uuid)),
                              float(size * SECTOR), now))


def _ratio(mode: str, devices: int) -> float:
    if mode in _RATIOS:
        return _RATIOS[mode]
    spare = {"raid5": 1, "raid6": 2}.get(mode)
    if spare is None or devices <= spare:
        return 0.0
    return devices / (devices - spare)
