"""Read-only snapshots of the loaded rule groups and their alerts, for the API and the status page.

`RuleManager.status()` builds them (the caller holds `store.lock`, which every evaluation holds
while it changes alert states); after that they are plain frozen values that can be rendered, sent
or compared without any lock. Times are Unix seconds, 0.0 for "never".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from hostwarden.agent.core.alert import AlertState
from hostwarden.agent.core.samples import Labels
from hostwarden.rules.engine import RuleState
from hostwarden.rules.model import RuleGroup


@dataclass(frozen=True, slots=True)
class AlertStatus:
    labels: Labels  # the alert's labels (series labels, rule labels, alertname, severity)
    annotations: tuple[tuple[str, str], ...]
    state: Literal["pending", "firing"]
    active_at: float
    value: float
    keep_firing_since: float | None
    severity: str
    threshold: str  # "> 0.9", or "" when the rule has none
    fingerprint: str
    fired_at: float | None = None
    flapping: bool = False


@dataclass(frozen=True, slots=True)
class RuleStatus:
    kind: Literal["alert", "record"]
    name: str
    query: str
    labels: Labels  # static labels as written
    annotations: tuple[tuple[str, str], ...]  # templates as written
    duration: float  # `for`
    keep_firing_for: float
    alerts: tuple[AlertStatus, ...]
    health: Literal["ok", "err", "unknown"]
    last_error: str
    evaluation_time: float
    last_evaluation: float
    source: str = ""

    @property
    def state(self) -> str:
        states = {a.state for a in self.alerts}
        return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"


@dataclass(frozen=True, slots=True)
class GroupStatus:
    name: str
    file: str
    interval: float
    limit: int
    rules: tuple[RuleStatus, ...]
    evaluation_time: float
    last_evaluation: float


def status_of_group(group: RuleGroup, stats: Any, states: dict[int, RuleState], errors: dict[int, str],
                    evals: dict[int, tuple[float, float]]) -> GroupStatus:
    """One group's snapshot from the rule manager's bookkeeping (`stats`: its GroupStats)."""
    rules = []
    for rule in group.rules:
        state = states.get(id(rule))
        last, took = evals.get(id(rule), (0.0, 0.0))
        error = errors.get(id(rule), "")
        rules.append(RuleStatus(
            kind=rule.kind, name=rule.name, query=rule.expr,
            labels=tuple((k, t.text) for k, t in rule.labels),
            annotations=tuple((k, t.text) for k, t in rule.annotations),
            duration=float(rule.for_), keep_firing_for=float(rule.keep_firing_for),
            alerts=tuple(_alerts(state)) if state is not None else (),
            health="err" if error else "ok" if last else "unknown", last_error=error,
            evaluation_time=took, last_evaluation=last, source=rule.source))
    return GroupStatus(name=group.name, file=group.file, interval=float(group.interval), limit=int(group.limit),
                       rules=tuple(rules), evaluation_time=float(stats.duration),
                       last_evaluation=float(stats.last_evaluation))


def _alerts(state: RuleState) -> list[AlertStatus]:
    out = []
    for rec in list(state.alerts.values()):
        if rec.state is AlertState.INACTIVE:
            continue
        alert = state.snapshot(rec)
        out.append(AlertStatus(labels=alert.labels, annotations=alert.annotations,
                               state="firing" if rec.state is AlertState.FIRING else "pending",
                               active_at=rec.active_since, value=rec.value, keep_firing_since=rec.keep_firing_since,
                               severity=alert.severity, threshold=alert.threshold, fingerprint=alert.fingerprint,
                               fired_at=rec.fired_at, flapping=rec.flapping))
    return out
