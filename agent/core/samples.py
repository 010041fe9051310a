"""The values that flow from collectors to the store, the rules and /metrics.

Labels are a sorted tuple of (name, value) pairs: hashable, cheap to compare, and the same
object can key the store, the exposition and alert fingerprints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]

METRIC_TYPES = ("counter", "gauge", "summary", "histogram", "untyped", "info", "stateset")


def labels_of(mapping: Mapping[str, object] | None = None, /, **kw: object) -> Labels:
    """Build a canonical label tuple; values are stringified, empty values dropped (as Prometheus does)."""
    items: dict[str, object] = dict(mapping or {})
    items.update(kw)
    return tuple(sorted((str(k), str(v)) for k, v in items.items() if v is not None and str(v) != ""))


def labels_dict(labels: Labels) -> dict[str, str]:
    return dict(labels)


def label_value(labels: Labels, key: str, default: str = "") -> str:
    """The value of `key` in a label tuple (a linear scan: label sets are small), or `default`."""
    for k, v in labels:
        if k == key:
            return v
    return default


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of one series. `timestamp` is Unix seconds (wall clock) of the collection."""

    name: str
    labels: Labels
    value: float
    timestamp: float

    def label(self, key: str, default: str = "") -> str:
        return label_value(self.labels, key, default)


@dataclass(frozen=True, slots=True)
class MetricDef:
    """What a collector emits: the family's full sample name (counters end in `_total`), type and help."""

    name: str
    type: str
    help: str
    labelnames: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.type not in METRIC_TYPES:
            raise ValueError(f"metric {self.name}: unknown type {self.type!r}")


def metric_defs(*defs: MetricDef) -> dict[str, MetricDef]:
    """A name → definition map, rejecting duplicates (a collector declaring a name twice is a bug)."""
    out: dict[str, MetricDef] = {}
    for d in defs:
        if d.name in out:
            raise ValueError(f"metric {d.name} declared twice")
        out[d.name] = d
    return out


def samples_by_name(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in samples:
        out.setdefault(s.name, []).append(s)
    return out
