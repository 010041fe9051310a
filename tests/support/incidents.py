"""Small factories for the incident tests: alerts, transitions, a parsed `tickets:` section."""

from __future__ import annotations

import dataclasses

from hostwarden.agent.core.alert import Alert, AlertState
from hostwarden.agent.core.samples import labels_of
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.yamlsrc import load_yaml
from hostwarden.exporters.tickets.config import TicketsConfig, parse_tickets
from hostwarden.rules.alerts import AlertTransition, TransitionKind

HOST = "testhost"


def tickets_config(text: str = "{}") -> TicketsConfig:
    errors = Errors()
    node = load_yaml(text, "tickets.yaml")
    cfg = parse_tickets(node, errors, node.loc, "/tmp")
    errors.raise_if_any()
    return cfg


def alert(rule: str = "HighCPU", *, severity: str = "warning", value: float = 0.97, at: float = 1000.0,
          category: str = "performance", **labels: str) -> Alert:
    full = labels_of({"alertname": rule, "severity": severity, **labels})
    identity = labels_of({"host": HOST, **labels})
    return Alert(rule=rule, group="test", labels=full, identity=identity, state=AlertState.FIRING, severity=severity,
                 value=value, active_since=at - 60, fired_at=at, category=category, threshold="> 0.9",
                 expr="hostwarden_cpu_usage_ratio", annotations=(("summary", f"{rule} {labels}".strip()),),
                 source="rules/test.yaml:3")


def firing(a: Alert, at: float | None = None) -> AlertTransition:
    at = a.fired_at if at is None else at
    return AlertTransition(dataclasses.replace(a, fired_at=at, active_since=at - 60), TransitionKind.FIRING, at)


def resolved(a: Alert, at: float) -> AlertTransition:
    return AlertTransition(dataclasses.replace(a, state=AlertState.INACTIVE, resolved_at=at, value=0.1),
                           TransitionKind.RESOLVED, at)


def severity(a: Alert, new: str, at: float) -> AlertTransition:
    kind = TransitionKind.ESCALATED if new == "critical" else TransitionKind.DEESCALATED
    labels = tuple(sorted((k, new if k == "severity" else v) for k, v in a.labels))
    return AlertTransition(dataclasses.replace(a, severity=new, labels=labels), kind, at, previous_severity=a.severity)


def flapping(a: Alert, start: bool, at: float) -> AlertTransition:
    kind = TransitionKind.FLAPPING_START if start else TransitionKind.FLAPPING_STOP
    return AlertTransition(dataclasses.replace(a, flapping=start), kind, at)
