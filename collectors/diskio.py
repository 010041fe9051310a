"""Block device I/O from /proc/diskstats (node_exporter's `diskstats` collector, same names and label).

Sectors are the kernel's fixed 512-byte units and times are milliseconds, converted to bytes and
seconds. The kernel's column count varies (14 before 4.18, 18 with discards, 20 with flushes); a
metric is emitted only where the column exists. Partitions, ram/zram, loop and floppy devices are
excluded by default with node_exporter's pattern (`device_exclude`, searched, not anchored by us).

`node_disk_info{device,major,minor,path,wwn,model,serial,revision}` is 1 per device, as node_exporter
1.5 has it: major/minor from /proc/diskstats, the rest from udev's database (/run/udev/data/b<maj>:<min>,
ID_PATH, ID_WWN, ID_MODEL, ID_SERIAL_SHORT, ID_REVISION), read once per device, left out when absent.
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

UDEV_LABELS = (("path", "ID_PATH"), ("wwn", "ID_WWN"), ("model", "ID_MODEL"), ("serial", "ID_SERIAL_SHORT"),
               ("revision", "ID_REVISION"))
DEFAULT_DEVICE_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
SECTOR_BYTES = 512.0
MS = 0.001

# (metric, help, multiplier, type) in /proc/diskstats column order after major, minor, name
COLUMNS: tuple[tuple[str, str, float, str], ...] = (
    ("node_disk_reads_completed_total", "The total number of reads completed successfully.", 1.0, "counter"),
    ("node_disk_reads_merged_total", "The total number of reads merged.", 1.0, "counter"),
    ("node_disk_read_bytes_total", "The total number of bytes read successfully.", SECTOR_BYTES, "counter"),
    ("node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.", MS, "counter"),
    ("node_disk_writes_completed_total", "The total number of writes completed successfully.", 1.0, "counter"),
    ("node_disk_writes_merged_total", "The number of writes merged.", 1.0, "counter"),
    ("node_disk_written_bytes_total", "The total number of bytes written successfully.", SECTOR_BYTES, "counter"),
    ("node_disk_write_time_seconds_total", "This is the total number of seconds spent by all writes.", MS, "counter"),
    ("node_disk_io_now", "The number of I/Os currently in progress.", 1.0, "gauge"),
    ("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", MS, "counter"),
    ("node_disk_io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", MS, "counter"),
    ("node_disk_discards_completed_total", "The total number of discards completed successfully.", 1.0, "counter"),
    ("node_disk_discards_merged_total", "The total number of discards merged.", 1.0, "counter"),
    ("node_disk_discarded_sectors_total", "The total number of sectors discarded successfully.", 1.0, "counter"),
    ("node_disk_discard_time_seconds_total", "This is the total number of seconds spent by all discards.", MS,
     "counter"),
    ("node_disk_flush_requests_total", "The total number of flush requests completed successfully", 1.0, "counter"),
    ("node_disk_flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush "
     "requests.", MS, "counter"),
)


@dataclass(frozen=True)
class DiskioConfig(CollectorConfig):
    device_exclude: Regex | None = Regex(DEFAULT_DEVICE_EXCLUDE)


@register("diskio")
class DiskioCollector:
    Config = DiskioConfig
    metrics = metric_defs(
        *(MetricDef(name, typ, help_text, ("device",)) for name, help_text, _, typ in COLUMNS),
        MetricDef("node_disk_info", "gauge", "Info of /sys/block/<block_device>.",
                  ("device", "major", "minor", "model", "path", "revision", "serial", "wwn")),
    )

    def __init__(self, config: DiskioConfig | None = None, *, proc_root: str = "/proc",
                 udev_data: str = "/run/udev/data") -> None:
        self.config = config or DiskioConfig()
        self._path = os.path.join(proc_root, "diskstats")
        self._udev_data = udev_data
        self._info: dict[tuple[str, str, str], Labels] = {}  # (device, major, minor) -> node_disk_info labels
        self._exclude = re.compile(self.config.device_exclude) if self.config.device_exclude else None
        self._labels: dict[str, Labels | None] = {}  # device -> labels, None when excluded

    def _labels_for(self, device: str) -> Labels | None:
        if device not in self._labels:
            excluded = self._exclude is not None and self._exclude.search(device) is not None
            self._labels[device] = None if excluded else (("device", device),)
        return self._labels[device]

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_text(self._path)
        out: list[Sample] = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 4:
                continue
            dev = parts[2]
            lab = self._labels[dev] if dev in self._labels else self._labels_for(dev)
            if lab is None:
                continue
            for (name, _, mult, _), raw in zip(COLUMNS, parts[3:], strict=False):
                out.append(Sample(name, lab, float(raw) * mult if mult != 1.0 else float(raw), now))
            key = (dev, parts[0], parts[1])
            info = self._info.get(key) or self._info_labels(key)
            out.append(Sample("node_disk_info", info, 1.0, now))
        return out

    def _info_labels(self, key: tuple[str, str, str]) -> Labels:
        dev, major, minor = key
        labels = {"device": dev, "major": major, "minor": minor}
        try:
            text = read_text(os.path.join(self._udev_data, f"b{major}:{minor}"))
        except OSError:
            text = ""
        props = dict(line[2:].partition("=")[::2] for line in text.splitlines() if line.startswith("E:"))
        for label, prop in UDEV_LABELS:
            if props.get(prop):
                labels[label] = props[prop]
        got = self._info[key] = tuple(sorted(labels.items()))
        return got
