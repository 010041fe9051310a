"""SELinux state as node_exporter 1.5's `selinux` collector (go-selinux semantics).

Enabled when selinuxfs is mounted (its `enforce` file is readable under <sys_root>/fs/selinux) and
this process has a context other than "kernel"; then `current_mode` is the enforce file (1
enforcing, 0 permissive) and `config_mode` the SELINUX= line of /etc/selinux/config (1 enforcing,
0 permissive, -1 disabled). Unlike the other optional collectors this one always reports
`node_selinux_enabled` (0 on a machine without SELinux), as node_exporter does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.sysfs import read_int, read_str, read_text_or_none

_MODES = {"enforcing": 1.0, "permissive": 0.0, "disabled": -1.0}


@dataclass(frozen=True)
class SelinuxConfig(CollectorConfig):
    pass


@register("selinux")
class SelinuxCollector:
    Config = SelinuxConfig
    metrics = metric_defs(
        MetricDef("node_selinux_config_mode", "gauge", "Configured SELinux enforcement mode"),
        MetricDef("node_selinux_current_mode", "gauge", "Current SELinux enforcement mode"),
        MetricDef("node_selinux_enabled", "gauge", "SELinux is enabled, 1 is true, 0 is false"),
    )

    def __init__(self, config: SelinuxConfig | None = None, *, sys_root: str = "/sys", proc_root: str = "/proc",
                 etc_root: str = "/etc") -> None:
        self.config = config or SelinuxConfig()
        self._enforce = os.path.join(sys_root, "fs", "selinux", "enforce")
        self._context = os.path.join(proc_root, "self", "attr", "current")
        self._config = os.path.join(etc_root, "selinux", "config")

    def collect(self, now: float) -> Iterable[Sample]:
        current = read_int(self._enforce)
        context = (read_str(self._context) or "").strip("\x00")
        if current is None or context in ("", "kernel"):
            return [Sample("node_selinux_enabled", (), 0.0, now)]
        return [
            Sample("node_selinux_enabled", (), 1.0, now),
            Sample("node_selinux_config_mode", (), self._config_mode(), now),
            Sample("node_selinux_current_mode", (), 1.0 if current == 1 else 0.0, now),
        ]

    def _config_mode(self) -> float:
        text = read_text_or_none(self._config) or ""
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key.strip() == "SELINUX":
                return _MODES.get(value.strip().strip("\"'").lower(), -1.0)
        return -1.0  # go-selinux: no config file → Disabled
