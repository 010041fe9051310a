"""Kernel entropy pool from /proc/sys/kernel/random, as node_exporter's `entropy` collector."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional

FILES = (("entropy_avail", "node_entropy_available_bits"), ("poolsize", "node_entropy_pool_size_bits"))


@dataclass(frozen=True)
class EntropyConfig(CollectorConfig):
    pass


@register("entropy")
class EntropyCollector:
    Config = EntropyConfig
    metrics = metric_defs(
        MetricDef("node_entropy_available_bits", "gauge", "Bits of available entropy."),
        MetricDef("node_entropy_pool_size_bits", "gauge", "Bits of entropy pool."),
    )

    def __init__(self, config: EntropyConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or EntropyConfig()
        base = os.path.join(proc_root, "sys", "kernel", "random")
        self._files = tuple((os.path.join(base, f), name) for f, name in FILES)

    def collect(self, now: float) -> Iterable[Sample]:
        out = []
        for path, name in self._files:
            text = read_optional(path)
            if text is not None:
                out.append(Sample(name, (), float(int(text)), now))
        return out
