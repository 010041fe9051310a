"""Priority (P1–P4) from severity × category, and the SLA targets each priority carries.

The matrix is data: `tickets.priorities` in the config overrides cells of DEFAULT_MATRIX per severity,
`tickets.default_priority` covers anything the matrix does not name, and an alert label `priority: P1`
(set by the rule's `labels:`) wins over both. Each priority has an acknowledge and a resolve target;
the incident layer turns them into deadlines and the local ticket store and `hostwarden report`
count breaches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4")

# severity -> category -> priority; "default" is the severity's fallback for any other category.
DEFAULT_MATRIX: dict[str, dict[str, str]] = {
    "critical": {"availability": "P1", "security": "P1", "default": "P2"},
    "warning": {"security": "P2", "default": "P3"},
    "info": {"default": "P4"},
}
DEFAULT_PRIORITY = "P3"


@dataclass(frozen=True, slots=True)
class Sla:
    acknowledge: float  # seconds from the incident's start until someone should acknowledge it
    resolve: float  # seconds from the incident's start until it should be resolved


DEFAULT_SLA: dict[str, Sla] = {
    "P1": Sla(acknowledge=15 * 60, resolve=4 * 3600),
    "P2": Sla(acknowledge=3600, resolve=86400),
    "P3": Sla(acknowledge=4 * 3600, resolve=3 * 86400),
    "P4": Sla(acknowledge=86400, resolve=7 * 86400),
}


@dataclass(frozen=True)
class PriorityPolicy:
    matrix: Mapping[str, Mapping[str, str]]
    default: str
    sla: Mapping[str, Sla]

    def priority(self, severity: str, category: str, labels: Mapping[str, str] | None = None) -> str:
        override = (labels or {}).get("priority", "").upper()
        if override in PRIORITIES:
            return override
        row = self.matrix.get(severity.lower())
        if row is None:
            return self.default
        return row.get(category.lower()) or row.get("default") or self.default

    def targets(self, priority: str) -> Sla:
        return self.sla.get(priority) or self.sla.get(self.default) or DEFAULT_SLA[DEFAULT_PRIORITY]

    def deadlines(self, priority: str, start: float) -> tuple[float, float]:
        """(acknowledge by, resolve by) as timestamps for an incident that started at `start`."""
        t = self.targets(priority)
        return start + t.acknowledge, start + t.resolve


def build_policy(matrix: Mapping[str, Mapping[str, str]] | None = None, default: str | None = None,
                 sla: Mapping[str, tuple[float | None, float | None]] | None = None) -> PriorityPolicy:
    """Merge configured cells and targets over the defaults (a configured severity row adds to the default row)."""
    merged: dict[str, dict[str, str]] = {sev: dict(row) for sev, row in DEFAULT_MATRIX.items()}
    for sev, row in (matrix or {}).items():
        merged.setdefault(sev.lower(), {}).update({cat.lower(): p for cat, p in row.items()})
    targets = dict(DEFAULT_SLA)
    for prio, (ack, res) in (sla or {}).items():
        base = targets.get(prio, DEFAULT_SLA[DEFAULT_PRIORITY])
        targets[prio] = Sla(acknowledge=base.acknowledge if ack is None else float(ack),
                            resolve=base.resolve if res is None else float(res))
    return PriorityPolicy(matrix=merged, default=default or DEFAULT_PRIORITY, sla=targets)
