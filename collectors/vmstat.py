"""/proc/vmstat fields as node_exporter's `vmstat` collector: `node_vmstat_<field>`, untyped.

`fields` is node_exporter's `--collector.vmstat.fields` (searched in the field name; default of
node_exporter 1.5: page faults, major faults, paging and swapping in/out, OOM kills).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample
from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional

DEFAULT_FIELDS = r"^(oom_kill|pgpg|pswp|pg.*fault).*"


@dataclass(frozen=True)
class VmstatConfig(CollectorConfig):
    fields: Regex = Regex(DEFAULT_FIELDS)


@register("vmstat")
class VmstatCollector:
    Config = VmstatConfig

    def __init__(self, config: VmstatConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or VmstatConfig()
        self._path = os.path.join(proc_root, "vmstat")
        self._fields = re.compile(self.config.fields)
        self._names: dict[str, str] = {}  # selected field -> metric name
        self._pick: re.Pattern[str] | None = None  # matches exactly the selected fields' lines
        self.metrics: dict[str, MetricDef] = {}

    def _select(self, text: str) -> re.Pattern[str]:
        """First read: which fields the regex selects; later reads pick just those lines (one C-level scan)."""
        fields = [f for f in (line.partition(" ")[0] for line in text.splitlines()) if f and self._fields.search(f)]
        self._names = {f: f"node_vmstat_{f}" for f in fields}
        self.metrics = {n: MetricDef(n, "untyped", f"/proc/vmstat information field {f}.")
                        for f, n in self._names.items()}
        alternatives = "|".join(map(re.escape, fields)) or r"(?!)"
        self._pick = re.compile(rf"^({alternatives}) (\S+)$", re.M)
        return self._pick

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_optional(self._path)
        if text is None:
            return []
        pick = self._pick or self._select(text)
        names = self._names
        return [Sample(names[f], (), float(v), now) for f, v in pick.findall(text)]
