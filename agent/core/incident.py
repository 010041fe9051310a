"""The incident value and what a ticket backend answers: shared by the incident layer, backends and the API.

`TransientError` / `PermanentError` are how a backend says whether to retry; `TicketRef` names a ticket in a
backend; `Incident` is the snapshot a backend renders. `incident_to_dict` / `incident_from_dict` are the one JSON
codec for incidents (outbox payloads and incident rows); alerts inside go through agent.core.alert's codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hostwarden.agent.core.alert import Alert, alert_from_dict, alert_to_dict
from hostwarden.agent.core.samples import Labels


class TransientError(Exception):
    """Timeouts, connection refused, 5xx, 429: retry later. `retry_after` seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Bad credentials, validation errors (400/401/403/404/422): dead-letter, count, log once."""


@dataclass(frozen=True, slots=True)
class TicketRef:
    backend: str  # the backend's configured name
    id: str
    url: str = ""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: float
    kind: str  # opened | updated | escalated | deescalated | flapping | resolved | reopened | acknowledged | comment
    text: str


@dataclass(frozen=True)
class Incident:
    """What a backend needs to render and file a ticket: a snapshot, never mutated in place."""

    fingerprint: str
    alert: Alert
    title: str
    priority: str  # P1..P4
    category: str
    host: str
    labels: Labels  # identity labels + external labels
    opened_at: float
    diagnosis: str = ""  # plain text (markdown-safe), bounded in size
    ticket_ref: TicketRef | None = None
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    reopen_count: int = 0
    timeline: tuple[TimelineEntry, ...] = ()
    storm_of: tuple[str, ...] = ()  # for a storm ticket: the fingerprints it groups
    extra_fields: dict[str, Any] = field(default_factory=dict)  # backend field mapping results


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """What polling a ticket tells us (two-way sync)."""

    ref: TicketRef
    state: Literal["open", "acknowledged", "resolved", "closed", "missing"]
    assignee: str = ""
    changed_at: float | None = None


def _labels(pairs: Any) -> Labels:
    return tuple((str(k), str(v)) for k, v in pairs)


def incident_to_dict(i: Incident) -> dict[str, Any]:
    return {
        "fingerprint": i.fingerprint, "alert": alert_to_dict(i.alert), "title": i.title, "priority": i.priority,
        "category": i.category, "host": i.host, "labels": [list(p) for p in i.labels], "opened_at": i.opened_at,
        "diagnosis": i.diagnosis, "acknowledged_at": i.acknowledged_at, "resolved_at": i.resolved_at,
        "reopen_count": i.reopen_count, "timeline": [[e.at, e.kind, e.text] for e in i.timeline],
        "storm_of": list(i.storm_of), "extra_fields": i.extra_fields,
    }


def incident_from_dict(d: dict[str, Any]) -> Incident:
    return Incident(
        fingerprint=d["fingerprint"], alert=alert_from_dict(d["alert"]), title=d["title"], priority=d["priority"],
        category=d.get("category", ""), host=d.get("host", ""), labels=_labels(d.get("labels", ())),
        opened_at=float(d["opened_at"]), diagnosis=d.get("diagnosis", ""), acknowledged_at=d.get("acknowledged_at"),
        resolved_at=d.get("resolved_at"), reopen_count=int(d.get("reopen_count", 0)),
        timeline=tuple(TimelineEntry(float(at), str(kind), str(text)) for at, kind, text in d.get("timeline", ())),
        storm_of=tuple(d.get("storm_of", ())), extra_fields=dict(d.get("extra_fields") or {}),
    )
