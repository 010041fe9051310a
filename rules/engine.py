"""The alert state machine of one rule: pure, time passed in, never reads the clock.

Each evaluation gives `RuleState.step(now, observations)` the rule's result elements; it returns
the transitions for the incident layer. Semantics:

- Prometheus: inactive → pending when the condition holds (`for` > 0) → firing at the first
  evaluation where `now - active_since >= for` (at once without `for`). A pending alert whose
  condition stops disappears without a transition. A firing alert resolves at the first evaluation
  where the condition does not hold, or with `keep_firing_for` once it has not held for that long.
- Plain rules: every element of the expression's result is an active alert; its severity is the
  rule's `severity` label (default "warning"); the state key is the full label set, as in Prometheus.
- Threshold rules (`warning:`/`critical:`): the expression gives values, the highest level whose
  threshold holds is the candidate severity. `for` applies to the alert (pending until any level held
  for `for`) *and* to escalation: critical takes effect once the critical threshold itself held for
  `for`. Escalation emits ESCALATED; critical → warning emits DEESCALATED at once. The state key
  is the label set without `severity`, so escalation keeps the alert (and its fingerprint).
- `clear:` (hysteresis): once firing, the alert stays active while its value does not satisfy
  `clear`, at warning level (critical when the rule has no warning threshold). A series that
  disappears still resolves (there is no value to compare).
- Flapping (Nagios): each evaluation records the level (none/warning/critical/active); the weighted
  percent state change over the last `window` evaluations (0.75 oldest → 1.25 newest, history padded
  with the first state) starts flapping above `high` and stops below `low`. FLAPPING_START is emitted
  once the alert is firing and flapping; while flapping the alert is held firing (no RESOLVED, no
  FIRING churn, no severity transitions — severity changes silently). When flapping stops,
  FLAPPING_STOP is emitted, then RESOLVED if the condition no longer holds (after keep_firing_for),
  or ESCALATED/DEESCALATED if the severity differs from the one last announced.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hostwarden.agent.core.alert import SEVERITY_ORDER, Alert, AlertState
from hostwarden.agent.core.samples import Labels
from hostwarden.rules.alerts import AlertTransition, TransitionKind
from hostwarden.rules.model import Flap, Rule

DEFAULT_SEVERITY = "warning"
_ACTIVE = "active"  # flap-history level of a plain rule's present element


@dataclass(frozen=True, slots=True)
class Observation:
    """One element of a rule's result at one evaluation, labels already final (without severity
    for threshold rules, which the state machine adds)."""

    labels: Labels
    value: float
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass
class AlertRecord:
    labels: Labels
    value: float
    annotations: tuple[tuple[str, str], ...] = ()
    state: AlertState = AlertState.INACTIVE
    severity: str = DEFAULT_SEVERITY
    announced_severity: str = ""
    active_since: float = 0.0
    fired_at: float | None = None
    resolved_at: float | None = None
    keep_firing_since: float | None = None
    critical_since: float | None = None
    history: deque[str] = field(default_factory=deque)
    flapping: bool = False
    flap_announced: bool = False
    last_eval: float = 0.0

    def to_row(self) -> dict[str, Any]:
        return {
            "labels": [list(p) for p in self.labels], "value": _json_float(self.value),
            "annotations": [list(p) for p in self.annotations], "state": self.state.value,
            "severity": self.severity, "announced_severity": self.announced_severity,
            "active_since": self.active_since, "fired_at": self.fired_at, "resolved_at": self.resolved_at,
            "keep_firing_since": self.keep_firing_since, "critical_since": self.critical_since,
            "history": list(self.history), "flapping": self.flapping, "flap_announced": self.flap_announced,
            "last_eval": self.last_eval,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any], window: int) -> AlertRecord:
        rec = cls(labels=tuple((str(k), str(v)) for k, v in row["labels"]), value=float(row.get("value") or 0.0),
                  annotations=tuple((str(k), str(v)) for k, v in row.get("annotations", [])),
                  state=AlertState(row["state"]), severity=str(row.get("severity") or DEFAULT_SEVERITY),
                  announced_severity=str(row.get("announced_severity") or ""),
                  active_since=float(row["active_since"]), fired_at=_opt(row.get("fired_at")),
                  resolved_at=_opt(row.get("resolved_at")), keep_firing_since=_opt(row.get("keep_firing_since")),
                  critical_since=_opt(row.get("critical_since")), flapping=bool(row.get("flapping")),
                  flap_announced=bool(row.get("flap_announced")), last_eval=float(row.get("last_eval") or 0.0))
        rec.history = deque((str(h) for h in row.get("history", [])), maxlen=window)
        return rec


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


def _json_float(v: float) -> float | str:
    return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)


def percent_state_change(history: list[str], window: int) -> float:
    """Nagios' weighted state change ratio (0..1) of the last `window` states, oldest first.

    The history is padded at the old end with its first state, as Nagios fills a new history.
    """
    if window < 3 or not history:
        return 0.0
    states = list(history)[-window:]
    states = [states[0]] * (window - len(states)) + states
    changes = 0.0
    for x in range(1, window):
        if states[x] != states[x - 1]:
            changes += (x - 1) * 0.5 / (window - 2) + 0.75
    return changes / (window - 1)


class RuleState:
    """Per-alert state of one alerting rule."""

    def __init__(self, rule: Rule, *, group: str, external_labels: dict[str, str], discriminator: str = "") -> None:
        self.rule = rule
        self.group = group
        self.discriminator = discriminator  # see RuleManager.discriminators
        self.host = external_labels.get("host", "")
        self.alerts: dict[Labels, AlertRecord] = {}
        self._window = rule.flap.window if rule.flap else 0

    # -- identity and snapshots ------------------------------------------------------------------
    def key_of(self, labels: Labels) -> Labels:
        return labels

    def full_labels(self, rec: AlertRecord) -> Labels:
        if not self.rule.extended:
            return rec.labels
        return tuple(sorted((*rec.labels, ("severity", rec.severity))))

    def identity(self, labels: Labels) -> Labels:
        rule = self.rule
        if rule.group_by is not None:
            keep = set(rule.group_by)
            ident = [p for p in labels if p[0] in keep]
        else:
            ident = [p for p in labels if not (rule.extended and p[0] == "severity")]
        if self.host and not any(k == "host" for k, _ in ident):
            ident.append(("host", self.host))
        return tuple(sorted(ident))

    def snapshot(self, rec: AlertRecord) -> Alert:
        labels = self.full_labels(rec)
        rule = self.rule
        if rule.extended:
            thr = rule.threshold(rec.severity) or rule.critical or rule.warning
            threshold = thr.text if thr else ""
            if rule.clear is not None:
                threshold += f" (clears {rule.clear.text})"
        else:
            threshold = plain_threshold(rule.expr)
        return Alert(rule=rule.name, group=self.group, labels=labels, identity=self.identity(labels),
                     state=rec.state, severity=rec.severity, value=rec.value, active_since=rec.active_since,
                     fired_at=rec.fired_at, resolved_at=rec.resolved_at, annotations=rec.annotations,
                     category=rule.category, threshold=threshold, expr=rule.expr, flapping=rec.flapping,
                     source=rule.source, discriminator=self.discriminator)

    def active(self) -> list[Alert]:
        return [self.snapshot(r) for r in self.alerts.values() if r.state is not AlertState.INACTIVE]

    # -- one evaluation --------------------------------------------------------------------------
    def discount(self, unobserved: float) -> None:
        """Evaluations stopped for `unobserved` seconds (the process was stopped, the machine suspended):
        nothing was observed then, so that stretch does not count toward `for` (a pending alert does not
        fire at the first evaluation after the pause just because the clock moved on)."""
        if unobserved <= 0:
            return
        for rec in self.alerts.values():
            if rec.state is AlertState.PENDING:
                rec.active_since += unobserved
            if rec.critical_since is not None:
                rec.critical_since += unobserved

    def step(self, now: float, observations: list[Observation]) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        seen: set[Labels] = set()
        for obs in observations:
            key = self.key_of(obs.labels)
            seen.add(key)
            rec = self.alerts.get(key)
            if rec is None:
                rec = self.alerts[key] = AlertRecord(labels=obs.labels, value=obs.value,
                                                     history=deque(maxlen=self._window or 1))
            out.extend(self._advance(rec, now, obs))
        for key in [k for k in self.alerts if k not in seen]:
            out.extend(self._advance(self.alerts[key], now, None))
        for key in [k for k, r in self.alerts.items() if self._disposable(r)]:
            del self.alerts[key]
        return out

    def _disposable(self, rec: AlertRecord) -> bool:
        if rec.state is not AlertState.INACTIVE:
            return False
        if self.rule.flap is None:
            return True
        return len(set(rec.history)) <= 1 and not rec.flapping

    def _level(self, obs: Observation | None) -> str | None:
        """The highest level whose condition holds (None: none); a plain rule's is its severity label."""
        if obs is None:
            return None
        rule = self.rule
        if not rule.extended:
            return next((v for k, v in obs.labels if k == "severity"), DEFAULT_SEVERITY)
        value = obs.value
        if rule.critical is not None and rule.critical.holds(value):
            return "critical"
        if rule.warning is not None and rule.warning.holds(value):
            return "warning"
        return None

    def _advance(self, rec: AlertRecord, now: float, obs: Observation | None) -> list[AlertTransition]:
        out: list[AlertTransition] = []

        def emit(r: AlertRecord, kind: TransitionKind, at: float, previous: str = "") -> None:
            out.append(AlertTransition(self.snapshot(r), kind, at, previous_severity=previous))

        rule = self.rule
        value = obs.value if obs is not None else None
        raw = self._level(obs)
        rec.last_eval = now
        if obs is not None:
            rec.labels = obs.labels
            rec.value = obs.value
            rec.annotations = obs.annotations

        # flapping is judged on the raw condition, whatever the state
        if rule.flap is not None:
            rec.history.append(_ACTIVE if (raw is not None and not rule.extended) else (raw or "ok"))
            pct = percent_state_change(list(rec.history), rule.flap.window)
            if not rec.flapping and pct > rule.flap.high:
                rec.flapping = True
            elif rec.flapping and pct < rule.flap.low:
                rec.flapping = False
        if rec.flap_announced and not rec.flapping:
            rec.flap_announced = False
            emit(rec, TransitionKind.FLAPPING_STOP, now)
        hold = rec.flap_announced

        # the condition, with hysteresis for firing alerts
        level = raw
        if level is None and rec.state is AlertState.FIRING and rule.clear is not None and value is not None \
                and not rule.clear.holds(value):
            level = "warning" if rule.warning is not None else "critical"
        rec.critical_since = (rec.critical_since or now) if raw == "critical" else None

        if level is not None:
            rec.keep_firing_since = None
            severity = self._effective_severity(rec, level, raw, now)
            if rec.state is AlertState.INACTIVE:
                rec.state, rec.active_since = AlertState.PENDING, now
                rec.fired_at = rec.resolved_at = None
                rec.severity = severity
                if rule.for_ > 0:
                    emit(rec, TransitionKind.PENDING, now)
            if rec.state is AlertState.PENDING:
                rec.severity = severity
                if now - rec.active_since >= rule.for_:
                    rec.state, rec.fired_at = AlertState.FIRING, now
                    rec.announced_severity = severity
                    emit(rec, TransitionKind.FIRING, now)
            elif rec.state is AlertState.FIRING:
                rec.severity = severity
                if not hold and severity != rec.announced_severity:
                    previous = rec.announced_severity
                    rec.announced_severity = severity
                    up = SEVERITY_ORDER.get(severity, 1) > SEVERITY_ORDER.get(previous, 1)
                    emit(rec, TransitionKind.ESCALATED if up else TransitionKind.DEESCALATED, now, previous)
        elif rec.state is AlertState.PENDING:
            rec.state = AlertState.INACTIVE  # never fired: disappears without a transition
        elif rec.state is AlertState.FIRING and not hold:
            keep = False
            if rule.keep_firing_for > 0:
                if rec.keep_firing_since is None:
                    rec.keep_firing_since = now
                keep = now - rec.keep_firing_since < rule.keep_firing_for
            if not keep:
                rec.state, rec.resolved_at = AlertState.INACTIVE, now
                rec.keep_firing_since = None
                emit(rec, TransitionKind.RESOLVED, now)

        if rec.flapping and not rec.flap_announced and rec.state is AlertState.FIRING:
            rec.flap_announced = True
            emit(rec, TransitionKind.FLAPPING_START, now)
        return out

    def _effective_severity(self, rec: AlertRecord, level: str, raw: str | None, now: float) -> str:
        rule = self.rule
        if not rule.extended or level != "critical":
            return level
        if raw != "critical" or rule.warning is None:
            return "critical"  # held by hysteresis, or the rule has no warning level to fall back to
        held = now - (rec.critical_since if rec.critical_since is not None else now)
        return "critical" if held >= rule.for_ else "warning"


def plain_threshold(expr: str) -> str:
    """The comparison at the end of a plain rule's expression, as human text ('> 0.9'), or ''."""
    import re

    m = re.search(r"(>=|<=|==|!=|>|<)\s*(?:bool\s+)?([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*\)*\s*$", expr)
    return f"{m.group(1)} {m.group(2)}" if m else ""


def flap_window(flap: Flap | None) -> int:
    return flap.window if flap else 0
