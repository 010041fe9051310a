"""NFS client RPC statistics from /proc/net/rpc/nfs as node_exporter 1.5's `nfs` collector:
packets by protocol, TCP connections, RPCs, retransmissions, auth refreshes and requests per
procedure (`method` is procfs's Go field name, e.g. GetAttr, so dashboards match). No NFS client
module → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import read_text_or_none

V2 = ("Null", "GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write", "Create", "Remove",
      "Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat")
V3 = ("Null", "GetAttr", "SetAttr", "Lookup", "Access", "ReadLink", "Read", "Write", "Create", "MkDir", "SymLink",
      "MkNod", "Remove", "RmDir", "Rename", "Link", "ReadDir", "ReadDirPlus", "FsStat", "FsInfo", "PathConf", "Commit")
CLIENT_V4 = (
    "Null", "Read", "Write", "Commit", "Open", "OpenConfirm", "OpenNoattr", "OpenDowngrade", "Close", "Setattr",
    "FsInfo", "Renew", "SetClientID", "SetClientIDConfirm", "Lock", "Lockt", "Locku", "Access", "Getattr", "Lookup",
    "LookupRoot", "Remove", "Rename", "Link", "Symlink", "Create", "Pathconf", "StatFs", "ReadLink", "ReadDir",
    "ServerCaps", "DelegReturn", "GetACL", "SetACL", "FsLocations", "ReleaseLockowner", "Secinfo", "FsidPresent",
    "ExchangeID", "CreateSession", "DestroySession", "Sequence", "GetLeaseTime", "ReclaimComplete", "LayoutGet",
    "GetDeviceInfo", "LayoutCommit", "LayoutReturn", "SecinfoNoName", "TestStateID", "FreeStateID", "GetDeviceList",
    "BindConnToSession", "DestroyClientID", "Seek", "Allocate", "DeAllocate", "LayoutStats", "Clone")


def parse_rpc_lines(text: str) -> dict[str, list[int]]:
    """`label v1 v2 …` per line (the format of both /proc/net/rpc/nfs and nfsd); nfsd's `th` line
    keeps its two counters (the rest are obsolete histogram floats)."""
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = [int(x) for x in (parts[1:3] if parts[0] == "th" else parts[1:])]
    return out


def procedures(values: list[int] | None, names: tuple[str, ...], *, pad: bool = False) -> list[tuple[str, int]]:
    """(method, count) of a `procN count v…` line; a short line is invalid unless `pad` (v4 client lines
    from older kernels), which fills the missing procedures with 0 as procfs does."""
    if not values:
        return []
    counts = values[1:]
    if len(counts) != values[0]:
        raise ValueError(f"nfs: procedure line announces {values[0]} values, has {len(counts)}")
    if len(counts) < len(names):
        if not pad:
            raise ValueError(f"nfs: procedure line has {len(counts)} values, expected {len(names)}")
        counts = counts + [0] * (len(names) - len(counts))
    return list(zip(names, counts, strict=False))


@dataclass(frozen=True)
class NfsConfig(CollectorConfig):
    pass


@register("nfs")
class NfsCollector:
    Config = NfsConfig
    metrics = metric_defs(
        MetricDef("node_nfs_packets_total", "counter", "Total NFSd network packets (sent+received) by protocol type.",
                  ("protocol",)),
        MetricDef("node_nfs_connections_total", "counter", "Total number of NFSd TCP connections."),
        MetricDef("node_nfs_rpcs_total", "counter", "Total number of RPCs performed."),
        MetricDef("node_nfs_rpc_retransmissions_total", "counter", "Number of RPC transmissions performed."),
        MetricDef("node_nfs_rpc_authentication_refreshes_total", "counter",
                  "Number of RPC authentication refreshes performed."),
        MetricDef("node_nfs_requests_total", "counter", "Number of NFS procedures invoked.", ("method", "proto")),
    )

    def __init__(self, config: NfsConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or NfsConfig()
        self._path = os.path.join(proc_root, "net", "rpc", "nfs")

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_text_or_none(self._path)
        if text is None:
            return []
        lines = parse_rpc_lines(text)
        net = lines.get("net", [0, 0, 0, 0])
        rpc = lines.get("rpc", [0, 0, 0])
        out = [
            Sample("node_nfs_packets_total", (("protocol", "udp"),), float(net[1]), now),
            Sample("node_nfs_packets_total", (("protocol", "tcp"),), float(net[2]), now),
            Sample("node_nfs_connections_total", (), float(net[3]), now),
            Sample("node_nfs_rpcs_total", (), float(rpc[0]), now),
            Sample("node_nfs_rpc_retransmissions_total", (), float(rpc[1]), now),
            Sample("node_nfs_rpc_authentication_refreshes_total", (), float(rpc[2]), now),
        ]
        # node_exporter reports every version, zeros included, even when the kernel has no such line
        for proto, key, names, pad in (("2", "proc2", V2, False), ("3", "proc3", V3, False),
                                       ("4", "proc4", CLIENT_V4, True)):
            counts = dict(procedures(lines.get(key), names, pad=pad))
            for method in names:
                out.append(Sample("node_nfs_requests_total", (("method", method), ("proto", proto)),
                                  float(counts.get(method, 0)), now))
        return out
