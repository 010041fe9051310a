"""Real `Alert`/`Incident` values for the backend tests; each call gets its own fingerprint."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from hostwarden.agent.core.alert import Alert, AlertState
from hostwarden.agent.core.incident import Incident, TicketRef, TimelineEntry

T0 = 1_700_000_000.0
_seq = itertools.count(1)

# What someone who controls a label or a process name on the host could put there.
HOSTILE = "@admin #1 [~admin] <img src=x onerror=alert(1)> [code]<b>x</b>[/code] {noformat} ```\r\nBcc: x@evil"


def make_incident(*, rule: str = "FilesystemAlmostFull", priority: str = "P2", labels: dict[str, str] | None = None,
                  diagnosis: str = "top: /srv/data 41 GiB", severity: str = "critical", **kw: Any) -> Incident:
    n = next(_seq)
    lab = {"host": "web1", "mountpoint": "/srv", "instance": f"case-{n}"} | (labels or {})
    identity = tuple(sorted(lab.items()))
    alert = Alert(rule=rule, group="filesystem", labels=(*identity, ("alertname", rule), ("severity", severity)),
                  identity=identity, state=AlertState.FIRING, severity=severity, value=0.97, active_since=T0,
                  fired_at=T0 + 60, annotations=(("summary", f"{lab['mountpoint']} is 97% full"),),
                  category="disk", threshold="> 0.95", expr="hostwarden_filesystem_used_ratio > 0.95",
                  source="rules/disk.yaml:3")
    fields: dict[str, Any] = dict(
        fingerprint=alert.fingerprint, alert=alert, title=f"{rule} on {lab['host']} {lab['mountpoint']}",
        priority=priority, category="disk", host=lab["host"], labels=identity, opened_at=T0 + 60,
        diagnosis=diagnosis, timeline=(TimelineEntry(T0 + 60, "opened", "fired: 0.97 > 0.95"),))
    fields.update(kw)
    return Incident(**fields)


def resolved(incident: Incident, at: float = T0 + 600) -> Incident:
    return dataclasses.replace(incident, resolved_at=at,
                               alert=dataclasses.replace(incident.alert, state=AlertState.INACTIVE, resolved_at=at))


def with_ref(incident: Incident, ref: TicketRef) -> Incident:
    return dataclasses.replace(incident, ticket_ref=ref)
