"""OpenZFS kstats from /proc/spl/kstat/zfs as node_exporter 1.5's `zfs` collector: every uint64 kstat of
the module-wide files as `node_zfs_<subsystem>_<name>` (untyped, as node_exporter), per-pool I/O
(`node_zfs_zpool_<field>{zpool}`), per-dataset objset stats (`node_zfs_zpool_dataset_<name>{zpool,dataset}`)
and pool state one-hot (`node_zfs_zpool_state{zpool,state}`). No ZFS module → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import listdir, read_text_or_none

SUBSYSTEMS = (  # (metric subsystem, kstat file)
    ("zfs_abd", "abdstats"), ("zfs_arc", "arcstats"), ("zfs_dbuf", "dbuf_stats"), ("zfs_dmu_tx", "dmu_tx"),
    ("zfs_dnode", "dnodestats"), ("zfs_fm", "fm"), ("zfs_vdev_cache", "vdev_cache_stats"),
    ("zfs_vdev_mirror", "vdev_mirror_stats"), ("zfs_xuio", "xuio_stats"), ("zfs_zfetch", "zfetchstats"),
    ("zfs_zil", "zil"),
)
POOL_STATES = ("online", "degraded", "faulted", "offline", "removed", "unavail")
_UINT64 = "4"


def kstat_values(text: str) -> Iterable[tuple[str, str, str]]:
    """(name, type, data) rows after the `name type data` header of a kstat file."""
    started = False
    for line in text.splitlines():
        parts = line.split()
        if not started:
            started = parts == ["name", "type", "data"]
            continue
        if len(parts) >= 3:
            yield parts[0], parts[1], parts[2]


@dataclass(frozen=True)
class ZfsConfig(CollectorConfig):
    pass


@register("zfs")
class ZfsCollector:
    Config = ZfsConfig

    def __init__(self, config: ZfsConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or ZfsConfig()
        self._dir = os.path.join(proc_root, "spl", "kstat", "zfs")
        self.metrics: dict[str, MetricDef] = metric_defs(
            MetricDef("node_zfs_zpool_state", "gauge", "kstat.zfs.misc.state", ("state", "zpool")))

    def _define(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> str:
        if name not in self.metrics:
            self.metrics = {**self.metrics, name: MetricDef(name, "untyped", help_text, labels)}
        return name

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        if not os.path.isdir(self._dir):
            return out
        for subsystem, fname in SUBSYSTEMS:
            text = read_text_or_none(os.path.join(self._dir, fname))
            for key, kind, data in kstat_values(text or ""):
                if kind == _UINT64:
                    name = self._define(f"node_{subsystem}_{key.replace('-', '_')}",
                                        f"kstat.zfs.misc.{fname}.{key}")
                    out.append(Sample(name, (), float(data), now))
        for pool in listdir(self._dir):
            pool_dir = os.path.join(self._dir, pool)
            if os.path.isdir(pool_dir):
                self._pool(pool, pool_dir, now, out)
        return out

    def _pool(self, pool: str, path: str, now: float, out: list[Sample]) -> None:
        zpool = (("zpool", pool),)
        io = read_text_or_none(os.path.join(path, "io"))
        if io is not None:
            header: list[str] = []
            for line in io.splitlines():
                parts = line.split()
                if not header:
                    if len(parts) >= 12 and parts[0] == "nread":
                        header = parts
                    continue
                for field, value in zip(header, parts, strict=False):
                    name = self._define(f"node_zfs_zpool_{field}", f"kstat.zfs.misc.io.{field}", ("zpool",))
                    out.append(Sample(name, zpool, float(value), now))
        for entry in listdir(path):
            if entry.startswith("objset-"):
                self._objset(pool, os.path.join(path, entry), now, out)
        state = read_text_or_none(os.path.join(path, "state"))
        if state is not None:
            actual = state.split("\n", 1)[0].strip().lower()
            for s in POOL_STATES:
                out.append(Sample("node_zfs_zpool_state", (("state", s), ("zpool", pool)),
                                  1.0 if s == actual else 0.0, now))

    def _objset(self, pool: str, path: str, now: float, out: list[Sample]) -> None:
        dataset = ""
        for key, kind, data in kstat_values(read_text_or_none(path) or ""):
            if key == "dataset_name":
                dataset = data
            elif kind == _UINT64:
                name = self._define(f"node_zfs_zpool_dataset_{key.replace('-', '_')}", f"kstat.zfs.misc.objset.{key}",
                                    ("dataset", "zpool"))
                out.append(Sample(name, (("dataset", dataset), ("zpool", pool)), float(data), now))
