"""PromQL functions (promql/functions.go semantics) as evaluation nodes.

Range-vector functions get each series' window as `(timestamps, values)` — Python sequences with
stale markers already removed — and return one float or None (no output element). Everything
that is not `last_over_time`, `sort*`, `label_*` drops the metric name, as Prometheus does.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hostwarden.agent.core.samples import Labels
from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.promql_aggregate import fsum, kahan_mean, kahan_sum, kahan_variance, mean, quantile
from hostwarden.rules.promql_eval import (
    INF,
    LEGACY_LABEL_NAME,
    NAN,
    MatrixNode,
    Node,
    NumberNode,
    Options,
    VectorSelectorNode,
    check_unique,
    drop_names,
    get_label,
    ms_grid,
    set_label,
)
from hostwarden.rules.promql_regex import RE2Regex
from hostwarden.rules.promql_types import NAME_LABEL, PromQLError, Sample


@dataclass(frozen=True, slots=True)
class RangeCall:
    start: float  # range start (exclusive; inclusive in v2)
    end: float  # range end (inclusive)
    range: float  # seconds
    t: float  # evaluation time
    args: tuple[float, ...]  # scalar arguments
    v2: bool


RangeImpl = Callable[[Any, Any, RangeCall], float | None]


# -- rate family ---------------------------------------------------------------------------------


def extrapolated_rate(ts: Any, vals: Any, c: RangeCall, *, counter: bool, rate: bool) -> float | None:
    """rate/increase/delta: the change over the window, extrapolated towards its boundaries."""
    n = len(vals)
    if n < 2:
        return None
    first_t, last_t, first_v = ts[0], ts[-1], vals[0]
    result = vals[-1] - first_v
    if counter:
        prev = first_v
        correction = 0.0
        for v in vals:
            if v < prev:
                correction += prev
            prev = v
        result += correction
    to_start = first_t - c.start
    to_end = c.end - last_t
    sampled = last_t - first_t
    if sampled <= 0:
        return None
    avg_step = sampled / (n - 1)
    threshold = avg_step * 1.1
    if c.v2:  # Prometheus 2.x: the zero point clamps before the threshold test
        if counter and result > 0 and first_v >= 0:
            to_start = min(to_start, sampled * (first_v / result))
        to_start = to_start if to_start < threshold else avg_step / 2
        to_end = to_end if to_end < threshold else avg_step / 2
    else:
        if to_start >= threshold:
            to_start = avg_step / 2
        if counter and result > 0 and first_v >= 0:
            to_start = min(to_start, sampled * (first_v / result))
        if to_end >= threshold:
            to_end = avg_step / 2
    factor = (sampled + to_start + to_end) / sampled
    if rate:
        factor /= c.range
    return result * factor


def instant_value(ts: Any, vals: Any, *, rate: bool) -> float | None:
    """irate/idelta: from the last two samples of the window."""
    if len(vals) < 2:
        return None
    prev, last = vals[-2], vals[-1]
    dt = ts[-1] - ts[-2]
    if dt == 0:
        return None
    result = last if rate and last < prev else last - prev
    return result / dt if rate else result


def linear_regression(ts: Any, vals: Any, intercept_time: float) -> tuple[float, float]:
    first = vals[0]
    if all(v == first for v in vals):
        return (NAN, NAN) if math.isinf(first) else (0.0, first)
    n = len(vals)
    xs = [x - intercept_time for x in ts]
    sum_x = fsum(xs)
    sum_y = fsum(vals)
    sum_xy = fsum([x * y for x, y in zip(xs, vals, strict=True)])
    sum_x2 = fsum([x * x for x in xs])
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    try:
        slope = cov_xy / var_x
    except ZeroDivisionError:
        slope = NAN if cov_xy == 0 or cov_xy != cov_xy else math.copysign(INF, cov_xy)
    return slope, sum_y / n - slope * sum_x / n


def _deriv(ts: Any, vals: Any, c: RangeCall) -> float | None:
    if len(vals) < 2:
        return None
    return linear_regression(ts, vals, ts[0])[0]


def _predict_linear(ts: Any, vals: Any, c: RangeCall) -> float | None:
    if len(vals) < 2:
        return None
    slope, intercept = linear_regression(ts, vals, c.t)
    return slope * c.args[0] + intercept


def _changes(ts: Any, vals: Any, c: RangeCall) -> float:
    count = 0
    prev = vals[0]
    for v in vals:
        if v != prev and not (v != v and prev != prev):
            count += 1
        prev = v
    return float(count)


def _resets(ts: Any, vals: Any, c: RangeCall) -> float:
    count = 0
    prev = vals[0]
    for v in vals:
        if v < prev:
            count += 1
        prev = v
    return float(count)


def _min_over_time(ts: Any, vals: Any, c: RangeCall) -> float:
    real = [v for v in vals if v == v]
    return min(real) if real else NAN


def _max_over_time(ts: Any, vals: Any, c: RangeCall) -> float:
    real = [v for v in vals if v == v]
    return max(real) if real else NAN


RANGE_FUNCTIONS: dict[str, RangeImpl] = {
    "rate": lambda ts, vs, c: extrapolated_rate(ts, vs, c, counter=True, rate=True),
    "increase": lambda ts, vs, c: extrapolated_rate(ts, vs, c, counter=True, rate=False),
    "delta": lambda ts, vs, c: extrapolated_rate(ts, vs, c, counter=False, rate=False),
    "irate": lambda ts, vs, c: instant_value(ts, vs, rate=True),
    "idelta": lambda ts, vs, c: instant_value(ts, vs, rate=False),
    "deriv": _deriv,
    "predict_linear": _predict_linear,
    "avg_over_time": lambda ts, vs, c: kahan_mean(vs) if c.v2 else mean(vs),
    "sum_over_time": lambda ts, vs, c: kahan_sum(vs) if c.v2 else fsum(vs),
    "count_over_time": lambda ts, vs, c: float(len(vs)),
    "min_over_time": _min_over_time,
    "max_over_time": _max_over_time,
    "last_over_time": lambda ts, vs, c: vs[-1],
    "present_over_time": lambda ts, vs, c: 1.0,
    "stddev_over_time": lambda ts, vs, c: math.sqrt(kahan_variance(vs)),
    "stdvar_over_time": lambda ts, vs, c: kahan_variance(vs),
    "quantile_over_time": lambda ts, vs, c: quantile(c.args[0], list(vs)),
    "changes": _changes,
    "resets": _resets,
}


class RangeFunctionNode(Node):
    def __init__(self, name: str, matrix: MatrixNode, scalars: list[Node], opts: Options) -> None:
        self.name = name
        self.impl = RANGE_FUNCTIONS[name]
        self.matrix = matrix
        self.scalars = scalars
        self.v2 = opts.v2
        self.keep_name = name == "last_over_time"
        self.multi_name = matrix.multi_name and self.keep_name

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        m = self.matrix
        args = tuple(s.eval(store, t) for s in self.scalars)
        call = RangeCall(ms_grid(t - m.offset - m.range), ms_grid(t - m.offset), m.range, t, args, self.v2)
        impl = self.impl
        keep = self.keep_name
        out = []
        for name, labels, ts, vals in m.iter_series(store, t):
            v = impl(ts, vals, call)
            if v is not None:
                out.append((name if keep else None, labels, v))
        if not keep and m.multi_name:
            check_unique(out)
        return out


class AbsentNode(Node):
    """absent(v) / absent_over_time(m): 1 with labels from the selector's equality matchers, if empty."""

    def __init__(self, inner: Node, labels: Labels) -> None:
        self.inner = inner
        self.labels = labels

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        if isinstance(self.inner, MatrixNode):
            present = next(iter(self.inner.iter_series(store, t)), None) is not None
        else:
            present = bool(self.inner.eval(store, t))
        return [] if present else [(None, self.labels, 1.0)]


def absent_labels(selector: VectorSelectorNode | None) -> Labels:
    """Prometheus' createLabelsForAbsentFunction: equality matchers, minus labels matched twice."""
    if selector is None:
        return ()
    values: dict[str, str] = {}
    seen: set[str] = set()
    for label, op, value in selector.matchers:
        if label == NAME_LABEL:
            continue
        if op == "=" and label not in seen:
            if value:
                values[label] = value
            else:
                values.pop(label, None)
            seen.add(label)
        else:
            values.pop(label, None)
    return tuple(sorted(values.items()))


# -- instant-vector functions --------------------------------------------------------------------


def _floor(v: float) -> float:
    return float(math.floor(v)) if math.isfinite(v) else v


def _ceil(v: float) -> float:
    return float(math.ceil(v)) if math.isfinite(v) else v


def _log(f: Callable[[float], float]) -> Callable[[float], float]:
    def log(v: float) -> float:
        if v > 0:
            return f(v)
        if v == 0:
            return -INF
        return NAN

    return log


def _guard(f: Callable[[float], float]) -> Callable[[float], float]:
    """Go's math returns NaN/±Inf where Python's raises."""

    def guarded(v: float) -> float:
        try:
            return f(v)
        except OverflowError:
            return INF if f is not math.sinh else math.copysign(INF, v)
        except ValueError:
            if f is math.atanh and abs(v) == 1:
                return math.copysign(INF, v)
            return NAN

    return guarded


def _sgn(v: float) -> float:
    if v < 0:
        return -1.0
    if v > 0:
        return 1.0
    return v


MATH_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": _ceil,
    "floor": _floor,
    "exp": _guard(math.exp),
    "sqrt": lambda v: math.sqrt(v) if v >= 0 else NAN,
    "ln": _log(math.log),
    "log2": _log(math.log2),
    "log10": _log(math.log10),
    "sgn": _sgn,
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
    **{name: _guard(getattr(math, name)) for name in
       ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh")},
}


def _round_to(v: float, to_nearest: float) -> float:
    try:
        inverse = 1.0 / to_nearest
    except ZeroDivisionError:
        inverse = math.copysign(INF, to_nearest)
    x = v * inverse + 0.5
    try:
        return _floor(x) / inverse
    except ZeroDivisionError:
        return NAN


def go_max(x: float, y: float) -> float:
    """Go's math.Max: +Inf wins over NaN, NaN over everything else."""
    if x == INF or y == INF:
        return INF
    if x != x or y != y:
        return NAN
    return x if x > y else y


def go_min(x: float, y: float) -> float:
    if x == -INF or y == -INF:
        return -INF
    if x != x or y != y:
        return NAN
    return x if x < y else y


def _clamp(lo: float, hi: float) -> Callable[[float], float] | None:
    if hi < lo:
        return None
    return lambda v: go_max(lo, go_min(hi, v))


def _elementwise_factory(name: str) -> Callable[[tuple[float, ...]], Callable[[float], float] | None]:
    """For functions with scalar parameters: build the per-value function for this evaluation."""
    if name == "round":
        return lambda args: (lambda v: _round_to(v, args[0] if args else 1.0))
    if name == "clamp":
        return lambda args: _clamp(args[0], args[1])
    if name == "clamp_min":
        return lambda args: _clamp(args[0], INF)
    if name == "clamp_max":
        return lambda args: _clamp(-INF, args[0])
    f = MATH_FUNCTIONS[name]
    return lambda args: f


class ElementwiseNode(Node):
    def __init__(self, name: str, inner: Node, scalars: list[Node]) -> None:
        self.name = name
        self.inner = inner
        self.scalars = scalars
        self.factory = _elementwise_factory(name)

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        vec = self.inner.eval(store, t)
        f = self.factory(tuple(s.eval(store, t) for s in self.scalars))
        if f is None:
            return []
        return drop_names([(n, lb, f(v)) for n, lb, v in vec], self.inner.multi_name)


def _date_parts(v: float) -> datetime | None:
    if not math.isfinite(v):
        return None
    try:
        return datetime.fromtimestamp(int(v), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


DATE_FUNCTIONS: dict[str, Callable[[datetime], float]] = {
    "year": lambda d: float(d.year),
    "month": lambda d: float(d.month),
    "day_of_month": lambda d: float(d.day),
    "day_of_year": lambda d: float(d.timetuple().tm_yday),
    "day_of_week": lambda d: float((d.weekday() + 1) % 7),
    "hour": lambda d: float(d.hour),
    "minute": lambda d: float(d.minute),
    "days_in_month": lambda d: float(calendar.monthrange(d.year, d.month)[1]),
}


class DateNode(Node):
    def __init__(self, name: str, inner: Node | None) -> None:
        self.f = DATE_FUNCTIONS[name]
        self.inner = inner

    def _value(self, v: float) -> float:
        d = _date_parts(v)
        return NAN if d is None else self.f(d)

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        if self.inner is None:
            return [(None, (), self._value(math.trunc(t)))]
        vec = self.inner.eval(store, t)
        return drop_names([(n, lb, self._value(v)) for n, lb, v in vec], self.inner.multi_name)


class TimestampNode(Node):
    def __init__(self, inner: Node) -> None:
        self.inner = inner

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        if isinstance(self.inner, VectorSelectorNode):
            out = [(None, lb, st) for _, lb, _, st in self.inner.eval_with_ts(store, t)]
        else:
            out = [(None, lb, t) for _, lb, _ in self.inner.eval(store, t)]
        return check_unique(out) if self.inner.multi_name else out


class SortNode(Node):
    def __init__(self, inner: Node, descending: bool) -> None:
        self.inner = inner
        self.descending = descending
        self.multi_name = inner.multi_name

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        vec = self.inner.eval(store, t)
        sign = -1.0 if self.descending else 1.0
        return sorted(vec, key=lambda s: (s[2] != s[2], sign * s[2] if s[2] == s[2] else 0.0))


class ScalarNode(Node):
    type = "scalar"

    def __init__(self, inner: Node) -> None:
        self.inner = inner

    def eval(self, store: SeriesStore, t: float) -> float:
        vec = self.inner.eval(store, t)
        return vec[0][2] if len(vec) == 1 else NAN


class VectorNode(Node):
    def __init__(self, inner: Node) -> None:
        self.inner = inner

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        return [(None, (), self.inner.eval(store, t))]


class TimeNode(Node):
    type = "scalar"

    def eval(self, store: SeriesStore, t: float) -> float:
        return t


# -- label functions -----------------------------------------------------------------------------


def valid_label_name(name: str, *, v2: bool) -> bool:
    if v2:
        return LEGACY_LABEL_NAME.match(name) is not None
    return bool(name)


class LabelReplaceNode(Node):
    def __init__(self, inner: Node, dst: str, replacement: str, src: str, regex: RE2Regex) -> None:
        self.inner = inner
        self.dst = dst
        self.replacement = replacement
        self.src = src
        self.regex = regex
        self.multi_name = True

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        out = []
        for name, labels, v in self.inner.eval(store, t):
            value = (name or "") if self.src == NAME_LABEL else get_label(labels, self.src)
            m = self.regex.fullmatch(value)
            if m is not None:
                name, labels = set_label(name, labels, self.dst, m.expand(self.replacement))
            out.append((name, labels, v))
        return check_unique(out)


class LabelJoinNode(Node):
    def __init__(self, inner: Node, dst: str, separator: str, sources: list[str]) -> None:
        self.inner = inner
        self.dst = dst
        self.separator = separator
        self.sources = sources
        self.multi_name = True

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        out = []
        for name, labels, v in self.inner.eval(store, t):
            parts = [(name or "") if src == NAME_LABEL else get_label(labels, src) for src in self.sources]
            out.append((*set_label(name, labels, self.dst, self.separator.join(parts)), v))
        return check_unique(out)


# -- histogram_quantile --------------------------------------------------------------------------


def parse_go_float(text: str) -> float | None:
    """strconv.ParseFloat for `le` values: decimal, exponent, hex, [+-]Inf, NaN; None if invalid."""
    if not text or text != text.strip() or "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        try:
            return float.fromhex(text)
        except ValueError:
            return None


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' bucketQuantile over (upper bound, cumulative count) pairs of one classic histogram."""
    if q != q:
        return NAN
    if q < 0:
        return -INF
    if q > 1:
        return INF
    buckets = sorted(buckets, key=lambda b: b[0])
    if not (math.isinf(buckets[-1][0]) and buckets[-1][0] > 0):
        return NAN
    merged: list[list[float]] = []
    for ub, count in buckets:
        if merged and merged[-1][0] == ub:
            merged[-1][1] += count
        else:
            merged.append([ub, count])
    prev = merged[0][1]
    for b in merged[1:]:  # float precision errors (tolerance 1e-12) must not break monotonicity
        delta = abs(b[1] - prev)
        if delta == 0:
            continue
        if delta / b[1] <= 1e-12:
            b[1] = prev
        else:
            prev = b[1]
    highest = merged[0][1]
    for b in merged[1:]:  # force monotonic counts
        if b[1] > highest:
            highest = b[1]
        elif b[1] < highest:
            b[1] = highest
    if len(merged) < 2:
        return NAN
    observations = merged[-1][1]
    if observations == 0:
        return NAN
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


class HistogramQuantileNode(Node):
    def __init__(self, q: Node, inner: Node) -> None:
        self.q = q
        self.inner = inner

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        q = self.q.eval(store, t)
        groups: dict[tuple[str | None, Labels], list[tuple[float, float]]] = {}
        for name, labels, v in self.inner.eval(store, t):
            upper = parse_go_float(get_label(labels, "le"))
            if upper is None:
                continue
            rest = tuple(p for p in labels if p[0] != "le")
            groups.setdefault((name, rest), []).append((upper, v))
        out = [(None, rest, bucket_quantile(q, buckets)) for (_, rest), buckets in groups.items()]
        return check_unique(out)


# -- registry ------------------------------------------------------------------------------------

INSTANT_WITH_SCALARS = ("round", "clamp", "clamp_min", "clamp_max")
SUPPORTED_FUNCTIONS: frozenset[str] = frozenset(
    {*RANGE_FUNCTIONS, *MATH_FUNCTIONS, *INSTANT_WITH_SCALARS, *DATE_FUNCTIONS, "absent", "absent_over_time",
     "time", "timestamp", "vector", "scalar", "label_replace", "label_join", "histogram_quantile", "sort",
     "sort_desc", "pi"}
)


def build_call(name: str, args: list[Node], opts: Options, *, plain_selector: list[bool]) -> Node:
    """The node for a call of a supported function; `args` are compiled (parentheses unwrapped)."""
    if name in RANGE_FUNCTIONS:
        matrix_idx = next(i for i, a in enumerate(args) if isinstance(a, MatrixNode))
        matrix = args[matrix_idx]
        assert isinstance(matrix, MatrixNode)
        return RangeFunctionNode(name, matrix, [a for i, a in enumerate(args) if i != matrix_idx], opts)
    if name in MATH_FUNCTIONS or name in INSTANT_WITH_SCALARS:
        return ElementwiseNode(name, args[0], args[1:])
    if name in DATE_FUNCTIONS:
        return DateNode(name, args[0] if args else None)
    if name in ("absent", "absent_over_time"):
        inner = args[0]
        selector = getattr(inner, "selector", inner) if plain_selector[0] else None
        return AbsentNode(inner, absent_labels(selector if isinstance(selector, VectorSelectorNode) else None))
    if name == "time":
        return TimeNode()
    if name == "pi":
        return NumberNode(math.pi)
    if name == "timestamp":
        return TimestampNode(args[0])
    if name == "vector":
        return VectorNode(args[0])
    if name == "scalar":
        return ScalarNode(args[0])
    if name in ("sort", "sort_desc"):
        return SortNode(args[0], name == "sort_desc")
    if name == "histogram_quantile":
        return HistogramQuantileNode(args[0], args[1])
    raise PromQLError(f"function {name!r} is not supported", feature=f"function {name!r}")
