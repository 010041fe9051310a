"""The alert state machine's transitions. The Alert value itself lives in the lowest layer, agent.core.alert;
the names imported from there are re-exported for the rule manager, engine and tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from hostwarden.agent.core.alert import SEVERITY_ORDER, Alert, AlertState, fingerprint

__all__ = ["SEVERITY_ORDER", "Alert", "AlertState", "AlertTransition", "TransitionKind", "fingerprint"]


class TransitionKind(enum.Enum):
    PENDING = "pending"
    FIRING = "firing"
    ESCALATED = "escalated"  # warning → critical
    DEESCALATED = "deescalated"  # critical → warning
    RESOLVED = "resolved"
    FLAPPING_START = "flapping_start"
    FLAPPING_STOP = "flapping_stop"


@dataclass(frozen=True, slots=True)
class AlertTransition:
    alert: Alert
    kind: TransitionKind
    at: float
    previous_severity: str = ""
    details: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
