"""`hostwarden test-rules FILE...`: rule unit tests in `promtool test rules` format.

    rule_files: [alerts.yaml]          # relative to the test file; globs allowed
    evaluation_interval: 1m            # default 1m
    group_eval_order: [g1, g2]         # optional
    tests:
      - interval: 1m                   # input series spacing; default evaluation_interval
        external_labels: {host: web-01}
        input_series:
          - series: 'up{job="node"}'
            values: '1 1 0x10 _ stale 1+1x5'
        alert_rule_test:
          - eval_time: 10m
            alertname: InstanceDown
            exp_alerts: [{exp_labels: {...}, exp_annotations: {...}}]
        promql_expr_test:
          - expr: sum(up)
            eval_time: 1m
            exp_samples: [{labels: '{}', value: 2}]

Same meaning as promtool: rules are evaluated every `evaluation_interval` from 0 up to the largest
eval_time; an alert test compares the *firing* alerts (labels and all annotations) of the evaluation at
or just before its eval_time; a PromQL test runs its query after all evaluations. Exit code 0 when every
file passes, 1 otherwise. Rule files may use hostwarden's extension keys (then `severity` is a label
of the alert, as it is everywhere else in hostwarden).
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import IO, Any

import promql_parser
from hostwarden.agent.core.samples import Labels
from hostwarden.agent.core.schema import Errors, did_you_mean
from hostwarden.agent.core.store import STALE_NAN, SeriesStore
from hostwarden.agent.core.units import format_duration, parse_duration
from hostwarden.agent.core.yamlsrc import LocDict, YAMLSourceError, load_yaml_file
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.manager import RuleManager
from hostwarden.rules.model import RuleGroup
from hostwarden.rules.promql import Element, PromQLError, compile_expr
from hostwarden.rules.promql_types import format_labels

FILE_KEYS = ("rule_files", "evaluation_interval", "group_eval_order", "tests")
GROUP_KEYS = ("interval", "input_series", "alert_rule_test", "promql_expr_test", "external_labels", "external_url",
              "name")
SERIES_KEYS = ("series", "values")
ALERT_TEST_KEYS = ("eval_time", "alertname", "exp_alerts")
EXP_ALERT_KEYS = ("exp_labels", "exp_annotations")
EXPR_TEST_KEYS = ("expr", "eval_time", "exp_samples")
EXP_SAMPLE_KEYS = ("labels", "value")

_NUM = r"[-+]?(?:[iI]nf|NaN|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+)"
_EXPAND = re.compile(rf"^(?P<a>{_NUM})(?:(?P<sign>[-+])(?P<b>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?x(?P<n>\d+)$")
_BLANKS = re.compile(r"^_(?:x(?P<n>\d+))?$")


class RuleTestError(Exception):
    pass


@dataclass
class Series:
    name: str
    labels: Labels
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class ExpAlert:
    labels: Labels
    annotations: Labels


@dataclass
class AlertTest:
    eval_time: float
    alertname: str
    exp_alerts: list[ExpAlert]


@dataclass
class ExprTest:
    expr: str
    eval_time: float
    exp_samples: list[tuple[Labels, float]]
    raw_labels: list[str] = field(default_factory=list)


@dataclass
class TestGroup:
    name: str
    interval: float
    series: list[Series]
    alert_tests: list[AlertTest]
    expr_tests: list[ExprTest]
    external_labels: dict[str, str]
    external_url: str


# -- parsing ---------------------------------------------------------------------------------------
def parse_number(text: str) -> float:
    t = text.strip()
    if t.lower().lstrip("+-") in ("inf", "nan"):
        return float(t)
    if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", t):
        return float(int(t, 16))
    return float(t)


def expand_values(text: str) -> list[float | None]:
    """promtool's series notation: `1 2 3`, `0+10x5`, `10-1x3`, `1x3`, `_`, `_x3`, `stale`. None = missing."""
    out: list[float | None] = []
    for tok in str(text).split():
        if m := _BLANKS.match(tok):
            out.extend([None] * (int(m.group("n")) if m.group("n") else 1))
            continue
        if tok == "stale":
            out.append(STALE_NAN)
            continue
        if m := _EXPAND.match(tok):
            a = parse_number(m.group("a"))
            n = int(m.group("n"))
            if m.group("sign") is None:
                out.extend([a] * (n + 1))
                continue
            b = parse_number(m.group("b")) * (-1 if m.group("sign") == "-" else 1)
            out.append(a)
            for _ in range(n):
                a += b  # accumulated, as Prometheus' parser does (float rounding included)
                out.append(a)
            continue
        try:
            out.append(parse_number(tok))
        except ValueError:
            raise RuleTestError(f"invalid value {tok!r} in series values {text!r}") from None
    return out


def parse_series_selector(text: str) -> tuple[str, Labels]:
    try:
        node = promql_parser.parse(str(text))
    except ValueError as e:
        raise RuleTestError(f"invalid series {text!r}: {e}") from None
    if type(node).__name__ != "VectorSelector":
        raise RuleTestError(f"invalid series {text!r}: expected metric{{label=\"value\", ...}}")
    name = node.name
    labels: dict[str, str] = {}
    for m in node.matchers.matchers:
        if m.op != promql_parser.MatchOp.Equal:
            raise RuleTestError(f"invalid series {text!r}: only = matchers are allowed")
        if m.name == "__name__":
            name = m.value
        else:
            labels[m.name] = m.value
    out = dict(labels)
    if name:
        out["__name__"] = name
    return name or "", tuple(sorted(out.items()))


def _labels_of_map(node: Any, where: str) -> Labels:
    if node is None:
        return ()
    if not isinstance(node, dict):
        raise RuleTestError(f"{where}: expected a mapping, got {node!r}")
    return tuple(sorted((str(k), _str(v)) for k, v in node.items()))


def _str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _strict(node: Any, keys: tuple[str, ...], where: str) -> LocDict:
    if not isinstance(node, dict):
        raise RuleTestError(f"{where}: expected a mapping, got {node!r}")
    for k in node:
        if k not in keys:
            loc = node.key_loc(k) if isinstance(node, LocDict) else ""
            raise RuleTestError(f"{loc}: unknown field {k!r} in {where}" + did_you_mean(str(k), keys))
    return node  # type: ignore[return-value]


def _list(node: Any, where: str) -> list[Any]:
    if node is None:
        return []
    if not isinstance(node, list):
        raise RuleTestError(f"{where}: expected a list, got {node!r}")
    return node


def _duration(v: Any, where: str) -> float:
    try:
        return parse_duration(v)
    except ValueError as e:
        raise RuleTestError(f"{where}: {e}") from None


def parse_test_group(node: Any, default_interval: float, index: int) -> TestGroup:
    g = _strict(node, GROUP_KEYS, f"tests[{index}]")
    interval = _duration(g["interval"], "interval") if g.get("interval") else default_interval
    series: list[Series] = []
    for s in _list(g.get("input_series"), "input_series"):
        s = _strict(s, SERIES_KEYS, "input_series")
        name, labels = parse_series_selector(s.get("series", ""))
        values = expand_values(str(s.get("values", "")))
        points = [(i * interval, v) for i, v in enumerate(values) if v is not None]
        series.append(Series(name, labels, points))
    alert_tests = []
    for a in _list(g.get("alert_rule_test"), "alert_rule_test"):
        a = _strict(a, ALERT_TEST_KEYS, "alert_rule_test")
        alertname = str(a.get("alertname") or "")
        if not alertname:
            raise RuleTestError("alertname can't be empty")
        exps = []
        for e in _list(a.get("exp_alerts"), "exp_alerts"):
            e = _strict(e, EXP_ALERT_KEYS, "exp_alerts")
            labels = dict(_labels_of_map(e.get("exp_labels"), "exp_labels"))
            labels["alertname"] = alertname
            exps.append(ExpAlert(tuple(sorted(labels.items())), _labels_of_map(e.get("exp_annotations"),
                                                                                 "exp_annotations")))
        alert_tests.append(AlertTest(_duration(a.get("eval_time", 0), "eval_time"), alertname, exps))
    expr_tests = []
    for p in _list(g.get("promql_expr_test"), "promql_expr_test"):
        p = _strict(p, EXPR_TEST_KEYS, "promql_expr_test")
        samples, raw = [], []
        for s in _list(p.get("exp_samples"), "exp_samples"):
            s = _strict(s, EXP_SAMPLE_KEYS, "exp_samples")
            raw.append(str(s.get("labels", "")))
            v = s.get("value", 0)
            samples.append(((), float(v) if not isinstance(v, str) else parse_number(v)))
        expr_tests.append(ExprTest(str(p.get("expr", "")), _duration(p.get("eval_time", 0), "eval_time"), samples,
                                   raw))
    ext = {str(k): _str(v) for k, v in (g.get("external_labels") or {}).items()}
    return TestGroup(str(g.get("name") or ""), interval, series, alert_tests, expr_tests, ext,
                     str(g.get("external_url") or ""))


# -- running ---------------------------------------------------------------------------------------
def _fmt_time(seconds: float) -> str:
    return format_duration(seconds)


def _fmt_alerts(alerts: list[ExpAlert]) -> str:
    if not alerts:
        return "[]"
    lines = ["["]
    for i, a in enumerate(alerts):
        lines.append(f"  {i}: Labels:{_fmt_labels(a.labels)}")
        lines.append(f"     Annotations:{_fmt_labels(a.annotations)}")
    lines.append("]")
    return "\n".join(lines)


def _fmt_labels(labels: Labels) -> str:
    return format_labels(None, labels)


def _fmt_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v) if not v.is_integer() else str(int(v)) if abs(v) < 1e21 else repr(v)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if i else line for i, line in enumerate(text.split("\n")))


class _Runner:
    def __init__(self, path: str, compat: int) -> None:
        self.path = path
        self.compat = compat

    def run(self) -> list[str]:
        try:
            doc = load_yaml_file(self.path)
        except YAMLSourceError as e:
            return [f"    {e}"]
        try:
            top = _strict(doc if doc is not None else {}, FILE_KEYS, "test file")
            interval = _duration(top["evaluation_interval"], "evaluation_interval") \
                if top.get("evaluation_interval") else 60.0
            order = [str(x) for x in _list(top.get("group_eval_order"), "group_eval_order")]
            if len(set(order)) != len(order):
                dup = next(x for x in order if order.count(x) > 1)
                return [f"    group name repeated in evaluation order: {dup}"]
            rule_files = self._rule_files(_list(top.get("rule_files"), "rule_files"))
            tests = [parse_test_group(t, interval, i) for i, t in enumerate(_list(top.get("tests"), "tests"))]
        except RuleTestError as e:
            return [f"    {e}"]
        errors = Errors()
        # a subquery without a step (`x[5m:]`) steps by the file's evaluation_interval, as in promtool
        groups = load_rule_files(rule_files, errors, default_interval=interval, promql_compat=self.compat,
                                 subquery_step=interval)
        if errors:
            return [f"    {issue}" for issue in errors.issues]
        if order:
            known = {g.name for g in groups}
            for name in order:
                if name not in known:
                    return [f"    group {name!r} in group_eval_order is not in the rule files"]
            rank = {n: i for i, n in enumerate(order)}
            missing = [g.name for g in groups if g.name not in rank]
            if missing:
                return [f"    group {missing[0]!r} in rule files but not in group_eval_order"]
            groups.sort(key=lambda g: rank[g.name])
        out: list[str] = []
        for tg in tests:
            out.extend(self._run_group(tg, groups, interval))
        return out

    def _rule_files(self, patterns: list[Any]) -> list[str]:
        base = os.path.dirname(os.path.abspath(self.path))
        files: list[str] = []
        for pat in patterns:
            full = pat if os.path.isabs(str(pat)) else os.path.join(base, str(pat))
            matches = sorted(glob.glob(full))
            if not matches and not glob.has_magic(full):
                raise RuleTestError(f"rule file {pat!r} does not exist")
            files.extend(matches)
        return files

    def _run_group(self, tg: TestGroup, groups: list[RuleGroup], eval_interval: float) -> list[str]:
        # promtool evaluates every group at every evaluation_interval, whatever the group's own interval
        # (which then must not make the manager think evaluations were missed)
        groups = [dataclasses.replace(g, interval=eval_interval) for g in groups]
        store = SeriesStore()
        store.set_retention({}, all_names=math.inf)
        for s in tg.series:
            labels = tuple(p for p in s.labels if p[0] != "__name__")
            store.load_series(s.name, labels, s.points)
        manager = RuleManager(groups, external_labels=tg.external_labels, external_url=tg.external_url)
        prefix = f"    name: {tg.name},\n" if tg.name else ""
        errs: list[str] = []
        step_ms = round(eval_interval * 1000)
        if step_ms <= 0:
            return [f"{prefix}    evaluation_interval must be positive"]
        max_ms = max([round(a.eval_time * 1000) for a in tg.alert_tests]
                     + [round(p.eval_time * 1000) for p in tg.expr_tests] + [0])
        pending = sorted(tg.alert_tests, key=lambda a: a.eval_time)
        cur = 0
        ts_ms = 0
        while ts_ms <= max_ms:
            now = ts_ms / 1000
            eval_errs = []
            for g in groups:
                manager.evaluate(g, store, now)
                for rule, message in manager.rule_errors(g):
                    eval_errs.append(f"    rule: {rule.name}, time: {_fmt_time(now)}, err: {message}")
            if eval_errs:
                return errs + eval_errs
            while cur < len(pending) and ts_ms <= round(pending[cur].eval_time * 1000) < ts_ms + step_ms:
                test = pending[cur]
                got = [ExpAlert(a.labels, tuple(sorted(a.annotations))) for g in groups
                       for a in manager.firing_alerts(g, test.alertname)]
                errs.extend(self._compare_alerts(prefix, test, got))
                cur += 1
            ts_ms += step_ms
        for et in tg.expr_tests:
            errs.extend(self._expr_test(et, store, eval_interval))
        return errs

    @staticmethod
    def _compare_alerts(prefix: str, test: AlertTest, got: list[ExpAlert]) -> list[str]:
        def key(a: ExpAlert) -> tuple[Labels, Labels]:
            return a.labels, a.annotations

        exp = sorted(test.exp_alerts, key=key)
        got = sorted(got, key=key)
        if exp == got:
            return []
        missing = [a for a in exp if a not in got]
        extra = [a for a in got if a not in exp]
        lines = [f"{prefix}    alertname: {test.alertname}, time: {_fmt_time(test.eval_time)},",
                 "        exp:" + _indent(_fmt_alerts(exp), "            "),
                 "        got:" + _indent(_fmt_alerts(got), "            ")]
        for a in missing:
            lines.append(f"        - missing: {_fmt_labels(a.labels)} {_fmt_labels(a.annotations)}")
        for a in extra:
            lines.append(f"        + unexpected: {_fmt_labels(a.labels)} {_fmt_labels(a.annotations)}")
        return ["\n".join(lines)]

    def _expr_test(self, et: ExprTest, store: SeriesStore, eval_interval: float) -> list[str]:
        head = f"    expr: {_go_quote(et.expr)}, time: {_fmt_time(et.eval_time)}"
        try:
            compiled = compile_expr(et.expr, prometheus_compat=2 if self.compat == 2 else 3,
                                    subquery_step=eval_interval)
            with store.lock:
                result = compiled.eval(store, et.eval_time)
        except PromQLError as e:
            return [f"{head}, err: {e}"]
        if isinstance(result, float | int):
            got = [((), float(result))]
        elif isinstance(result, list) and all(isinstance(x, Element) for x in result):
            got = [(el.labels, el.value) for el in result]
        else:
            return [f"{head}, err: rule result is not a vector or scalar"]
        exp = []
        for raw, (_, value) in zip(et.raw_labels, et.exp_samples, strict=True):
            try:
                _name, labels = parse_series_selector(raw) if raw.strip() not in ("", "{}") else ("", ())
            except RuleTestError as e:
                return [f"{head}, err: labels {raw!r}: {e}"]
            exp.append((labels, value))
        exp.sort(key=lambda s: s[0])
        got.sort(key=lambda s: s[0])
        same = len(exp) == len(got) and all(el == gl and ev == gv for (el, ev), (gl, gv) in zip(exp, got, strict=True))
        if same:
            return []
        lines = [f"{head},", f"        exp: {_fmt_samples(exp)}", f"        got: {_fmt_samples(got)}"]
        exp_map, got_map = dict(exp), dict(got)
        for labels, v in exp:
            if labels not in got_map:
                lines.append(f"        - missing: {_fmt_labels(labels)} {_fmt_value(v)}")
            elif got_map[labels] != v:
                lines.append(f"        ~ value: {_fmt_labels(labels)} expected {_fmt_value(v)}, "
                             f"got {_fmt_value(got_map[labels])}")
        for labels, v in got:
            if labels not in exp_map:
                lines.append(f"        + unexpected: {_fmt_labels(labels)} {_fmt_value(v)}")
        return ["\n".join(lines)]


def _fmt_samples(samples: list[tuple[Labels, float]]) -> str:
    if not samples:
        return "nil"
    return "\n             ".join(f"{_fmt_labels(lb)} {_fmt_value(v)}" for lb, v in samples)


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def run_test_files(paths: list[str], *, out: IO[str] | None = None, promql_compat: int = 3) -> int:
    """Run every test file; print promtool-style results; return 0 when all pass, else 1."""
    stream = out or sys.stdout
    failed = False
    for path in paths:
        stream.write(f"Unit Testing:  {path}\n")
        try:
            errs = _Runner(path, promql_compat).run()
        except Exception as e:  # report, go on with the next file
            errs = [f"    internal error: {type(e).__name__}: {e}"]
        if errs:
            failed = True
            stream.write("  FAILED:\n")
            for e in errs:
                stream.write(e + "\n")
        else:
            stream.write("  SUCCESS\n")
        stream.write("\n")
    return 1 if failed else 0

