"""The collector contract and the registry (Telegraf's idea: explicit, greppable, duplicates are errors).

A collector module:

    @dataclass(frozen=True)
    class LoadConfig(CollectorConfig):       # config keys = field names; `enabled`, `interval` inherited
        pass

    @register("load")
    class LoadCollector:
        Config = LoadConfig
        def __init__(self, config: LoadConfig, *, proc_root: str = "/proc") -> None: ...
        metrics = metric_defs(MetricDef("node_load1", "gauge", "1m load average."), ...)
        def collect(self, now: float) -> Iterable[Sample]: ...

`collect` builds fresh samples on every call (a vanished disk leaves no stale series). It may raise:
the scheduler isolates the failure, counts it in `hostwarden_collector_success{collector}` and
logs it once per change, and the other collectors go on. A collector whose output varies by input
(textfile, nagios perfdata) may add to `metrics` during collect; names not declared are exposed
as untyped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from hostwarden.agent.core.registry import Registry
from hostwarden.agent.core.samples import MetricDef, Sample
from hostwarden.agent.core.schema import Duration


@dataclass(frozen=True)
class CollectorConfig:
    enabled: bool = True
    interval: Duration | None = None  # None: global.interval


@runtime_checkable
class Collector(Protocol):
    name: str
    metrics: dict[str, MetricDef]

    def collect(self, now: float) -> Iterable[Sample]: ...


# Every module that registers a collector; imported on first use of the registry.
ALL_MODULES: tuple[str, ...] = (
    "hostwarden.collectors.cpu",
    "hostwarden.collectors.memory",
    "hostwarden.collectors.filesystem",
    "hostwarden.collectors.diskio",
    "hostwarden.collectors.network",
    "hostwarden.collectors.load",
    "hostwarden.collectors.uptime",
    "hostwarden.collectors.textfile",
    "hostwarden.collectors.arp",
    "hostwarden.collectors.conntrack",
    "hostwarden.collectors.entropy",
    "hostwarden.collectors.filefd",
    "hostwarden.collectors.netclass",
    "hostwarden.collectors.netstat",
    "hostwarden.collectors.os_release",
    "hostwarden.collectors.pressure",
    "hostwarden.collectors.sockstat",
    "hostwarden.collectors.softnet",
    "hostwarden.collectors.stat",
    "hostwarden.collectors.systemd",
    "hostwarden.collectors.timeclock",
    "hostwarden.collectors.timex",
    "hostwarden.collectors.udp_queues",
    "hostwarden.collectors.uname",
    "hostwarden.collectors.vmstat",
    # node_exporter 1.5 default collectors whose sources are often absent (issue 14, second half)
    "hostwarden.collectors.thermal_zone",
    "hostwarden.collectors.hwmon",
    "hostwarden.collectors.powersupplyclass",
    "hostwarden.collectors.cpufreq",
    "hostwarden.collectors.edac",
    "hostwarden.collectors.bcache",
    "hostwarden.collectors.btrfs",
    "hostwarden.collectors.xfs",
    "hostwarden.collectors.selinux",
    "hostwarden.collectors.schedstat",
    "hostwarden.collectors.nvme",
    "hostwarden.collectors.mdadm",
    "hostwarden.collectors.nfs",
    "hostwarden.collectors.nfsd",
    "hostwarden.collectors.bonding",
    "hostwarden.collectors.ipvs",
    "hostwarden.collectors.rapl",
    "hostwarden.collectors.zfs",
    "hostwarden.collectors.dmi",
)

# Collectors enabled when the config's `collectors:` section does not mention them.
DEFAULT_ENABLED: tuple[str, ...] = (
    "cpu", "memory", "filesystem", "diskio", "network", "load", "uptime", "textfile",
    # node_exporter 1.5's default-enabled Linux collectors (systemd is off by default there too)
    "arp", "conntrack", "entropy", "filefd", "netclass", "netstat", "os", "pressure", "sockstat", "softnet", "stat",
    "time", "timex", "udp_queues", "uname", "vmstat",
    # node_exporter 1.5 defaults (issue 14, second half)
    "thermal_zone", "hwmon", "powersupplyclass", "cpufreq", "edac", "bcache", "btrfs", "xfs", "selinux",
    "schedstat", "nvme", "mdadm", "nfs", "nfsd", "bonding", "ipvs", "rapl", "zfs", "dmi",
)

_REGISTRY = Registry("collector", ALL_MODULES, "name")
register = _REGISTRY.register
load_all = _REGISTRY.classes
registry = _REGISTRY.classes


class CollectorClass(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type]
