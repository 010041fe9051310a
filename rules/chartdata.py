"""The series behind an alert, over a recent window, and the thresholds it is compared with.

For a plain Prometheus rule `EXPR > 0.9` (a comparison with a number at the top) the series is
EXPR's value and the threshold 0.9; for a rule with hostwarden's `warning:`/`critical:` levels it is
the expression's value and both levels; any other expression (`absent(...)`, `a and b`) is charted
as it is, without a threshold line. The expression is evaluated at evenly spaced instants over the
window from the agent's own store (hold nothing: `chart_series` takes `store.lock` per instant, so
collectors are never blocked for the whole window).
"""

from __future__ import annotations

from dataclasses import dataclass

import promql_parser
from hostwarden.agent.core.samples import Labels
from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.model import Rule
from hostwarden.rules.promql import Compiled, PromQLError, compile_expr

MAX_SERIES_PER_CHART = 5
_COMPARISONS = {">", "<", ">=", "<=", "==", "!="}
_FLIPPED = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="}


@dataclass(frozen=True, slots=True)
class ThresholdLine:
    label: str  # "warning", "critical", "> 0.9"
    value: float


@dataclass(frozen=True, slots=True)
class ChartSeries:
    labels: Labels
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ValueExpr:
    compiled: Compiled
    thresholds: tuple[ThresholdLine, ...]


def value_expr(rule: Rule, *, subquery_step: float = 60.0) -> ValueExpr | None:
    """What to chart for `rule` (None when the expression cannot be charted)."""
    if rule.extended:
        lines = tuple(ThresholdLine(name, t.value) for name, t in (("warning", rule.warning),
                                                                  ("critical", rule.critical)) if t is not None)
        return ValueExpr(rule.compiled, lines)
    text, lines = rule.expr, ()
    try:
        ast = promql_parser.parse(rule.expr)
        while isinstance(ast, promql_parser.ParenExpr):
            ast = ast.expr
        if isinstance(ast, promql_parser.BinaryExpr) and str(ast.op) in _COMPARISONS and not _is_bool(ast):
            op = str(ast.op)
            if isinstance(ast.rhs, promql_parser.NumberLiteral):
                text, lines = str(ast.lhs), (ThresholdLine(f"{op} {ast.rhs.val:g}", float(ast.rhs.val)),)
            elif isinstance(ast.lhs, promql_parser.NumberLiteral):
                text = str(ast.rhs)
                lines = (ThresholdLine(f"{_FLIPPED[op]} {ast.lhs.val:g}", float(ast.lhs.val)),)
        compiled = compile_expr(text, subquery_step=subquery_step) if text != rule.expr else rule.compiled
    except (ValueError, PromQLError, AttributeError):
        compiled, lines = rule.compiled, ()
    if compiled.value_type not in ("vector", "scalar"):
        return None
    return ValueExpr(compiled, lines)


def _is_bool(ast: object) -> bool:
    modifier = getattr(ast, "modifier", None)
    return bool(getattr(modifier, "return_bool", False))


def chart_series(expr: ValueExpr, alert_labels: Labels, store: SeriesStore, *, start: float, end: float,
                 steps: int, ignore: frozenset[str] = frozenset()) -> list[ChartSeries]:
    """`expr` evaluated at `steps` instants from `start` to `end`, keeping the series whose labels agree
    with the alert's (labels in `ignore`, the rule's own labels, are not compared)."""
    wanted = dict(alert_labels)
    points: dict[Labels, list[tuple[float, float]]] = {}
    steps = max(2, steps)
    for i in range(steps):
        t = start + (end - start) * i / (steps - 1)
        try:
            with store.lock:
                result = expr.compiled.eval(store, t)
        except PromQLError:
            continue
        elements = [((), float(result))] if isinstance(result, float | int) else \
            [(el.labels, el.value) for el in result]  # type: ignore[union-attr]
        for labels, value in elements:
            key = tuple(p for p in labels if p[0] != "__name__")
            if any(wanted.get(k, v) != v for k, v in key if k not in ignore):
                continue
            if key not in points and len(points) >= MAX_SERIES_PER_CHART:
                continue
            points.setdefault(key, []).append((t, value))
    return [ChartSeries(k, tuple(v)) for k, v in points.items()]
