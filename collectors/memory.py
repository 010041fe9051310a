"""/proc/meminfo as node_exporter's `meminfo` collector: one gauge per field, plus used ratios.

Names follow node_exporter exactly: `Active(anon)` → `node_memory_Active_anon_bytes`; fields in kB
are converted to bytes and get `_bytes`, unit-less fields (`HugePages_Total`) keep their bare name.
The field set depends on the kernel, so each field's MetricDef is added the first time it is seen.

`hostwarden_memory_used_ratio` is 1 - MemAvailable/MemTotal (kernels before 3.14 have no
MemAvailable: MemFree + Buffers + Cached stands in). `hostwarden_swap_used_ratio` is
1 - SwapFree/SwapTotal, and 0 on a machine without swap.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.procfs import read_text

_PAREN = re.compile(r"\((.*)\)")


@dataclass(frozen=True)
class MemoryConfig(CollectorConfig):
    pass


def metric_name(field: str, has_unit: bool) -> str:
    """node_exporter's name for a meminfo field."""
    key = _PAREN.sub(r"_\1", field)
    return f"node_memory_{key}_bytes" if has_unit else f"node_memory_{key}"


@register("memory")
class MemoryCollector:
    Config = MemoryConfig

    def __init__(self, config: MemoryConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or MemoryConfig()
        self._path = os.path.join(proc_root, "meminfo")
        self.metrics: dict[str, MetricDef] = metric_defs(
            MetricDef("hostwarden_memory_used_ratio", "gauge",
                      "Fraction of memory in use: 1 - MemAvailable / MemTotal."),
            MetricDef("hostwarden_swap_used_ratio", "gauge", "Fraction of swap in use (0 without swap)."),
        )
        self._names: dict[str, tuple[str, float]] = {}  # "Active(anon)" -> (name, multiplier)

    def _name(self, key: str, has_unit: bool) -> tuple[str, float]:
        name = metric_name(key, has_unit)
        got = self._names[key] = (name, 1024.0 if has_unit else 1.0)
        if name not in self.metrics:
            help_text = f"Memory information field {name[len('node_memory_'):]}."
            self.metrics = {**self.metrics, name: MetricDef(name, "gauge", help_text)}
        return got

    def collect(self, now: float) -> Iterable[Sample]:
        names = self._names
        out: list[Sample] = []
        fields: dict[str, float] = {}
        for line in read_text(self._path).splitlines():
            key, sep, rest = line.partition(":")
            if not sep:
                continue
            vals = rest.split()
            if not vals:
                continue
            name, mult = names.get(key) or self._name(key, len(vals) > 1)
            fields[key] = value = float(vals[0]) * mult
            out.append(Sample(name, (), value, now))
        total = fields.get("MemTotal", 0.0)
        if total > 0:
            avail = fields.get("MemAvailable")
            if avail is None:
                avail = fields.get("MemFree", 0.0) + fields.get("Buffers", 0.0) + fields.get("Cached", 0.0)
            out.append(Sample("hostwarden_memory_used_ratio", (), _clamp(1.0 - avail / total), now))
        swap_total = fields.get("SwapTotal", 0.0)
        swap_used = 1.0 - fields.get("SwapFree", 0.0) / swap_total if swap_total > 0 else 0.0
        out.append(Sample("hostwarden_swap_used_ratio", (), _clamp(swap_used), now))
        return out


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
