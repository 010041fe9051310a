"""`hostwarden rules export`: the loaded rules as one Prometheus rule file `promtool check rules` accepts.

Plain Prometheus rules are written as they were loaded. A threshold rule becomes one alerting rule
per level, with the same `alert` name and a `severity` label:

    expr: hostwarden_memory_used_ratio        →  - alert: HighMemory
    warning: "> 0.85"                              expr: (hostwarden_memory_used_ratio) > 0.85 or ((...) >= 0.8
    critical: "> 0.95"                                   and ignoring(alertname, alertstate, severity) ALERTS{...})
    clear: "< 0.80"                                labels: {severity: warning}
                                                 - alert: HighMemory
                                                   expr: (hostwarden_memory_used_ratio) > 0.95
                                                   labels: {severity: critical}

`clear` hysteresis is compiled with the usual Prometheus idiom: the alert also stays active while the
value does not satisfy `clear` *and* the alert is already firing (its own `ALERTS` series). In
Prometheus both severities fire together above the critical threshold (inhibit warning by critical in
Alertmanager), where hostwarden escalates one alert. `flap` and `group_by` have no rule-file
equivalent and are written as comments; `category` becomes an annotation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from hostwarden.agent.core.units import format_duration
from hostwarden.rules.model import NEGATED, GroupKey, Rule, RuleGroup, Threshold


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _num(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e15 else repr(v)


def _cond(expr: str, thr: Threshold) -> str:
    return f"({expr.strip()}) {thr.op} {_num(thr.value)}"


def _hysteresis(rule: Rule, raise_thr: Threshold, clear: Threshold) -> str:
    ignoring = ["alertname", "alertstate", "severity", *sorted(k for k, _ in rule.labels if k != "severity")]
    hold = f"({rule.expr.strip()}) {NEGATED[clear.op]} {_num(clear.value)}"
    alerts = f'ALERTS{{alertname={_q(rule.name)}, alertstate="firing"}}'
    return f"{_cond(rule.expr, raise_thr)}\nor\n(\n  {hold}\n  and ignoring({', '.join(ignoring)})\n  {alerts}\n)"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, indent: int, text: str) -> None:
        self.lines.append(" " * indent + text)

    def scalar(self, indent: int, key: str, value: str) -> None:
        if "\n" in value and not value.endswith((" ", "\n")) and all(ln == ln.rstrip() for ln in value.split("\n")):
            self.line(indent, f"{key}: |-")
            for ln in value.split("\n"):
                self.line(indent + 2, ln) if ln else self.lines.append("")
        else:
            self.line(indent, f"{key}: {_q(value)}")

    def mapping(self, indent: int, key: str, items: Iterable[tuple[str, str]]) -> None:
        items = list(items)
        if not items:
            return
        self.line(indent, f"{key}:")
        for k, v in items:
            self.scalar(indent + 2, _q(k) if not k.replace("_", "a").isalnum() else k, v)


def _write_rule(w: _Writer, rule: Rule, *, name: str, expr: str, severity: str | None, notes: list[str]) -> None:
    for note in notes:
        w.line(6, f"# {note}")
    w.line(6, f"- {rule.kind}: {_q(name)}")
    w.scalar(8, "expr", expr.strip())
    if rule.kind == "alert":
        if rule.for_:
            w.line(8, f"for: {format_duration(rule.for_)}")
        if rule.keep_firing_for:
            w.line(8, f"keep_firing_for: {format_duration(rule.keep_firing_for)}")
    labels = [(k, t.text) for k, t in rule.labels]
    if severity is not None:
        labels.append(("severity", severity))
    w.mapping(8, "labels", labels)
    if rule.kind == "alert":
        annotations = [(k, t.text) for k, t in rule.annotations]
        if rule.category and not any(k == "category" for k, _ in annotations):
            annotations.append(("category", rule.category))
        w.mapping(8, "annotations", annotations)


def _notes(rule: Rule) -> list[str]:
    notes = [f"{rule.name} ({rule.source})"]
    if rule.flap is not None:
        notes.append(f"hostwarden flap detection (window {rule.flap.window}, high {rule.flap.high:g}, "
                     f"low {rule.flap.low:g}) has no Prometheus equivalent")
    if rule.group_by is not None:
        notes.append(f"hostwarden group_by: [{', '.join(rule.group_by)}] - set it on the Alertmanager route")
    if rule.remediate is not None:
        notes.append("hostwarden remediate: " + "; ".join(a.describe() for a in rule.remediate.actions)
                     + " - only the agent runs it")
    return notes


def export_rule(w: _Writer, rule: Rule) -> None:
    notes = _notes(rule)
    if not rule.extended:
        _write_rule(w, rule, name=rule.name, expr=rule.expr, severity=None, notes=notes)
        return
    clear = rule.clear
    levels = [(lvl, thr) for lvl, thr in (("critical", rule.critical), ("warning", rule.warning)) if thr is not None]
    lowest = levels[-1][0]
    for lvl, thr in levels:
        level_notes = list(notes)
        if clear is not None and lvl == lowest:
            expr = _hysteresis(rule, thr, clear)
            level_notes.append(f"clear: {clear.text!r} (hysteresis: stays firing until the value is {clear.text})")
        else:
            expr = _cond(rule.expr, thr)
        if lvl == "critical" and len(levels) == 2:
            level_notes.append("hostwarden escalates one alert; here both severities fire above the critical "
                               "threshold (inhibit warning by critical in Alertmanager)")
        _write_rule(w, rule, name=rule.name, expr=expr, severity=lvl, notes=level_notes)
        notes = [f"{rule.name} ({rule.source})"]


def _unique_names(groups: list[RuleGroup]) -> dict[GroupKey, str]:
    """Group names for one file: a name several files use gets its file's name appended (then a number)."""
    out: dict[GroupKey, str] = {}
    taken: set[str] = set()
    for g in groups:
        name = g.name
        if name in taken:
            name = f"{g.name} ({os.path.basename(g.file)})"
            n = 2
            while name in taken:
                name, n = f"{g.name} ({os.path.basename(g.file)} {n})", n + 1
        taken.add(name)
        out[g.key] = name
    return out


def export_groups(groups: list[RuleGroup], *, sources: Iterable[str] = ()) -> str:
    """The rule file text."""
    w = _Writer()
    src = ", ".join(sources)
    w.line(0, "# Generated by `hostwarden rules export`" + (f" from: {src}" if src else "") + ".")
    w.line(0, "# Threshold extensions (warning/critical/clear) are compiled to one alert per severity;")
    w.line(0, "# flap detection and group_by have no rule-file equivalent and are kept as comments.")
    if not groups:
        w.line(0, "groups: []")
        return "\n".join(w.lines) + "\n"
    w.line(0, "groups:")
    names = _unique_names(groups)
    for g in groups:
        if names[g.key] != g.name:
            w.line(2, f"# group {g.name!r} of {g.file} (renamed: one file may not repeat a group name)")
        w.line(2, f"- name: {_q(names[g.key])}")
        w.line(4, f"interval: {format_duration(g.interval)}")
        if g.limit:
            w.line(4, f"limit: {g.limit}")
        if not g.rules:
            w.line(4, "rules: []")
            continue
        w.line(4, "rules:")
        for rule in g.rules:
            export_rule(w, rule)
    return "\n".join(w.lines) + "\n"
