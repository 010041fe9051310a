"""Rule files: Prometheus' format unchanged, plus hostwarden's threshold extensions.

    groups:
      - name: host
        interval: 30s          # default: the agent's evaluation interval
        limit: 0               # Prometheus' per-group alert limit (0: none)
        rules:
          - alert: HighMemory
            expr: hostwarden_memory_used_ratio
            warning: "> 0.85"      # extension: thresholds decide, not expr filtering
            critical: "> 0.95"
            clear: "< 0.80"        # hysteresis: once firing, stays firing until this holds
            flap: {window: 21, high: 0.5, low: 0.25}
            group_by: [host]
            category: capacity
            remediate: [{restart_unit: nginx.service}]   # see agent.core.remedy, docs/remediation.md
            for: 5m
            keep_firing_for: 2m
            labels: {team: ops}
            annotations: {summary: "Memory {{ $value | humanizePercentage }} used"}
          - record: job:cpu:ratio   # recording rules are supported: the result goes back to the store
            expr: avg(hostwarden_cpu_usage_ratio)

Every problem is recorded in the caller's `Errors` as `file:line:col: message`; PromQL and
template errors point inside the expression (plain, quoted and block scalars alike).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from hostwarden.agent.core.remedy import parse_plan
from hostwarden.agent.core.schema import Errors, did_you_mean
from hostwarden.agent.core.units import parse_duration
from hostwarden.agent.core.yamlsrc import Loc, LocDict, LocList, YAMLSourceError, load_yaml
from hostwarden.rules.model import NEGATED, Flap, Rule, RuleGroup, Threshold
from hostwarden.rules.promql import Compiled, PromQLError, compile_expr
from hostwarden.rules.templates import Template, TemplateError, parse_template

TOP_KEYS = ("groups",)
GROUP_KEYS = ("name", "interval", "limit", "rules")
PROMETHEUS_RULE_KEYS = ("alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations")
EXTENSION_KEYS = ("warning", "critical", "clear", "flap", "group_by", "category", "remediate")
RULE_KEYS = PROMETHEUS_RULE_KEYS + EXTENSION_KEYS
FLAP_KEYS = ("window", "high", "low")

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_THRESHOLD = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def load_rule_files(paths: list[str], errors: Errors, *, default_interval: float, promql_compat: int = 3,
                    subquery_step: float | None = None) -> list[RuleGroup]:
    """Load every file; problems go to `errors`, the groups that loaded cleanly are returned.

    `promql_compat=2` evaluates with Prometheus 2.x boundaries (for parity with promtool 2.x);
    `subquery_step` is the default subquery step (Prometheus: the global evaluation interval).
    """
    loader = _Loader(errors, default_interval, promql_compat, subquery_step or default_interval)
    groups: list[RuleGroup] = []
    seen: set[str] = set()
    for path in paths:
        if os.path.normpath(path) in seen:  # listed twice (overlapping globs): loaded once, as Prometheus does
            continue
        seen.add(os.path.normpath(path))
        groups.extend(loader.load_file(path))
    return groups


def parse_threshold(text: Any) -> Threshold:
    """`"> 0.95"` → Threshold; raises ValueError with a message for anything else."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"bad threshold {text!r}: expected a comparison such as \"> 0.95\"")
    m = _THRESHOLD.match(str(text))
    if not m:
        raise ValueError(f"bad threshold {str(text)!r}: expected an operator (> >= < <= == !=) and a number, "
                         "e.g. \"> 0.95\"")
    return Threshold(m.group(1), float(m.group(2)))


def scalar_loc(source_lines: list[str], start: Loc, value: str, offset: int) -> Loc:
    """Where character `offset` of a YAML scalar's value sits in the file.

    `start` is the scalar's start mark (the quote or block indicator for quoted and block scalars).
    The value is aligned with the source greedily: folded line breaks, indentation, quotes and escape
    backslashes are skipped, so plain, quoted, literal and folded scalars all map sensibly.
    """
    li, ci = start.line - 1, start.col - 1
    if not 0 <= li < len(source_lines):
        return start
    first = source_lines[li][ci:ci + 1]
    if first in ("|", ">"):
        li, ci = li + 1, 0
    elif first in ("'", '"'):
        ci += 1
    flat: list[tuple[str, int, int]] = []
    for n in range(li, min(len(source_lines), li + 500)):
        line = source_lines[n]
        for c in range(ci if n == li else 0, len(line)):
            flat.append((line[c], n + 1, c + 1))
        flat.append(("\n", n + 1, len(line) + 1))
    if not flat:
        return start
    cursor = 0
    offset = max(0, min(offset, len(value)))
    for k in range(offset + 1):
        if cursor >= len(flat):
            return Loc(start.file, flat[-1][1], flat[-1][2])
        if k == len(value):
            return Loc(start.file, flat[cursor][1], flat[cursor][2])
        ch = value[k]
        hit = cursor if ch in " \t\n" and flat[cursor][0] in " \t\n" else _find(flat, cursor, ch)
        if hit is None:
            return Loc(start.file, flat[cursor][1], flat[cursor][2])
        if k == offset:
            return Loc(start.file, flat[hit][1], flat[hit][2])
        cursor = hit + 1
    return start


def _find(flat: list[tuple[str, int, int]], cursor: int, ch: str) -> int | None:
    skipped_other = 0
    i = cursor
    while i < len(flat):
        c = flat[i][0]
        if c == ch:
            return i
        if c in " \t\n":
            i += 1
            continue
        if c in "\\'\"" and skipped_other < 2:
            skipped_other += 1
            i += 1
            continue
        return None
    return None


class _Loader:
    def __init__(self, errors: Errors, default_interval: float, compat: int, subquery_step: float) -> None:
        self.errors = errors
        self.default_interval = default_interval
        self.compat = compat
        self.subquery_step = subquery_step
        self.group_names: dict[str, Loc] = {}
        self.lines: list[str] = []

    def err(self, loc: Loc, message: str) -> None:
        self.errors.add(loc, message)

    # -- files and groups ------------------------------------------------------------------------
    def load_file(self, path: str) -> list[RuleGroup]:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            self.err(Loc(path, 1, 1), f"cannot read rule file: {e.strerror or e}")
            return []
        except UnicodeDecodeError as e:
            self.err(Loc(path, 1, 1), f"rule file is not UTF-8: {e.reason}")
            return []
        self.lines = text.splitlines()
        self.group_names = {}  # unique within a file, as in Prometheus; another file may reuse a name
        try:
            doc = load_yaml(text, path)
        except YAMLSourceError as e:
            self.err(e.loc, e.message)
            return []
        top = Loc(path, 1, 1)
        if doc is None:
            return []  # an empty rule file is valid (as in Prometheus)
        if not isinstance(doc, LocDict):
            self.err(top, f"rule file must be a mapping with a 'groups' list, got {_kind(doc)}")
            return []
        self._unknown_keys(doc, TOP_KEYS, "")
        groups_node = doc.get("groups")
        if groups_node is None:
            return []
        if not isinstance(groups_node, LocList):
            self.err(doc.value_loc("groups"), f"groups: expected a list of rule groups, got {_kind(groups_node)}")
            return []
        out = []
        for i, g in enumerate(groups_node):
            group = self._group(g, groups_node.item_loc(i), path)
            if group is not None:
                out.append(group)
        return out

    def _unknown_keys(self, node: LocDict, allowed: Iterable[str], where: str, extra: str = "") -> bool:
        ok = True
        allowed = tuple(allowed)
        for key in node:
            if key not in allowed:
                self.err(node.key_loc(key), f"unknown key '{where}{key}'" + did_you_mean(str(key), allowed) + extra)
                ok = False
        return ok

    def _duration(self, node: LocDict, key: str, where: str) -> float | None:
        if key not in node or node[key] is None:
            return None
        try:
            return parse_duration(node[key])
        except ValueError as e:
            self.err(node.value_loc(key), f"{where}{key}: {e}")
            return None

    def _group(self, node: Any, loc: Loc, path: str) -> RuleGroup | None:
        if not isinstance(node, LocDict):
            self.err(loc, f"rule group: expected a mapping with name and rules, got {_kind(node)}")
            return None
        ok = self._unknown_keys(node, GROUP_KEYS, "")
        name = node.get("name")
        if name is None or name == "":
            self.err(node.loc, "rule group: missing required key 'name'")
            return None
        if not isinstance(name, str):
            self.err(node.value_loc("name"), f"group name must be a string, got {name!r}")
            return None
        if name in self.group_names:
            first = self.group_names[name]
            self.err(node.value_loc("name"), f"group {name!r} is defined twice in this file (first at line "
                                             f"{first.line})")
            ok = False
        else:
            self.group_names[name] = node.value_loc("name")
        interval = self._duration(node, "interval", "")
        if interval is not None and interval <= 0:
            self.err(node.value_loc("interval"), "interval must be positive")
            ok = False
        if "interval" in node and node["interval"] is not None and interval is None:
            ok = False
        limit = node.get("limit", 0) or 0
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            self.err(node.value_loc("limit"), f"limit: expected a non-negative integer, got {limit!r}")
            ok, limit = False, 0
        rules_node = node.get("rules")
        rules: list[Rule] = []
        if rules_node is None:
            rules_node = LocList()
        if not isinstance(rules_node, LocList):
            self.err(node.value_loc("rules"), f"rules: expected a list of rules, got {_kind(rules_node)}")
            return None
        for i, r in enumerate(rules_node):
            # two alerting rules with the same name and labels are two rules, as in Prometheus (their
            # incidents are told apart: see RuleManager's rule keys and docs/rules.md)
            rule = self._rule(r, rules_node.item_loc(i), path, name)
            if rule is None:
                ok = False
                continue
            rules.append(rule)
        if not ok:
            return None
        return RuleGroup(name=name, interval=interval or self.default_interval, rules=tuple(rules), file=path,
                         line=node.loc.line, limit=limit)

    # -- rules -----------------------------------------------------------------------------------
    def _rule(self, node: Any, loc: Loc, path: str, group: str) -> Rule | None:
        if not isinstance(node, LocDict):
            self.err(loc, f"rule: expected a mapping with alert or record and expr, got {_kind(node)}")
            return None
        ok = self._unknown_keys(node, RULE_KEYS, "")
        if "alert" in node and "record" in node:
            self.err(node.key_loc("record"), "a rule has either 'alert' or 'record', not both")
            return None
        kind = "alert" if "alert" in node else "record" if "record" in node else None
        if kind is None:
            self.err(node.loc, "rule: missing required key 'alert' or 'record'")
            return None
        name = node[kind]
        if not isinstance(name, str) or not name.strip():
            self.err(node.value_loc(kind), f"{kind}: expected a non-empty name, got {name!r}")
            return None
        if kind == "record" and not METRIC_NAME.match(name):
            self.err(node.value_loc(kind), f"invalid recording rule name {name!r}: not a valid metric name")
            ok = False
        if kind == "record":
            for key in ("for", "keep_firing_for", "annotations", *EXTENSION_KEYS):
                if key in node:
                    self.err(node.key_loc(key), f"'{key}' is only valid on alerting rules")
                    ok = False
        compiled = self._expr(node)
        if compiled is None:
            ok = False
        for_ = self._duration(node, "for", "")
        kff = self._duration(node, "keep_firing_for", "")
        for key, got in (("for", for_), ("keep_firing_for", kff)):
            if key in node and node[key] is not None and got is None:
                ok = False
        labels = self._templates(node, "labels", check_names=True)
        annotations = self._templates(node, "annotations", check_names=True)
        if labels is None or annotations is None:
            ok = False
        thresholds: dict[str, Threshold | None] = {}
        for key in ("warning", "critical", "clear"):
            thresholds[key] = None
            if key in node and kind == "alert":
                try:
                    thresholds[key] = parse_threshold(node[key])
                except ValueError as e:
                    self.err(node.value_loc(key), f"{key}: {e}")
                    ok = False
        warning, critical, clear = thresholds["warning"], thresholds["critical"], thresholds["clear"]
        extended = "warning" in node or "critical" in node
        if kind == "alert":
            ok = self._check_extensions(node, labels or (), warning, critical, clear, extended) and ok
        flap = self._flap(node) if kind == "alert" and "flap" in node else None
        if kind == "alert" and "flap" in node and flap is None:
            ok = False
        group_by = self._group_by(node) if kind == "alert" and "group_by" in node else None
        if kind == "alert" and "group_by" in node and group_by is None:
            ok = False
        category = node.get("category", "") if kind == "alert" else ""
        if not isinstance(category, str):
            self.err(node.value_loc("category"), f"category: expected a string, got {category!r}")
            ok = False
        remediate = None
        if kind == "alert" and "remediate" in node:
            remediate = parse_plan(node["remediate"], self.errors, node.key_loc("remediate"))
            ok = ok and remediate is not None
        if compiled is not None and kind == "alert" and compiled.value_type not in ("vector", "scalar"):
            self.err(node.value_loc("expr"), f"expr: an alerting rule needs an instant vector or scalar, "
                                             f"got a {compiled.value_type}")
            ok = False
        if compiled is not None and kind == "record" and compiled.value_type not in ("vector", "scalar"):
            self.err(node.value_loc("expr"), f"expr: a recording rule needs an instant vector or scalar, "
                                             f"got a {compiled.value_type}")
            ok = False
        if not ok or compiled is None:
            return None
        raw = {k: node[k] for k in node}
        return Rule(kind=kind, name=name, expr=compiled.text, compiled=compiled, file=path, line=node.loc.line,
                    for_=for_ or 0.0, keep_firing_for=kff or 0.0, labels=labels or (), annotations=annotations or (),
                    warning=warning, critical=critical, clear=clear, flap=flap, group_by=group_by,
                    category=category, remediate=remediate, raw=raw)

    def _expr(self, node: LocDict) -> Compiled | None:
        if "expr" not in node or node["expr"] is None or node["expr"] == "":
            self.err(node.loc, "rule: missing required key 'expr'")
            return None
        text = node["expr"]
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            self.err(node.value_loc("expr"), f"expr: expected a PromQL expression, got {_kind(text)}")
            return None
        text = str(text)
        try:
            return compile_expr(text, prometheus_compat=2 if self.compat == 2 else 3,
                                subquery_step=self.subquery_step)
        except PromQLError as e:
            loc = node.value_loc("expr")
            if e.position is not None and isinstance(node["expr"], str):
                loc = scalar_loc(self.lines, loc, text, e.position)
            self.err(loc, f"expr: {e.message}")
            return None
        except Exception as e:  # a bug in the compiler must not take check-config down
            self.err(node.value_loc("expr"), f"expr: cannot compile: {type(e).__name__}: {e}")
            return None

    def _templates(self, node: LocDict, key: str, *, check_names: bool) -> tuple[tuple[str, Template], ...] | None:
        value = node.get(key)
        if value is None:
            return ()
        if not isinstance(value, LocDict):
            self.err(node.value_loc(key), f"{key}: expected a mapping of names to strings, got {_kind(value)}")
            return None
        out: list[tuple[str, Template]] = []
        ok = True
        for k, v in value.items():
            if check_names and (not isinstance(k, str) or not LABEL_NAME.match(k) or k == "__name__"):
                self.err(value.key_loc(k), f"{key}: invalid name {k!r}")
                ok = False
                continue
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                self.err(value.value_loc(k), f"{key}.{k}: expected a string, got {_kind(v)}")
                ok = False
                continue
            text = str(v)
            try:
                out.append((k, parse_template(text)))
            except TemplateError as e:
                loc = value.value_loc(k)
                if e.position is not None and isinstance(v, str):
                    loc = scalar_loc(self.lines, loc, text, e.position)
                self.err(loc, f"{key}.{k}: template error: {e.message}")
                ok = False
        return tuple(out) if ok else None

    def _check_extensions(self, node: LocDict, labels: tuple[tuple[str, Template], ...], warning: Threshold | None,
                          critical: Threshold | None, clear: Threshold | None, extended: bool) -> bool:
        ok = True
        if "clear" in node and not extended:
            self.err(node.key_loc("clear"), "'clear' needs a 'warning' or 'critical' threshold")
            ok = False
        if extended and any(k == "severity" for k, _ in labels):
            self.err(node["labels"].key_loc("severity"),
                     "labels.severity cannot be set on a rule with warning/critical thresholds "
                     "(the severity is the level whose threshold holds)")
            ok = False
        if warning and critical and warning.op == critical.op and warning.op in (">", ">=", "<", "<="):
            up = warning.op in (">", ">=")
            if (up and critical.value < warning.value) or (not up and critical.value > warning.value):
                self.err(node.value_loc("critical"), f"critical {critical.text!r} is less severe than "
                                                     f"warning {warning.text!r}")
                ok = False
        if clear:
            for level, thr in (("warning", warning), ("critical", critical)):
                if thr is None or thr.op in ("==", "!="):
                    continue
                up = thr.op in (">", ">=")
                if clear.op not in (("<", "<=") if up else (">", ">=")):
                    self.err(node.value_loc("clear"), f"clear {clear.text!r} must point the other way than "
                                                      f"{level} {thr.text!r} (e.g. {NEGATED[thr.op]} ...)")
                    ok = False
                    break
                overlap = clear.value > thr.value if up else clear.value < thr.value
                if overlap or (clear.value == thr.value and clear.op[-1] == "=" and thr.op[-1] == "="):
                    self.err(node.value_loc("clear"), f"clear {clear.text!r} overlaps {level} {thr.text!r}: "
                                                      "a value could both raise and clear the alert")
                    ok = False
                    break
        return ok

    def _flap(self, node: LocDict) -> Flap | None:
        value = node["flap"]
        if not isinstance(value, LocDict):
            self.err(node.value_loc("flap"), f"flap: expected a mapping with window, high and low, got {_kind(value)}")
            return None
        if not self._unknown_keys(value, FLAP_KEYS, "flap."):
            return None
        d = Flap()
        window = value.get("window", d.window)
        high = value.get("high", d.high)
        low = value.get("low", d.low)
        ok = True
        if isinstance(window, bool) or not isinstance(window, int) or not 3 <= window <= 1000:
            self.err(value.value_loc("window"), f"flap.window: expected a number of evaluations from 3 to 1000, "
                                                f"got {window!r}")
            ok = False
        for key, v in (("high", high), ("low", low)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
                self.err(value.value_loc(key), f"flap.{key}: expected a ratio in (0, 1] (0.5 means 50%), got {v!r}")
                ok = False
        if ok and low >= high:
            self.err(value.value_loc("low"), f"flap.low ({low}) must be below flap.high ({high})")
            ok = False
        return Flap(window=window, high=float(high), low=float(low)) if ok else None

    def _group_by(self, node: LocDict) -> tuple[str, ...] | None:
        value = node["group_by"]
        if not isinstance(value, LocList):
            self.err(node.value_loc("group_by"), f"group_by: expected a list of label names, got {_kind(value)}")
            return None
        out = []
        for i, v in enumerate(value):
            if not isinstance(v, str) or not LABEL_NAME.match(v):
                self.err(value.item_loc(i), f"group_by: invalid label name {v!r}")
                return None
            out.append(v)
        return tuple(out)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)
