"""`node_uname_info` as node_exporter's `uname` collector: the uname(2) fields as labels, value 1.

Dashboards select hosts by it (Node Exporter Full's `$nodename`, the node-mixin's instance
selectors), so its label set is exactly node_exporter's: sysname, release, version, machine,
nodename, domainname. The NIS domain name is read from /proc/sys/kernel/domainname, which holds
what uname(2) returns ("(none)" when unset).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional


@dataclass(frozen=True)
class UnameConfig(CollectorConfig):
    pass


@register("uname")
class UnameCollector:
    Config = UnameConfig
    metrics = metric_defs(
        MetricDef("node_uname_info", "gauge", "Labeled system information as provided by the uname system call.",
                  ("domainname", "machine", "nodename", "release", "sysname", "version")),
    )

    def __init__(self, config: UnameConfig | None = None, *, proc_root: str = "/proc",
                 uname: Callable[[], os.uname_result] = os.uname) -> None:
        self.config = config or UnameConfig()
        self._domain_path = os.path.join(proc_root, "sys", "kernel", "domainname")
        self._uname = uname
        self._last: tuple[tuple[str, ...], Labels] = ((), ())

    def collect(self, now: float) -> Iterable[Sample]:
        u = self._uname()
        domain = (read_optional(self._domain_path) or "").strip() or "(none)"
        key = (u.sysname, u.release, u.version, u.machine, u.nodename, domain)
        if key != self._last[0]:  # the labels change only with the hostname: reuse the tuple
            labels = (("domainname", domain), ("machine", u.machine), ("nodename", u.nodename),
                      ("release", u.release), ("sysname", u.sysname), ("version", u.version))
            self._last = (key, labels)
        return [Sample("node_uname_info", self._last[1], 1.0, now)]
