"""Rule groups and their alert states; the daemon calls `evaluate` per group at the group's interval.

    manager = RuleManager(groups, external_labels={"host": "web-01"})
    store.set_retention(*manager.retention())
    transitions = manager.evaluate(group, store, now)   # takes store.lock; never raises

Recording rules are supported: their results go back into the store (at the evaluation time, as
Prometheus does), so later rules of the group and later evaluations see them; series a recording
rule stops producing get a stale marker. Alerting rules' `ALERTS`/`ALERTS_FOR_STATE` series are
written to the store too (rules and rule tests may query them) and exposed on /metrics.

An evaluation failure (a PromQL runtime error, duplicate label sets, the group's `limit`) leaves that
rule's alert states as they were, is counted in `hostwarden_rule_evaluation_failures_total{group}`
and logged once per change (new error message, recovery).
"""

from __future__ import annotations

import logging
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from hostwarden.agent.core.alert import Alert, AlertState, alert_from_dict, alert_to_dict
from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.agent.core.store import STALE_NAN, SeriesStore
from hostwarden.rules.alerts import AlertTransition, TransitionKind
from hostwarden.rules.engine import AlertRecord, Observation, RuleState
from hostwarden.rules.model import GroupKey, Rule, RuleGroup
from hostwarden.rules.promql import Element, PromQLError
from hostwarden.rules.template_query import compile_query, query_function
from hostwarden.rules.templates import TemplateData

log = logging.getLogger(__name__)

MIN_RETENTION_SECONDS = 600.0  # ticket diagnosis shows the last 10 minutes of an alert's series
FOR_OUTAGE_TOLERANCE_SECONDS = 3600.0  # Prometheus' --rules.alert.for-outage-tolerance

METRICS: dict[str, MetricDef] = metric_defs(
    MetricDef("hostwarden_rule_evaluation_duration_seconds", "gauge",
              "Duration of the rule group's last evaluation.", ("file", "group")),
    MetricDef("hostwarden_rule_evaluation_failures_total", "counter",
              "Rule evaluations that failed (one per failing rule and evaluation).", ("file", "group")),
    MetricDef("hostwarden_rule_group_last_evaluation_timestamp_seconds", "gauge",
              "Unix time of the rule group's last evaluation.", ("file", "group")),
    MetricDef("hostwarden_rule_group_rules", "gauge", "Rules in the group.", ("file", "group")),
    MetricDef("hostwarden_rule_alerts", "gauge", "Active alerts by state.", ("state",)),
    MetricDef("ALERTS", "gauge", "Pending and firing alerts (1 while active), as Prometheus exposes them."),
    MetricDef("ALERTS_FOR_STATE", "gauge", "Unix time an active alert became active, as Prometheus exposes it."),
)


DUPLICATE_SAMPLE = "duplicate sample for timestamp"  # Prometheus' TSDB error, which promtool reports


def _bits(v: float) -> bytes:
    return struct.pack("<d", v)


class EvaluationError(Exception):
    pass


@dataclass
class GroupStats:
    duration: float = 0.0
    failures: int = 0
    last_evaluation: float = 0.0


RuleKey = tuple[str, str, str, str, int]  # file, group, rule name, signature, occurrence


class RuleManager:
    def __init__(self, groups: list[RuleGroup], *, external_labels: dict[str, str], external_url: str = "") -> None:
        self.external_labels = dict(external_labels)
        self.external_url = external_url
        self._rule_evals: dict[int, tuple[float, float]] = {}  # id(rule) -> (last evaluation, seconds), for the API
        self.groups: list[RuleGroup] = []
        self._states: dict[int, RuleState] = {}  # id(rule) -> state (alerting rules)
        self._rules: dict[int, Rule] = {}
        self._stats: dict[GroupKey, GroupStats] = {}
        self._errors: dict[int, str] = {}  # id(rule) -> last error message ("" when fine)
        self._recorded: dict[int, set[tuple[str, Labels]]] = {}  # id(rule) -> series it wrote last time
        self._alert_series: dict[GroupKey, set[tuple[str, Labels]]] = {}  # group -> ALERTS series written
        self._orphans: list[AlertTransition] = []
        self._written_at: float | None = None  # ALERTS samples written at that time, by which rule (collisions)
        self._written: dict[tuple[str, Labels], tuple[RuleState, float]] = {}
        self.replace_groups(groups)

    # -- configuration ---------------------------------------------------------------------------
    def _keys(self, groups: list[RuleGroup]) -> dict[RuleKey, Rule]:
        out: dict[RuleKey, Rule] = {}
        for g in groups:
            for r in g.rules:
                n = 0
                while (g.file, g.name, r.name, r.signature, n) in out:
                    n += 1
                out[(g.file, g.name, r.name, r.signature, n)] = r
        return out

    @staticmethod
    def discriminators(groups: list[RuleGroup]) -> dict[int, str]:
        """id(rule) -> what tells its alerts' fingerprints apart from another rule's with the same alert name
        and labels (Prometheus keeps such rules as separate rules; so do incidents here).

        The first alerting rule (in load order) with a given alert name and label templates has none, so
        its fingerprint is the plain `fingerprint(alertname, identity)`; each later one has
        `file;group;n` (n: its ordinal among such rules of its group, from 1 in the first group)."""
        first: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        out: dict[int, str] = {}
        for g in groups:
            ordinal: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
            for r in g.rules:
                if r.kind != "alert":
                    continue
                dup = (r.name, tuple(sorted((k, t.text) for k, t in r.labels)))
                n = ordinal[dup] = ordinal.get(dup, -1) + 1
                if dup not in first:
                    first.add(dup)
                    continue
                out[id(r)] = f"{g.key};{n}"
        return out

    def _key_of(self) -> dict[int, RuleKey]:
        return {id(r): k for k, r in self._keys(self.groups).items()}

    def replace_groups(self, groups: list[RuleGroup]) -> None:
        """Swap in reloaded groups; alert states of unchanged rules (same group, name, expr and thresholds)
        survive, firing alerts of removed or changed rules resolve at the next evaluation."""
        old_states = {k: self._states[id(r)] for k, r in self._keys(self.groups).items() if id(r) in self._states}
        old_recorded = {k: self._recorded.get(id(r), set()) for k, r in self._keys(self.groups).items()}
        self.groups = list(groups)
        self._states, self._rules, self._recorded = {}, {}, {}
        tags = self.discriminators(self.groups)
        retired: list[RuleState] = []
        for key, rule in self._keys(self.groups).items():
            self._rules[id(rule)] = rule
            if rule.kind == "record":
                self._recorded[id(rule)] = old_recorded.get(key, set())
                continue
            state = old_states.pop(key, None)
            group = key[1]
            if state is not None and state.discriminator != tags.get(id(rule), ""):
                retired.append(state)  # its alerts' fingerprints change: resolve them, they fire anew
                state = None
            if state is None:
                state = RuleState(rule, group=group, external_labels=self.external_labels,
                                  discriminator=tags.get(id(rule), ""))
            else:
                state.rule = rule
                window = rule.flap.window if rule.flap else 1
                for rec in state.alerts.values():
                    rec.history = deque(rec.history, maxlen=window)
            self._states[id(rule)] = state
        for state in [*old_states.values(), *retired]:
            for rec in state.alerts.values():
                if rec.state is AlertState.FIRING:
                    rec.state, rec.resolved_at = AlertState.INACTIVE, rec.last_eval
                    self._orphans.append(AlertTransition(state.snapshot(rec), TransitionKind.RESOLVED, rec.last_eval,
                                                         details={"reason": "rule removed or changed"}))
        keys = {g.key for g in self.groups}
        self._stats = {k: s for k, s in self._stats.items() if k in keys}
        for g in self.groups:
            self._stats.setdefault(g.key, GroupStats())
        self._errors = {i: e for i, e in self._errors.items() if i in self._rules}

    def retention(self) -> tuple[dict[str, float], float | None]:
        """Seconds each metric name must be kept (and for every name, when a selector has no fixed name)."""
        by_name: dict[str, float] = {}
        all_names: float | None = None
        for g in self.groups:
            for r in g.rules:
                for sel in (*r.compiled.selectors, *self._template_selectors(r)):
                    need = max(sel.max_lookback_seconds, MIN_RETENTION_SECONDS)
                    if sel.name is None:
                        all_names = max(all_names or 0.0, need)
                    else:
                        by_name[sel.name] = max(by_name.get(sel.name, 0.0), need)
        return by_name, all_names

    @staticmethod
    def _template_selectors(rule: Rule) -> list[Any]:
        """Selectors of the queries a rule's templates write as literals (`query "up"`): kept in the store too."""
        out: list[Any] = []
        for _k, t in (*rule.labels, *rule.annotations):
            for text in t.literal_queries():
                try:
                    out.extend(compile_query(text, rule.compiled.options).selectors)
                except PromQLError:
                    continue  # renders as the template's error at evaluation
        return out

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, group: RuleGroup, store: SeriesStore, now: float) -> list[AlertTransition]:
        """Evaluate every rule of `group` at `now`; returns the alert transitions. Never raises."""
        out, self._orphans = self._orphans, []
        stats = self._stats.setdefault(group.key, GroupStats())
        start = time.perf_counter()
        gap = now - stats.last_evaluation if stats.last_evaluation else 0.0
        if gap > 2 * group.interval:  # evaluations were missed: that time was not observed
            for rule in group.rules:
                state = self._states.get(id(rule))
                if state is not None:
                    state.discount(gap - group.interval)
        try:
            with store.lock:
                ok: list[Rule] = []
                for rule in group.rules:
                    try:
                        out.extend(self._evaluate_rule(group, rule, store, now))
                    except (EvaluationError, PromQLError) as e:
                        self._failed(group, rule, str(e), stats)
                    except Exception as e:  # a bug in one rule must not stop the group
                        log.debug("rule %s failed", rule.name, exc_info=True)
                        self._failed(group, rule, f"internal error: {type(e).__name__}: {e}", stats)
                    else:
                        ok.append(rule)
                collided = self._write_alert_series(group, store, now)
                for rule in ok:
                    if id(rule) in collided:  # as Prometheus: the rule's health, not an evaluation failure
                        self._failed(group, rule, DUPLICATE_SAMPLE, None)
                    else:
                        self._recovered(group, rule)
        except Exception:  # pragma: no cover - defensive: evaluate() must never raise
            log.exception("rule group %s: evaluation failed", group.name)
            stats.failures += 1
        stats.duration = time.perf_counter() - start
        stats.last_evaluation = now
        return out

    def _failed(self, group: RuleGroup, rule: Rule, message: str, stats: GroupStats | None) -> None:
        if stats is not None:
            stats.failures += 1
        if self._errors.get(id(rule)) != message:
            log.warning("rule group %s: rule %s (%s) failed: %s", group.name, rule.name, rule.source, message)
        self._errors[id(rule)] = message

    def _recovered(self, group: RuleGroup, rule: Rule) -> None:
        if self._errors.get(id(rule)):
            log.info("rule group %s: rule %s evaluates again", group.name, rule.name)
        self._errors[id(rule)] = ""

    def rule_errors(self, group: RuleGroup) -> list[tuple[Rule, str]]:
        """Rules of `group` whose last evaluation failed, with the error (rule tests report them)."""
        return [(r, self._errors[id(r)]) for r in group.rules if self._errors.get(id(r))]

    @staticmethod
    def _vector(result: Any) -> list[Element]:
        if isinstance(result, list):
            return result
        if isinstance(result, float | int):
            return [Element((), float(result))]
        raise EvaluationError(f"expression returned a {type(result).__name__}, not a vector or scalar")

    def _evaluate_rule(self, group: RuleGroup, rule: Rule, store: SeriesStore, now: float) -> list[AlertTransition]:
        """One rule's evaluation, timed for the API's `evaluationTime`/`lastEvaluation` (failed ones too)."""
        started = time.perf_counter()
        try:
            return self._evaluate_rule_body(group, rule, store, now)
        finally:
            self._rule_evals[id(rule)] = (now, time.perf_counter() - started)

    def _evaluate_rule_body(self, group: RuleGroup, rule: Rule, store: SeriesStore,
                            now: float) -> list[AlertTransition]:
        vector = self._vector(rule.compiled.eval(store, now))
        if rule.kind == "record":
            self._record(group, rule, vector, store, now)
            return []
        state = self._states[id(rule)]
        observations = self._observations(rule, vector, store, now)
        if group.limit and len(observations) > group.limit:
            raise EvaluationError(f"exceeded limit of {group.limit} with {len(observations)} alerts")
        return state.step(now, observations)

    def _record(self, group: RuleGroup, rule: Rule, vector: list[Element], store: SeriesStore, now: float) -> None:
        static = [(k, t.text) for k, t in rule.labels]
        written: dict[tuple[str, Labels], float] = {}
        for el in vector:
            labels = dict(p for p in el.labels if p[0] != "__name__")
            for k, v in static:
                if v:
                    labels[k] = v
                else:
                    labels.pop(k, None)
            key = (rule.name, tuple(sorted(labels.items())))
            if key in written:
                raise EvaluationError("vector contains metrics with the same labelset after applying rule labels")
            written[key] = el.value
        if group.limit and len(written) > group.limit:
            raise EvaluationError(f"exceeded limit of {group.limit} with {len(written)} series")
        for (name, labels), value in written.items():
            store.load_series(name, labels, [(now, value)])
        for name, labels in self._recorded.get(id(rule), set()) - written.keys():
            store.load_series(name, labels, [(now, STALE_NAN)])
        self._recorded[id(rule)] = set(written)

    def _observations(self, rule: Rule, vector: list[Element], store: SeriesStore, now: float) -> list[Observation]:
        out: list[Observation] = []
        seen: set[Labels] = set()
        query = query_function(store, now, rule.compiled.options)  # templates' `query`, at the evaluation time
        for el in vector:
            data = TemplateData(labels=dict(el.labels), value=el.value, external_labels=self.external_labels,
                                external_url=self.external_url, query=query)
            labels = {k: v for k, v in el.labels if k != "__name__"}
            for k, t in rule.labels:
                v = t.render(data)
                if v:
                    labels[k] = v
                else:
                    labels.pop(k, None)
            labels["alertname"] = rule.name
            final = tuple(sorted(labels.items()))
            if final in seen:
                raise EvaluationError("vector contains metrics with the same labelset after applying alert labels")
            seen.add(final)
            annotations = tuple((k, t.render(data)) for k, t in rule.annotations)
            out.append(Observation(final, el.value, annotations))
        return out

    def _write_alert_series(self, group: RuleGroup, store: SeriesStore, now: float) -> set[int]:
        """Write the group's ALERTS/ALERTS_FOR_STATE samples; returns id() of the rules whose sample collided
        with one another rule wrote at `now` with another value (rules with the same alert name and labels,
        active since different times): that sample is dropped, the first one kept, as Prometheus' TSDB does
        ("duplicate sample for timestamp", the later rule's error)."""
        if self._written_at != now:
            self._written_at, self._written = now, {}
        written: set[tuple[str, Labels]] = set()
        collided: set[int] = set()
        for state in self._group_states(group):
            for sample in self._state_samples(state, now):
                key = (sample.name, sample.labels)
                first = self._written.get(key)
                if first is not None and first[0] is not state and _bits(first[1]) != _bits(sample.value):
                    collided.add(id(state.rule))
                    written.add(key)
                    continue
                self._written[key] = (state, sample.value)
                store.load_series(sample.name, sample.labels, [(now, sample.value)])
                written.add(key)
        for name, labels in self._alert_series.get(group.key, set()) - written:
            store.load_series(name, labels, [(now, STALE_NAN)])
        self._alert_series[group.key] = written
        return collided

    # -- reading state ---------------------------------------------------------------------------
    def _group_states(self, group: RuleGroup) -> list[RuleState]:
        return [self._states[id(r)] for r in group.rules if id(r) in self._states]

    def active_alerts(self) -> list[Alert]:
        """Pending and firing alerts of every rule."""
        return [a for g in self.groups for s in self._group_states(g) for a in s.active()]

    def firing_alerts(self, group: RuleGroup, rule_name: str) -> list[Alert]:
        return [a for s in self._group_states(group) if s.rule.name == rule_name for a in s.active()
                if a.state is AlertState.FIRING]

    @staticmethod
    def _state_samples(state: RuleState, now: float) -> list[Sample]:
        out: list[Sample] = []
        for rec in state.alerts.values():
            if rec.state is AlertState.INACTIVE:
                continue
            labels = state.full_labels(rec)
            with_state = tuple(sorted((*labels, ("alertstate", rec.state.value))))
            out.append(Sample("ALERTS", with_state, 1.0, now))
            out.append(Sample("ALERTS_FOR_STATE", labels, rec.active_since, now))
        return out

    def status(self) -> list[Any]:
        """rules.status.GroupStatus snapshots of every group, rule and active alert (hold `store.lock`, as
        evaluations do)."""
        from hostwarden.rules.status import status_of_group

        self._rule_evals = {i: e for i, e in self._rule_evals.items() if i in self._rules}
        return [status_of_group(g, self._stats.get(getattr(g, "key", g.name), GroupStats()), self._states,
                                self._errors, self._rule_evals) for g in self.groups]

    def alert_samples(self, now: float) -> list[Sample]:
        """ALERTS{alertname,alertstate,severity,...} = 1 and ALERTS_FOR_STATE{...} = active-since time.

        A series two rules give (the same alert name and labels) is exposed once, with the first rule's value."""
        out: dict[tuple[str, Labels], Sample] = {}
        for g in self.groups:
            for state in self._group_states(g):
                for s in self._state_samples(state, now):
                    out.setdefault((s.name, s.labels), s)
        return list(out.values())

    def self_samples(self) -> list[Sample]:
        out: list[Sample] = []
        for g in self.groups:
            st = self._stats.get(g.key, GroupStats())
            lb = (("file", g.file), ("group", g.name))
            out += [Sample("hostwarden_rule_evaluation_duration_seconds", lb, st.duration, st.last_evaluation),
                    Sample("hostwarden_rule_evaluation_failures_total", lb, float(st.failures), st.last_evaluation),
                    Sample("hostwarden_rule_group_last_evaluation_timestamp_seconds", lb, st.last_evaluation,
                           st.last_evaluation),
                    Sample("hostwarden_rule_group_rules", lb, float(len(g.rules)), st.last_evaluation)]
        active = self.active_alerts()
        last = max((s.last_evaluation for s in self._stats.values()), default=0.0)
        for state in ("pending", "firing"):
            n = sum(1 for a in active if a.state.value == state)
            out.append(Sample("hostwarden_rule_alerts", (("state", state),), float(n), last))
        return out

    # -- persistence -----------------------------------------------------------------------------
    def export_state(self) -> list[dict[str, Any]]:
        """Alert states as JSON-able rows (for the state database)."""
        rows: list[dict[str, Any]] = []
        keys = self._key_of()
        for rule_id, state in self._states.items():
            file, group, name, signature, occurrence = keys[rule_id]
            for rec in state.alerts.values():
                row = rec.to_row()
                row.update(file=file, group=group, rule=name, signature=signature, occurrence=occurrence,
                           alert=alert_to_dict(state.snapshot(rec)))
                rows.append(row)
        return rows

    def restore_state(self, rows: list[dict[str, Any]], now: float) -> None:
        """Restore alert states saved by `export_state` (at startup, before the first evaluation).

        A firing alert stays firing (no new FIRING transition); its next evaluation resolves it only
        if the condition no longer holds. A pending alert keeps its `for` progress unless the outage
        was longer than an hour. Rows of rules that no longer exist resolve at the next evaluation.
        """
        by_key = {k: self._states[id(r)] for k, r in self._keys(self.groups).items() if id(r) in self._states}
        by_old_key: dict[tuple[str, str, str, int], RuleState] = {}  # rows saved before groups had a file
        for (_file, group, rule, signature, occurrence), st in by_key.items():
            by_old_key.setdefault((group, rule, signature, occurrence), st)  # the first in load order
        restored = 0
        for row in rows:
            try:
                key = (str(row["group"]), str(row["rule"]), str(row["signature"]), int(row.get("occurrence", 0)))
                state = by_key.get((str(row["file"]), *key)) if "file" in row else by_old_key.get(key)
                if state is None:
                    if row.get("state") == AlertState.FIRING.value and isinstance(row.get("alert"), dict):
                        alert = alert_from_dict(row["alert"])
                        self._orphans.append(AlertTransition(alert, TransitionKind.RESOLVED, now,
                                                             details={"reason": "rule removed or changed"}))
                    continue
                saved = row.get("alert") if isinstance(row.get("alert"), dict) else {}
                if str(saved.get("discriminator", "")) != state.discriminator:  # its fingerprint changed
                    if row.get("state") == AlertState.FIRING.value:
                        self._orphans.append(AlertTransition(alert_from_dict(saved), TransitionKind.RESOLVED, now,
                                                             details={"reason": "rule removed or changed"}))
                    continue
                window = state.rule.flap.window if state.rule.flap else 1
                rec = AlertRecord.from_row(row, window)
            except (KeyError, TypeError, ValueError) as e:
                log.warning("ignoring a saved alert state that cannot be read: %s", e)
                continue
            if rec.state is AlertState.PENDING and now - rec.last_eval > FOR_OUTAGE_TOLERANCE_SECONDS:
                continue
            state.alerts[rec.labels] = rec
            restored += 1
        if restored:
            log.info("restored %d alert states", restored)
