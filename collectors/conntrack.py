"""Connection tracking table use, as node_exporter's `conntrack` collector (`node_nf_conntrack_*`).

Entries and the limit come from /proc/sys/net/netfilter/nf_conntrack_{count,max}; the statistics
from /proc/net/stat/nf_conntrack, one line of hexadecimal counters per cpu, summed over cpus and
read by position as node_exporter's procfs does. All are gauges, as in node_exporter 1.5. Without
the nf_conntrack module the files are absent and nothing is reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional

# column of /proc/net/stat/nf_conntrack → metric (column 16, search_restart, exists since Linux 2.6.35)
STAT_COLUMNS = ((2, "found"), (4, "invalid"), (5, "ignore"), (8, "insert"), (9, "insert_failed"), (10, "drop"),
                (11, "early_drop"), (16, "search_restart"))
STAT_HELP = {
    "found": "Number of searched entries which were successful.",
    "invalid": "Number of packets seen which can not be tracked.",
    "ignore": "Number of packets seen which are already connected to a conntrack entry.",
    "insert": "Number of entries inserted into the list.",
    "insert_failed": "Number of entries for which list insertion was attempted but failed.",
    "drop": "Number of packets dropped due to conntrack failure.",
    "early_drop": "Number of dropped conntrack entries to make room for new ones, if maximum table size was "
                  "reached.",
    "search_restart": "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
}


@dataclass(frozen=True)
class ConntrackConfig(CollectorConfig):
    pass


@register("conntrack")
class ConntrackCollector:
    Config = ConntrackConfig
    metrics = metric_defs(
        MetricDef("node_nf_conntrack_entries", "gauge",
                  "Number of currently allocated flow entries for connection tracking."),
        MetricDef("node_nf_conntrack_entries_limit", "gauge", "Maximum size of connection tracking table."),
        *(MetricDef(f"node_nf_conntrack_stat_{k}", "gauge", h) for k, h in STAT_HELP.items()),
    )

    def __init__(self, config: ConntrackConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or ConntrackConfig()
        base = os.path.join(proc_root, "sys", "net", "netfilter")
        self._count = os.path.join(base, "nf_conntrack_count")
        self._max = os.path.join(base, "nf_conntrack_max")
        self._stat = os.path.join(proc_root, "net", "stat", "nf_conntrack")

    def collect(self, now: float) -> Iterable[Sample]:
        count = read_optional(self._count)
        if count is None:
            return []
        out = [Sample("node_nf_conntrack_entries", (), float(int(count)), now)]
        limit = read_optional(self._max)
        if limit is not None:
            out.append(Sample("node_nf_conntrack_entries_limit", (), float(int(limit)), now))
        stat = read_optional(self._stat)
        if stat is not None:
            sums = [0] * 17
            for line in stat.splitlines()[1:]:
                cols = line.split()
                if not 16 <= len(cols) <= 17:
                    raise ValueError(f"{self._stat}: {len(cols)} columns, expected 16 or 17")
                for i, raw in enumerate(cols):
                    sums[i] += int(raw, 16)
            for col, key in STAT_COLUMNS:
                out.append(Sample(f"node_nf_conntrack_stat_{key}", (), float(sums[col]), now))
        return out
