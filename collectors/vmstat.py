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
        self._names: dict[str, str | None] = {}  # field -> metric name, None when not selected
        self.metrics: dict[str, MetricDef] = {}

    def _name(self, field: str) -> str | None:
        name = None
        if self._fields.search(field):
            name = f"node_vmstat_{field}"
            self.metrics = {**self.metrics,
                            name: MetricDef(name, "untyped", f"/proc/vmstat information field {field}.")}
        self._names[field] = name
        return name

    def collect(self, now: float) -> Iterable[Sample]:
        text = read_optional(self._path)
        if text is None:
            return []
        names = self._names
        out = []
        for line in text.splitlines():
            field, _, value = line.partition(" ")
            name = names[field] if field in names else self._name(field)
            if name is not None:
                out.append(Sample(name, (), float(value), now))
        return out
