"""File handles from /proc/sys/fs/file-nr, as node_exporter's `filefd` collector.

The file holds "allocated  unused  maximum"; node_exporter exposes the first and the last.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional


@dataclass(frozen=True)
class FilefdConfig(CollectorConfig):
    pass


@register("filefd")
class FilefdCollector:
    Config = FilefdConfig
    metrics = metric_defs(
        MetricDef("node_filefd_allocated", "gauge", "File descriptor statistics: allocated."),
        MetricDef("node_filefd_maximum", "gauge", "File descriptor statistics: maximum."),
    )

    def __init__(self, config: FilefdConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or FilefdConfig()
        self._path = os.path.join(proc_root, "sys", "fs", "file-nr")

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_optional(self._path)
        if text is None:
            return []
        parts = text.split()
        if len(parts) < 3:
            raise ValueError(f"{self._path}: expected 3 fields, got {text.strip()!r}")
        return [Sample("node_filefd_allocated", (), float(int(parts[0])), now),
                Sample("node_filefd_maximum", (), float(int(parts[2])), now)]
