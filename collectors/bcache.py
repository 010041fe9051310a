"""bcache from /sys/fs/bcache/<uuid> as node_exporter 1.5's `bcache` collector (procfs 0.8 reading):
cache-set gauges, per backing device dirty data, writeback-rate terms and total stats, per cache
device errors and bytes written. Values are bcache's human-readable sizes ("1.5M", 1024-based with
bcache's own fraction encoding). `priority_stats` (node_exporter's --collector.bcache.priorityStats,
off by default: reading priority_stats is expensive for the kernel) adds the unused/metadata
percentages. Like node_exporter, `btree_read_average_duration_us` is scaled by 1e-9 into the
`_seconds` metric. No bcache → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import listdir, read_str, read_text_or_none

_UNITS = {"k": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}

# (file under the set, metric suffix, type, scale, help)
_SET = (
    ("average_key_size", "average_key_size_sectors", "gauge", 1.0, "Average data per key in the btree (sectors)."),
    ("btree_cache_size", "btree_cache_size_bytes", "gauge", 1.0, "Amount of memory currently used by the btree "
                                                                  "cache."),
    ("cache_available_percent", "cache_available_percent", "gauge", 1.0, "Percentage of cache device without dirty "
     "data, usable for writeback (may contain clean cached data)."),
    ("congested", "congested", "gauge", 1.0, "Congestion."),
    ("root_usage_percent", "root_usage_percent", "gauge", 1.0, "Percentage of the root btree node in use (tree "
                                                                "depth increases if too high)."),
    ("tree_depth", "tree_depth", "gauge", 1.0, "Depth of the btree."),
    ("internal/active_journal_entries", "active_journal_entries", "gauge", 1.0, "Number of journal entries that are "
                                                                                 "newer than the index."),
    ("internal/btree_nodes", "btree_nodes", "gauge", 1.0, "Total nodes in the btree."),
    ("internal/btree_read_average_duration_us", "btree_read_average_duration_seconds", "gauge", 1e-9,
     "Average btree read duration."),
    ("internal/cache_read_races", "cache_read_races_total", "counter", 1.0, "Counts instances where while data was "
     "being read from the cache, the bucket was reused and invalidated - i.e. where the pointer was stale after the "
     "read completed."),
)
_PERIOD = (
    ("bypassed", "bypassed_bytes_total", "Amount of IO (both reads and writes) that has bypassed the cache."),
    ("cache_hits", "cache_hits_total", "Hits counted per individual IO as bcache sees them."),
    ("cache_misses", "cache_misses_total", "Misses counted per individual IO as bcache sees them."),
    ("cache_bypass_hits", "cache_bypass_hits_total", "Hits for IO intended to skip the cache."),
    ("cache_bypass_misses", "cache_bypass_misses_total", "Misses for IO intended to skip the cache."),
    ("cache_miss_collisions", "cache_miss_collisions_total", "Instances where data insertion from cache miss raced "
                                                             "with write (data already present)."),
    ("cache_readaheads", "cache_readaheads_total", "Count of times readahead occurred."),
)
# writeback_rate_debug line → (metric suffix, help)
_WRITEBACK = (
    ("target", "dirty_target_bytes", "Current dirty data target threshold for this backing device in bytes."),
    ("rate", "writeback_rate", "Current writeback rate for this backing device in bytes."),
    ("proportional", "writeback_rate_proportional_term", "Current result of proportional controller, part of "
                                                         "writeback rate"),
    ("integral", "writeback_rate_integral_term", "Current result of integral controller, part of writeback rate"),
    ("change", "writeback_change", "Last writeback rate change step for this backing device."),
)
_CACHE = (
    ("io_errors", "io_errors", "gauge", "Number of errors that have occurred, decayed by io_error_halflife."),
    ("metadata_written", "metadata_written_bytes_total", "counter", "Sum of all non data writes (btree writes and "
                                                                    "all other metadata)."),
    ("written", "written_bytes_total", "counter", "Sum of all data that has been written to the cache."),
)


def dehumanize(text: str) -> float:
    """bcache's human-readable number: `12`, `-3.1k`, `1.5M` (the fraction digits are in 1/1024ths ×10)."""
    neg = text.startswith("-")
    text = text.lstrip("-")
    if text and text[-1] in _UNITS:
        whole, _, frac = text[:-1].partition(".")
        value = (float(whole) + (float(frac) / 10.24 if frac else 0.0)) * _UNITS[text[-1]]
    else:
        value = float(text)
    value = float(int(value))
    return -value if neg else value


@dataclass(frozen=True)
class BcacheConfig(CollectorConfig):
    priority_stats: bool = False


@register("bcache")
class BcacheCollector:
    Config = BcacheConfig
    metrics = metric_defs(
        *(MetricDef(f"node_bcache_{s}", t, h, ("uuid",)) for _, s, t, _, h in _SET),
        MetricDef("node_bcache_dirty_data_bytes", "gauge", "Amount of dirty data for this backing device in the cache.",
                  ("backing_device", "uuid")),
        *(MetricDef(f"node_bcache_{s}", "gauge", h, ("backing_device", "uuid")) for _, s, h in _WRITEBACK),
        *(MetricDef(f"node_bcache_{s}", "counter", h, ("backing_device", "uuid")) for _, s, h in _PERIOD),
        *(MetricDef(f"node_bcache_{s}", t, h, ("cache_device", "uuid")) for _, s, t, h in _CACHE),
        MetricDef("node_bcache_priority_stats_unused_percent", "gauge",
                  "The percentage of the cache that doesn't contain any data.", ("cache_device", "uuid")),
        MetricDef("node_bcache_priority_stats_metadata_percent", "gauge", "Bcache's metadata overhead.",
                  ("cache_device", "uuid")),
    )

    def __init__(self, config: BcacheConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or BcacheConfig()
        self._dir = os.path.join(sys_root, "fs", "bcache")

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for uuid in listdir(self._dir):
            if "-" in uuid:
                self._set(os.path.join(self._dir, uuid), uuid, now, out)
        return out

    def _set(self, path: str, uuid: str, now: float, out: list[Sample]) -> None:
        labels: Labels = (("uuid", uuid),)
        for fname, suffix, _, scale, _ in _SET:
            out.append(Sample(f"node_bcache_{suffix}", labels, _value(os.path.join(path, fname)) * scale, now))
        for entry in listdir(path):
            sub = os.path.join(path, entry)
            if entry.startswith("bdev") and entry[4:].isdigit():
                dev = (("backing_device", entry), ("uuid", uuid))
                out.append(Sample("node_bcache_dirty_data_bytes", dev, _value(os.path.join(sub, "dirty_data")), now))
                debug = _writeback_debug(os.path.join(sub, "writeback_rate_debug"))
                for key, suffix, _ in _WRITEBACK:
                    out.append(Sample(f"node_bcache_{suffix}", dev, debug.get(key, 0.0), now))
                for fname, suffix, _ in _PERIOD:
                    out.append(Sample(f"node_bcache_{suffix}", dev,
                                      _value(os.path.join(sub, "stats_total", fname)), now))
            elif entry.startswith("cache") and entry[5:].isdigit():
                dev = (("cache_device", entry), ("uuid", uuid))
                for fname, suffix, _, _ in _CACHE:
                    out.append(Sample(f"node_bcache_{suffix}", dev, _value(os.path.join(sub, fname)), now))
                if self.config.priority_stats:
                    unused, metadata = _priority_stats(os.path.join(sub, "priority_stats"))
                    out.append(Sample("node_bcache_priority_stats_unused_percent", dev, unused, now))
                    out.append(Sample("node_bcache_priority_stats_metadata_percent", dev, metadata, now))


def _value(path: str) -> float:
    text = read_str(path)
    return dehumanize(text) if text else 0.0  # procfs: an absent file reads as 0


def _writeback_debug(path: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in (read_text_or_none(path) or "").splitlines():
        key, sep, rest = line.partition(":")
        words = rest.split()
        if sep and words and key in ("rate", "dirty", "target", "proportional", "integral", "change"):
            out[key] = dehumanize(words[-1].removesuffix("/sec"))
    return out


def _priority_stats(path: str) -> tuple[float, float]:
    unused = metadata = 0.0
    for line in (read_text_or_none(path) or "").splitlines():
        if line.startswith(("Unused:", "Metadata:")):
            value = float(line.split()[-1].rstrip("%"))
            if line.startswith("Unused:"):
                unused = value
            else:
                metadata = value
    return unused, metadata
