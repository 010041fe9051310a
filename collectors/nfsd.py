"""NFS server statistics from /proc/net/rpc/nfsd as node_exporter 1.5's `nfsd` collector (reply
cache, file handles, disk bytes, threads, read-ahead cache, packets, RPC errors, requests per
procedure with procfs's Go method names; like node_exporter, the Null procedures and the v4
PutPubFH/PutRootFH operations are not reported). No NFS server → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.nfs import V2, V3, parse_rpc_lines, procedures
from hostwarden.collectors.sysfs import read_text_or_none

V4_OPS = (
    "Op0Unused", "Op1Unused", "Op2Future", "Access", "Close", "Commit", "Create", "DelegPurge", "DelegReturn",
    "GetAttr", "GetFH", "Link", "Lock", "Lockt", "Locku", "Lookup", "LookupRoot", "Nverify", "Open", "OpenAttr",
    "OpenConfirm", "OpenDgrd", "PutFH", "PutPubFH", "PutRootFH", "Read", "ReadDir", "ReadLink", "Remove", "Rename",
    "Renew", "RestoreFH", "SaveFH", "SecInfo", "SetAttr", "Verify", "Write", "RelLockOwner")
_SKIPPED = frozenset(("Null", "Op0Unused", "Op1Unused", "Op2Future", "PutPubFH", "PutRootFH"))

_SIMPLE = (  # (line, column, metric, help)
    ("rc", 0, "node_nfsd_reply_cache_hits_total", "Total number of NFSd Reply Cache hits (client lost server "
                                                  "response)."),
    ("rc", 1, "node_nfsd_reply_cache_misses_total", "Total number of NFSd Reply Cache an operation that requires "
                                                    "caching (idempotent)."),
    ("rc", 2, "node_nfsd_reply_cache_nocache_total", "Total number of NFSd Reply Cache non-idempotent operations "
                                                     "(rename/delete/…)."),
    ("fh", 0, "node_nfsd_file_handles_stale_total", "Total number of NFSd stale file handles"),
    ("io", 0, "node_nfsd_disk_bytes_read_total", "Total NFSd bytes read."),
    ("io", 1, "node_nfsd_disk_bytes_written_total", "Total NFSd bytes written."),
    ("th", 0, "node_nfsd_server_threads", "Total number of NFSd kernel threads that are running."),
    ("ra", 0, "node_nfsd_read_ahead_cache_size_blocks", "How large the read ahead cache is in blocks."),
    ("ra", 11, "node_nfsd_read_ahead_cache_not_found_total", "Total number of NFSd read ahead cache not found."),
    ("net", 3, "node_nfsd_connections_total", "Total number of NFSd TCP connections."),
    ("rpc", 0, "node_nfsd_server_rpcs_total", "Total number of NFSd RPCs."),
)


@dataclass(frozen=True)
class NfsdConfig(CollectorConfig):
    pass


@register("nfsd")
class NfsdCollector:
    Config = NfsdConfig
    metrics = metric_defs(
        *(MetricDef(name, "gauge" if not name.endswith("_total") else "counter", text)
          for _, _, name, text in _SIMPLE),
        MetricDef("node_nfsd_packets_total", "counter", "Total NFSd network packets (sent+received) by protocol type.",
                  ("proto",)),
        MetricDef("node_nfsd_rpc_errors_total", "counter", "Total number of NFSd RPC errors by error type.",
                  ("error",)),
        MetricDef("node_nfsd_requests_total", "counter", "Total number NFSd Requests by method and protocol.",
                  ("method", "proto")),
    )

    def __init__(self, config: NfsdConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or NfsdConfig()
        self._path = os.path.join(proc_root, "net", "rpc", "nfsd")

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_text_or_none(self._path)
        if text is None:
            return []
        lines = parse_rpc_lines(text)
        out: list[Sample] = []
        for key, col, name, _ in _SIMPLE:
            values = lines.get(key) or []
            out.append(Sample(name, (), float(values[col]) if col < len(values) else 0.0, now))
        net = lines.get("net") or [0, 0, 0, 0]
        out.append(Sample("node_nfsd_packets_total", (("proto", "udp"),), float(net[1]), now))
        out.append(Sample("node_nfsd_packets_total", (("proto", "tcp"),), float(net[2]), now))
        rpc = lines.get("rpc") or [0, 0, 0, 0, 0]
        for col, error in ((2, "fmt"), (3, "auth"), (4, "cInt")):
            out.append(Sample("node_nfsd_rpc_errors_total", (("error", error),), float(rpc[col]), now))
        for proto, key, names in (("2", "proc2", V2), ("3", "proc3", V3), ("4", "proc4ops", V4_OPS)):
            counts = dict(procedures(lines.get(key), names))
            for method in names:
                if method not in _SKIPPED:
                    out.append(Sample("node_nfsd_requests_total", (("method", method), ("proto", proto)),
                                      float(counts.get(method, 0)), now))
        return out
