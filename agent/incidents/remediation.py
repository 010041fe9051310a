"""The remediation decision engine: pure, time passed in, frozen values in and out.

For every firing alert that has a plan (a rule's or its check's `remediate:`), `decide` returns the
next thing to do — run an action, refuse one, give up — and the new per-fingerprint state:

- nothing before the alert has fired for `after`, for a warning when the plan says `severity:
  critical`, while it is silenced (or in a maintenance window), or when it is about another host;
- one action at a time; after it finished, the alert must clear within `verify_within`; if it still
  fires, the next action in the list (cycling) — or, once `max` actions ran within `within`, nothing
  more: *exhausted* (the caller raises the ticket's priority one step and says so);
- the attempts are counted per fingerprint across occurrences (they age out of the window), so a
  unit that dies again as soon as it was restarted (flapping) is not restarted in a loop: its next
  occurrence finds the budget spent and is escalated at once;
- an action whose `$labels.x` placeholder does not match its pattern is refused (recorded once per
  occurrence) and the next action is tried; a plan from an untrusted file is refused as a whole.

The executor reports back with `finished(...)`. Nothing here reads the clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from hostwarden.agent.core.remedy import Plan, Refused, Step, substitute


@dataclass(frozen=True)
class Candidate:
    """A firing alert with a plan, as the edge sees it at `now`."""

    fingerprint: str
    severity: str
    firing_since: float
    labels: tuple[tuple[str, str], ...]
    plan: Plan
    untrusted: str = ""  # why the plan's file may not declare actions ("" when it may)
    local: bool = True  # about this host (not another host's alert, e.g. from the receiver)
    silenced: bool = False


@dataclass(frozen=True)
class AlertRemediation:
    """What the engine remembers about one alert fingerprint."""

    attempts: tuple[float, ...] = ()  # when actions were started, pruned to the plan's window
    window: float = 0.0
    occurrence: float | None = None  # firing_since of the occurrence being handled
    next_action: int = 0
    running: bool = False
    verify_within: float = 0.0
    verify_until: float | None = None
    exhausted: bool = False  # for this occurrence: nothing more will run
    refused: frozenset[int] = frozenset()  # actions refused in this occurrence


@dataclass(frozen=True)
class Run:
    fingerprint: str
    step: Step
    action_index: int
    attempt: int  # 1-based count within the window, this one included
    max_attempts: int
    at: float


@dataclass(frozen=True)
class Refuse:
    fingerprint: str
    reason: str
    at: float
    action_index: int | None = None  # None: the whole plan


@dataclass(frozen=True)
class Exhaust:
    fingerprint: str
    attempts: int
    window: float
    reason: str
    at: float


Decision = Run | Refuse | Exhaust


@dataclass(frozen=True)
class Decided:
    states: Mapping[str, AlertRemediation]
    decisions: tuple[Decision, ...] = field(default=())


def decide(states: Mapping[str, AlertRemediation], candidates: list[Candidate], now: float) -> Decided:
    """The next decisions for the firing `candidates` at `now`, and every fingerprint's new state."""
    out: dict[str, AlertRemediation] = {}
    decisions: list[Decision] = []
    firing = {c.fingerprint: c for c in candidates}
    for fp, st in states.items():
        if fp in firing:
            continue
        # not firing (resolved, or no longer eligible): the occurrence is over, the attempts age out
        kept = _prune(st.attempts, st.window, now)
        if kept or st.running:
            out[fp] = AlertRemediation(attempts=kept, window=st.window, running=st.running)
    for c in candidates:
        st, new = _decide_one(states.get(c.fingerprint), c, now)
        out[c.fingerprint] = st
        decisions.extend(new)
    return Decided(out, tuple(decisions))


def finished(states: Mapping[str, AlertRemediation], fingerprint: str, *, ok: bool,
             at: float) -> Mapping[str, AlertRemediation]:
    """The action for `fingerprint` ended at `at`: verify from now (a failed action: go on at once)."""
    st = states.get(fingerprint)
    if st is None:
        return states
    new = dict(states)
    new[fingerprint] = replace(st, running=False, verify_until=at + st.verify_within if ok else at)
    return new


def seed(attempts: Mapping[str, tuple[float, ...]], exhausted: Mapping[str, float], *,
         window: float) -> dict[str, AlertRemediation]:
    """The state after a restart, from the record: when actions started (per fingerprint) and the
    occurrences (by their start) that were already exhausted — so a restart of the agent does not reset
    the bounds."""
    out: dict[str, AlertRemediation] = {}
    for fp in set(attempts) | set(exhausted):
        since = exhausted.get(fp)
        out[fp] = AlertRemediation(attempts=tuple(sorted(attempts.get(fp, ()))), window=window, occurrence=since,
                                   exhausted=since is not None)
    return out


def _prune(attempts: tuple[float, ...], window: float, now: float) -> tuple[float, ...]:
    return tuple(t for t in attempts if now - t < window)


def _decide_one(prev: AlertRemediation | None, c: Candidate, now: float) -> tuple[AlertRemediation, list[Decision]]:
    plan = c.plan
    st = prev or AlertRemediation()
    if st.occurrence != c.firing_since:  # a new occurrence: the list starts over, the attempt budget does not
        st = AlertRemediation(attempts=st.attempts, running=st.running, occurrence=c.firing_since)
    st = replace(st, attempts=_prune(st.attempts, plan.within, now), window=plan.within)
    if st.running or st.exhausted:
        return st, []
    if not c.local or c.silenced or now - c.firing_since < plan.after:
        return st, []
    if plan.severity == "critical" and c.severity != "critical":
        return st, []
    if st.verify_until is not None and now < st.verify_until:
        return st, []
    if c.untrusted:
        return replace(st, exhausted=True), [Refuse(c.fingerprint, f"remediation refused: {c.untrusted}", now)]
    if len(st.attempts) >= plan.max_attempts:
        reason = (f"{len(st.attempts)} attempt(s) within {_fmt(plan.within)} did not clear the alert"
                  if st.verify_until is not None else
                  f"already {len(st.attempts)} attempt(s) within {_fmt(plan.within)} (max {plan.max_attempts}): "
                  "not trying again")
        return replace(st, exhausted=True), [Exhaust(c.fingerprint, len(st.attempts), plan.within, reason, now)]
    labels = dict(c.labels)
    decisions: list[Decision] = []
    n = len(plan.actions)
    refused = set(st.refused)
    for k in range(n):
        i = (st.next_action + k) % n
        if i in refused:
            continue
        action = plan.actions[i]
        try:
            step = substitute(action, labels)
        except Refused as e:
            refused.add(i)
            decisions.append(Refuse(c.fingerprint, f"{action.describe()} refused: {e}", now, i))
            continue
        attempts = (*st.attempts, now)
        st = replace(st, attempts=attempts, next_action=(i + 1) % n, running=True, verify_within=plan.verify_within,
                     verify_until=None, refused=frozenset(refused))
        decisions.append(Run(c.fingerprint, step, i, len(attempts), plan.max_attempts, now))
        return st, decisions
    decisions.append(Exhaust(c.fingerprint, len(st.attempts), plan.within, "no action could run (all refused)", now))
    return replace(st, exhausted=True, refused=frozenset(refused)), decisions


def _fmt(seconds: float) -> str:
    from hostwarden.agent.core.units import format_duration

    return format_duration(seconds)
