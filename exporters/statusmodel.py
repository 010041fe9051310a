"""What the status page and `hostwarden status` show: one frozen snapshot of the agent, and its JSON.

Built by the agent (agent/webview.py) from read-only accessors, rendered by exporters/status_page.py
as HTML and served as JSON at STATUS_JSON_PATH for `hostwarden status` (agent/cmd_status.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hostwarden.rules.chartdata import ChartSeries, ThresholdLine
from hostwarden.rules.status import AlertStatus, GroupStatus

STATUS_JSON_PATH = "/api/hostwarden/v1/status"
CHECK_STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


@dataclass(frozen=True, slots=True)
class TicketLink:
    backend: str
    ticket_id: str
    url: str
    incident_id: int
    status: str  # the incident's: open, resolved


@dataclass(frozen=True, slots=True)
class Chart:
    series: tuple[ChartSeries, ...]
    thresholds: tuple[ThresholdLine, ...]
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    name: str
    group: str
    alert: AlertStatus
    ticket: TicketLink | None = None
    silenced: str | None = None  # what silences it ("" nothing); None: unknown (the agent has no silences)
    chart: Chart | None = None

    @property
    def summary(self) -> str:
        return dict(self.alert.annotations).get("summary", "")


@dataclass(frozen=True, slots=True)
class CheckRow:
    name: str
    type: str
    ok: bool | None  # None: not run yet
    status: int  # Nagios code
    message: str

    @property
    def state(self) -> str:
        return "PENDING" if self.ok is None else CHECK_STATES.get(self.status, "UNKNOWN")


@dataclass(frozen=True, slots=True)
class IncidentRow:
    incident_id: int
    rule: str
    title: str
    severity: str
    status: str
    opened_at: float
    resolved_at: float | None
    ticket: TicketLink | None


@dataclass(frozen=True, slots=True)
class CollectorRow:
    name: str
    success: bool
    duration: float
    failures: int
    last_error: str


@dataclass(frozen=True, slots=True)
class OutboxRow:
    backend: str
    pending: int
    oldest_age: float
    dead: int


@dataclass(frozen=True, slots=True)
class Health:
    version: str
    started_at: float
    last_reload_ok: bool
    last_reload_at: float
    collectors: tuple[CollectorRow, ...]
    outbox: tuple[OutboxRow, ...]
    store_series: int
    state_degraded: bool = False


@dataclass(frozen=True, slots=True)
class Summary:
    now: float
    hostname: str
    alerts: tuple[ActiveAlert, ...]
    checks: tuple[CheckRow, ...]
    incidents: tuple[IncidentRow, ...]  # the last 24 h, oldest first
    health: Health
    groups: tuple[GroupStatus, ...]
    silences: bool = False  # whether the agent knows silences (the column is shown)
    window: float = 86400.0


def _labels(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(sorted(pairs))


def _ticket(t: TicketLink | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"backend": t.backend, "id": t.ticket_id, "url": t.url, "incident": t.incident_id, "status": t.status}


def summary_json(s: Summary) -> dict[str, Any]:
    """The summary as JSON (what `hostwarden status` reads); charts are left out."""
    return {
        "now": s.now, "hostname": s.hostname, "silences": s.silences,
        "alerts": [{"name": a.name, "group": a.group, "state": a.alert.state, "severity": a.alert.severity,
                    "activeAt": a.alert.active_at, "firedAt": a.alert.fired_at, "value": _num(a.alert.value),
                    "threshold": a.alert.threshold, "labels": _labels(a.alert.labels),
                    "summary": a.summary, "fingerprint": a.alert.fingerprint, "silenced": a.silenced,
                    "ticket": _ticket(a.ticket)} for a in s.alerts],
        "checks": [{"name": c.name, "type": c.type, "state": c.state, "message": c.message} for c in s.checks],
        "incidents": [{"id": i.incident_id, "rule": i.rule, "title": i.title, "severity": i.severity,
                       "status": i.status, "openedAt": i.opened_at, "resolvedAt": i.resolved_at,
                       "ticket": _ticket(i.ticket)} for i in s.incidents],
        "health": {"version": s.health.version, "startedAt": s.health.started_at,
                   "lastReloadSuccessful": s.health.last_reload_ok, "lastReloadAt": s.health.last_reload_at,
                   "storeSeries": s.health.store_series, "stateDegraded": s.health.state_degraded,
                   "collectors": [{"name": c.name, "success": c.success, "duration": c.duration,
                                   "failures": c.failures, "lastError": c.last_error} for c in s.health.collectors],
                   "outbox": [{"backend": o.backend, "pending": o.pending, "oldestAge": o.oldest_age,
                               "dead": o.dead} for o in s.health.outbox]},
        "rules": {"groups": len(s.groups), "rules": sum(len(g.rules) for g in s.groups),
                  "unhealthy": [{"group": g.name, "rule": r.name, "error": r.last_error}
                                for g in s.groups for r in g.rules if r.health == "err"]},
    }


def _num(v: float) -> float | str:
    return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)
