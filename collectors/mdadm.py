"""Software RAID from /proc/mdstat as node_exporter 1.5's `mdadm` collector (procfs 0.8 parsing):
state one-hot over active/inactive/recovering/resync/check, disks by state, required disks, blocks
and blocks synced. No md driver (no /proc/mdstat) → nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import read_text_or_none

_STATUS = re.compile(r"(\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]")
_SYNCED = re.compile(r"\((\d+)/\d+\)")
# procfs activity state → node_exporter's state label
_STATES = (("active", "active"), ("inactive", "inactive"), ("recovering", "recovering"), ("resyncing", "resync"),
           ("checking", "check"))


@dataclass(frozen=True)
class MdStat:
    name: str
    state: str
    active: int
    total: int
    failed: int
    spare: int
    blocks: int
    synced: int


@dataclass(frozen=True)
class MdadmConfig(CollectorConfig):
    pass


def parse_mdstat(text: str) -> list[MdStat]:
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip() or line[0] == " " or line.startswith(("Personalities", "unused")):
            continue
        fields = line.split()
        if len(fields) < 3 or len(lines) <= i + 3:
            raise ValueError(f"mdstat: cannot parse md device line {line!r}")
        name, state = fields[0], fields[2]
        failed, spare = line.count("(F)"), line.count("(S)")
        status = lines[i + 1].split()
        blocks = int(status[0])
        if "raid0" in line or "linear" in line:
            active = total = line.count("[")
        elif "inactive" in line:
            active = total = 0
        else:
            m = _STATUS.search(lines[i + 1])
            if m is None:
                raise ValueError(f"mdstat: cannot parse status line {lines[i + 1]!r}")
            total, active = int(m.group(2)), int(m.group(3))
        sync_line = lines[i + 3] if "bitmap" in lines[i + 2] else lines[i + 2]
        synced = blocks
        for word, new_state in (("recovery", "recovering"), ("check", "checking"), ("resync", "resyncing")):
            if word in sync_line:
                state = new_state
                if "PENDING" in sync_line or "DELAYED" in sync_line:
                    synced = 0
                else:
                    m = _SYNCED.search(sync_line)
                    if m is None:
                        raise ValueError(f"mdstat: cannot parse sync line {sync_line!r}")
                    synced = int(m.group(1))
                break
        out.append(MdStat(name, state, active, total, failed, spare, blocks, synced))
    return out


@register("mdadm")
class MdadmCollector:
    Config = MdadmConfig
    metrics = metric_defs(
        MetricDef("node_md_state", "gauge", "Indicates the state of md-device.", ("device", "state")),
        MetricDef("node_md_disks", "gauge", "Number of active/failed/spare disks of device.", ("device", "state")),
        MetricDef("node_md_disks_required", "gauge", "Total number of disks of device.", ("device",)),
        MetricDef("node_md_blocks", "gauge", "Total number of blocks on device.", ("device",)),
        MetricDef("node_md_blocks_synced", "gauge", "Number of blocks synced on device.", ("device",)),
    )

    def __init__(self, config: MdadmConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or MdadmConfig()
        self._path = os.path.join(proc_root, "mdstat")

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_text_or_none(self._path)
        if text is None:
            return []
        out: list[Sample] = []
        for md in parse_mdstat(text):
            dev = (("device", md.name),)
            out.append(Sample("node_md_disks_required", dev, float(md.total), now))
            for state, n in (("active", md.active), ("failed", md.failed), ("spare", md.spare)):
                out.append(Sample("node_md_disks", (("device", md.name), ("state", state)), float(n), now))
            for parsed, label in _STATES:
                out.append(Sample("node_md_state", (("device", md.name), ("state", label)),
                                  1.0 if md.state == parsed else 0.0, now))
            out.append(Sample("node_md_blocks", dev, float(md.blocks), now))
            out.append(Sample("node_md_blocks_synced", dev, float(md.synced), now))
        return out
