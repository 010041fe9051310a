"""Per-filesystem XFS statistics from /sys/fs/xfs/<device>/stats/stats as node_exporter 1.5's `xfs`
collector (the counters it exports, same names). No mounted XFS filesystem → nothing (the global
/sys/fs/xfs/stats is not per device and, as in node_exporter, not reported).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import listdir, read_text_or_none

# stats line → metric suffix per column (None: a column node_exporter does not export)
COLUMNS: dict[str, tuple[tuple[str | None, str], ...]] = {
    "extent_alloc": (
        ("extent_allocation_extents_allocated", "Number of extents allocated for a filesystem."),
        ("extent_allocation_blocks_allocated", "Number of blocks allocated for a filesystem."),
        ("extent_allocation_extents_freed", "Number of extents freed for a filesystem."),
        ("extent_allocation_blocks_freed", "Number of blocks freed for a filesystem.")),
    "abt": (
        ("allocation_btree_lookups", "Number of allocation B-tree lookups for a filesystem."),
        ("allocation_btree_compares", "Number of allocation B-tree compares for a filesystem."),
        ("allocation_btree_records_inserted", "Number of allocation B-tree records inserted for a filesystem."),
        ("allocation_btree_records_deleted", "Number of allocation B-tree records deleted for a filesystem.")),
    "blk_map": (
        ("block_mapping_reads", "Number of block map for read operations for a filesystem."),
        ("block_mapping_writes", "Number of block map for write operations for a filesystem."),
        ("block_mapping_unmaps", "Number of block unmaps (deletes) for a filesystem."),
        ("block_mapping_extent_list_insertions", "Number of extent list insertions for a filesystem."),
        ("block_mapping_extent_list_deletions", "Number of extent list deletions for a filesystem."),
        ("block_mapping_extent_list_lookups", "Number of extent list lookups for a filesystem."),
        ("block_mapping_extent_list_compares", "Number of extent list compares for a filesystem.")),
    "bmbt": (
        ("block_map_btree_lookups", "Number of block map B-tree lookups for a filesystem."),
        ("block_map_btree_compares", "Number of block map B-tree compares for a filesystem."),
        ("block_map_btree_records_inserted", "Number of block map B-tree records inserted for a filesystem."),
        ("block_map_btree_records_deleted", "Number of block map B-tree records deleted for a filesystem.")),
    "dir": (
        ("directory_operation_lookup", "Number of file name directory lookups which miss the operating systems "
                                       "directory name lookup cache."),
        ("directory_operation_create", "Number of times a new directory entry was created for a filesystem."),
        ("directory_operation_remove", "Number of times an existing directory entry was created for a filesystem."),
        ("directory_operation_getdents", "Number of times the directory getdents operation was performed for a "
                                         "filesystem.")),
    "ig": (
        ("inode_operation_attempts", "Number of times the OS looked for an XFS inode in the inode cache."),
        ("inode_operation_found", "Number of times the OS looked for and found an XFS inode in the inode cache."),
        ("inode_operation_recycled", "Number of times the OS found an XFS inode in the cache, but could not use it "
                                     "as it was being recycled."),
        ("inode_operation_missed", "Number of times the OS looked for an XFS inode in the cache, but did not find "
                                   "it."),
        ("inode_operation_duplicates", "Number of times the OS tried to add a missing XFS inode to the inode cache, "
                                       "but found it had already been added by another process."),
        ("inode_operation_reclaims", "Number of times the OS reclaimed an XFS inode from the inode cache to free "
                                     "memory for another purpose."),
        ("inode_operation_attribute_changes", "Number of times the OS explicitly changed the attributes of an XFS "
                                              "inode.")),
    "rw": (  # the kernel writes the write count first
        ("write_calls", "Number of write(2) system calls made to files in a filesystem."),
        ("read_calls", "Number of read(2) system calls made to files in a filesystem.")),
    "vnodes": (
        ("vnode_active", "Number of vnodes not on free lists for a filesystem."),
        ("vnode_allocate", "Number of times vn_alloc called for a filesystem."),
        ("vnode_get", "Number of times vn_get called for a filesystem."),
        ("vnode_hold", "Number of times vn_hold called for a filesystem."),
        ("vnode_release", "Number of times vn_rele called for a filesystem."),
        ("vnode_reclaim", "Number of times vn_reclaim called for a filesystem."),
        ("vnode_remove", "Number of times vn_remove called for a filesystem.")),
}


@dataclass(frozen=True)
class XfsConfig(CollectorConfig):
    pass


@register("xfs")
class XfsCollector:
    Config = XfsConfig
    metrics = metric_defs(*(MetricDef(f"node_xfs_{suffix}_total", "counter", text, ("device",))
                            for cols in COLUMNS.values() for suffix, text in cols))

    def __init__(self, config: XfsConfig | None = None, *, sys_root: str = "/sys") -> None:
        self.config = config or XfsConfig()
        self._dir = os.path.join(sys_root, "fs", "xfs")
        self._names = {key: tuple(f"node_xfs_{s}_total" for s, _ in cols) for key, cols in COLUMNS.items()}

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        for device in listdir(self._dir):
            text = read_text_or_none(os.path.join(self._dir, device, "stats", "stats"))
            if text is None:
                continue
            labels = (("device", device),)
            for line in text.splitlines():
                parts = line.split()
                names = self._names.get(parts[0]) if parts else None
                if names is None or len(parts) - 1 < len(names):
                    continue
                for name, raw in zip(names, parts[1:], strict=False):
                    out.append(Sample(name, labels, float(raw), now))
        return out
