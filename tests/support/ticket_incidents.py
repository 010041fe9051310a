"""Incidents for the ticket-backend tests: real `Alert`/`Incident` values, unique fingerprints per call."""

from __future__ import annotations

import itertools
from typing import Any

from hostwarden.agent.core.alert import Alert, AlertState
from hostwarden.agent.core.incident import Incident, TimelineEntry

_seq = itertools.count(1)
T0 = 1_700_000_000.0


def make_incident(*, rule: str = "DiskAlmostFull", priority: str = "P2", labels: dict[str, str] | None = None,
                  diagnosis: str = "", annotations: dict[str, str] | None = None, **kw: Any) -> Incident:
    """A firing incident; each call gets a distinct `instance` label, hence a distinct fingerprint."""
    n = next(_seq)
    lab = {"host": "web1", "mountpoint": "/srv", "instance": f"case-{n}"} | (labels or {})
    labels_t = tuple(sorted(lab.items()))
    alert = Alert(rule=rule, group="disk", labels=(*labels_t, ("alertname", rule)), identity=labels_t,
                  state=AlertState.FIRING, severity="critical", value=0.97, active_since=T0, fired_at=T0 + 60,
                  annotations=tuple((annotations or {"summary": "filesystem /srv is 97% full"}).items()),
                  category="disk", threshold="> 0.95", expr="fs_used_ratio > 0.95", source="rules/disk.yaml:3")
    fields: dict[str, Any] = dict(
        fingerprint=alert.fingerprint, alert=alert, title=f"{rule} on {lab['host']} ({lab['instance']})",
        priority=priority, category="disk", host=lab["host"], labels=labels_t, opened_at=T0 + 60,
        diagnosis=diagnosis, timeline=(TimelineEntry(T0 + 60, "opened", "fired: 0.97 > 0.95"),))
    fields.update(kw)
    return Incident(**fields)
