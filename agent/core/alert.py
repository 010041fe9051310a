"""The alert value: shared by the state machine (rules/), the incident layer, the receiver and the API.

Plain frozen dataclasses; an alert carries timestamps, never timers (Prometheus' rule manager idea).
Times are Unix seconds passed in by the caller. `alert_to_dict` / `alert_from_dict` are the one JSON codec
for alerts (saved alert states, outbox payloads, incident rows): non-finite values travel as strings
("NaN", "+Inf", "-Inf") because JSON has no such numbers.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from hostwarden.agent.core.samples import Labels, label_value


class AlertState(enum.Enum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Alert:
    """One active (or just resolved) alert instance of a rule.

    `labels` are the alert's full labels as Prometheus would send them (series labels, rule labels,
    `alertname`, `severity`). `identity` is the subset that identifies the incident (the rule's
    `group_by`, default all labels) plus `host`; the fingerprint is computed from it.
    """

    rule: str  # the alert name
    group: str
    labels: Labels
    identity: Labels
    state: AlertState
    severity: str  # warning | critical | whatever the rule's `severity` label says
    value: float
    active_since: float  # when the condition started to hold (pending since)
    fired_at: float | None = None
    resolved_at: float | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    category: str = ""
    threshold: str = ""  # human form of the condition that fired, e.g. "> 0.95"
    expr: str = ""
    flapping: bool = False
    source: str = ""  # rule file:line, for tickets and logs
    discriminator: str = ""  # tells apart rules with the same alert name and labels ("" for the first one)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.identity, self.discriminator)

    def annotation(self, key: str, default: str = "") -> str:
        return label_value(self.annotations, key, default)

    def label(self, key: str, default: str = "") -> str:
        return label_value(self.labels, key, default)


def fingerprint(alertname: str, identity: Labels, discriminator: str = "") -> str:
    """Stable across restarts, versions and hosts' label order: sha256 of name + sorted labels, 16 hex.

    `discriminator` (empty for all but the second and later rules with the same alert name and labels,
    see `RuleManager.discriminators`) is hashed after the labels, so the plain fingerprint is unchanged."""
    h = hashlib.sha256(alertname.encode())
    for k, v in sorted(identity):
        h.update(b"\x00" + k.encode() + b"\x01" + v.encode())
    if discriminator:
        h.update(b"\x02" + discriminator.encode())
    return h.hexdigest()[:16]


def _labels(pairs: Any) -> Labels:
    return tuple((str(k), str(v)) for k, v in pairs)


def _float_out(v: float) -> float | str:
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def alert_to_dict(a: Alert) -> dict[str, Any]:
    return {
        "rule": a.rule, "group": a.group, "labels": [list(p) for p in a.labels],
        "identity": [list(p) for p in a.identity], "state": a.state.value, "severity": a.severity,
        "value": _float_out(a.value), "active_since": a.active_since, "fired_at": a.fired_at,
        "resolved_at": a.resolved_at, "annotations": [list(p) for p in a.annotations], "category": a.category,
        "threshold": a.threshold, "expr": a.expr, "flapping": a.flapping, "source": a.source,
        "discriminator": a.discriminator,
    }


def alert_from_dict(d: dict[str, Any]) -> Alert:
    """Reads what `alert_to_dict` wrote, and the older forms (missing optional keys, repr'd non-finite values)."""
    return Alert(
        rule=str(d["rule"]), group=str(d.get("group", "")), labels=_labels(d.get("labels", ())),
        identity=_labels(d.get("identity", ())), state=AlertState(d.get("state", "firing")),
        severity=str(d.get("severity", "")), value=float(d.get("value", 0.0)),
        active_since=float(d.get("active_since", 0.0)), fired_at=_opt_float(d.get("fired_at")),
        resolved_at=_opt_float(d.get("resolved_at")), annotations=_labels(d.get("annotations", ())),
        category=str(d.get("category", "")), threshold=str(d.get("threshold", "")), expr=str(d.get("expr", "")),
        flapping=bool(d.get("flapping", False)), source=str(d.get("source", "")),
        discriminator=str(d.get("discriminator", "")),
    )
