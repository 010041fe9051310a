"""Alert values shared by the state machine (rules/) and the incident layer (agent/incidents).

Plain frozen dataclasses; the state machine carries timestamps, never timers (Prometheus' rule
manager idea). Times are Unix seconds passed in by the caller.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from hostwarden.agent.core.samples import Labels, label_value


class AlertState(enum.Enum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


class TransitionKind(enum.Enum):
    PENDING = "pending"
    FIRING = "firing"
    ESCALATED = "escalated"  # warning → critical
    DEESCALATED = "deescalated"  # critical → warning
    RESOLVED = "resolved"
    FLAPPING_START = "flapping_start"
    FLAPPING_STOP = "flapping_stop"


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


@dataclass(frozen=True, slots=True)
class AlertTransition:
    alert: Alert
    kind: TransitionKind
    at: float
    previous_severity: str = ""
    details: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


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
