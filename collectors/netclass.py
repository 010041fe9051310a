"""Network interface properties from /sys/class/net/<iface>/, as node_exporter's `netclass` collector.

One gauge per numeric attribute, named as node_exporter names them (`mtu` → `node_network_mtu_bytes`,
`speed` in Mbit/s → `node_network_speed_bytes` in bytes/s, `carrier_changes` →
`node_network_carrier_changes_total`, a counter), plus `node_network_up` (operstate is "up") and
`node_network_info{address,broadcast,device,duplex,ifalias,operstate}`. An attribute the driver
refuses (a down interface answers EINVAL for carrier and speed) is left out, as node_exporter does.
Unknown speed is -1 Mbit/s, exposed as -125000 unless `ignore_invalid_speed` (node_exporter's
`--collector.netclass.ignore-invalid-speed`). `ignored_devices` is node_exporter's regular
expression of interfaces to skip (default `^$`: none).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import parse_int, read_attr_at

# sysfs attribute -> metric suffix, in node_exporter's order; counters end in _total
NUMERIC = (
    ("addr_assign_type", "address_assign_type"), ("carrier", "carrier"),
    ("carrier_changes", "carrier_changes_total"), ("carrier_up_count", "carrier_up_changes_total"),
    ("carrier_down_count", "carrier_down_changes_total"), ("dev_id", "device_id"), ("dormant", "dormant"),
    ("flags", "flags"), ("ifindex", "iface_id"), ("iflink", "iface_link"), ("link_mode", "iface_link_mode"),
    ("mtu", "mtu_bytes"), ("name_assign_type", "name_assign_type"), ("netdev_group", "net_dev_group"),
    ("speed", "speed_bytes"), ("tx_queue_len", "transmit_queue_length"), ("type", "protocol_type"),
)
INFO = ("address", "broadcast", "duplex", "ifalias", "operstate")
# fixed when the kernel registers the interface: read once per (device, ifindex), i.e. again if it is recreated
FIXED = frozenset(("dev_id", "iflink", "name_assign_type", "type"))


def _def(suffix: str) -> MetricDef:
    name = f"node_network_{suffix}"
    return MetricDef(name, "counter" if suffix.endswith("_total") else "gauge",
                     f"Network device property: {suffix}", ("device",))


@dataclass(frozen=True)
class NetclassConfig(CollectorConfig):
    ignored_devices: Regex = Regex("^$")
    ignore_invalid_speed: bool = False


@register("netclass")
class NetclassCollector:
    Config = NetclassConfig
    metrics = metric_defs(
        MetricDef("node_network_up", "gauge", "Value is 1 if operstate is 'up', 0 otherwise.", ("device",)),
        MetricDef("node_network_info", "gauge", "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
                  ("address", "broadcast", "device", "duplex", "ifalias", "operstate")),
        *(_def(suffix) for _attr, suffix in NUMERIC),
    )

    def __init__(self, config: NetclassConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or NetclassConfig()
        self._base = os.path.join(sys_root, "class", "net")
        self._ignored = re.compile(self.config.ignored_devices)
        self._numeric = tuple((attr, f"node_network_{suffix}") for attr, suffix in NUMERIC)
        self._labels: dict[str, Labels] = {}
        self._fixed: dict[tuple[str, str], dict[str, str | None]] = {}  # (device, ifindex) -> FIXED attributes

    def _devices(self) -> list[str]:
        try:
            entries = list(os.scandir(self._base))
        except (FileNotFoundError, NotADirectoryError):
            return []
        # interfaces are symlinks to their device directories; regular files (bonding_masters) are not
        return sorted(e.name for e in entries if not e.is_file(follow_symlinks=False)
                      and not self._ignored.search(e.name))

    def _device(self, dev: str, dir_fd: int, now: float, out: list[Sample]) -> None:
        lab = self._labels.get(dev)
        if lab is None:
            lab = self._labels[dev] = (("device", dev),)
        ifindex = read_attr_at(dir_fd, "ifindex")
        fixed = self._fixed.get((dev, ifindex or ""))
        if fixed is None:
            fixed = self._fixed[(dev, ifindex or "")] = {a: read_attr_at(dir_fd, a) for a in FIXED}
        info = {k: read_attr_at(dir_fd, k) or "" for k in INFO}
        out.append(Sample("node_network_up", lab, 1.0 if info["operstate"] == "up" else 0.0, now))
        out.append(Sample("node_network_info", (("address", info["address"]), ("broadcast", info["broadcast"]),
                                                ("device", dev), ("duplex", info["duplex"]),
                                                ("ifalias", info["ifalias"]), ("operstate", info["operstate"])),
                          1.0, now))
        for attr, name in self._numeric:
            raw = fixed[attr] if attr in FIXED else ifindex if attr == "ifindex" else read_attr_at(dir_fd, attr)
            if not raw:
                continue
            try:
                value = parse_int(raw)
            except ValueError:
                continue
            if attr == "speed":
                if value < 0 and self.config.ignore_invalid_speed:
                    continue
                value = value * 1000 * 1000 // 8 if value >= 0 else int(value * 1000 * 1000 / 8)
            out.append(Sample(name, lab, float(value), now))

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        devices = self._devices()
        if len(self._labels) > len(devices):  # interfaces went away: forget them
            keep = set(devices)
            self._labels = {k: v for k, v in self._labels.items() if k in keep}
            self._fixed = {k: v for k, v in self._fixed.items() if k[0] in keep}
        for dev in devices:
            try:
                dir_fd = os.open(os.path.join(self._base, dev), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except (FileNotFoundError, NotADirectoryError):
                continue  # the interface went away since the listing
            try:
                self._device(dev, dir_fd, now, out)
            finally:
                os.close(dir_fd)
        return out
