"""PromQL aggregations (`sum by (...)`, `topk`, `count_values`, ...) and the numeric helpers
shared with the `*_over_time` functions.

Prometheus 3.x sums with compensation; here `math.fsum` (exactly rounded, order independent)
stands in for it. With `Options.v2` the Prometheus 2.x arithmetic is reproduced instead (plain
left-to-right sums, incremental means), so that results match promtool 2.x to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hostwarden.agent.core.samples import Labels
from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.promql_eval import INF, MATCH_CACHE_MAX, NAN, Node, Options, set_label
from hostwarden.rules.promql_types import NAME_LABEL, PromQLError, Sample


def fsum(values: Any) -> float:
    """Exactly rounded sum; IEEE results where math.fsum raises (overflow: +-Inf, Inf + -Inf: NaN)."""
    try:
        return math.fsum(values)
    except OverflowError:
        return sum(values)
    except ValueError:
        return NAN


def mean(values: Any) -> float:
    n = len(values)
    total = fsum(values)
    if math.isinf(total) and not any(math.isinf(v) for v in values):
        return math.fsum(v / n for v in values)  # the sum overflowed, the mean does not
    return total / n


def kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """One step of Neumaier-compensated summation, as Prometheus' kahanSumInc."""
    t = total + inc
    if math.isinf(t):
        return t, 0.0
    if abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def kahan_sum(values: Any) -> float:
    """Prometheus 2.x sum_over_time: compensated summation in sample order."""
    total = c = 0.0
    for v in values:
        total, c = kahan_inc(v, total, c)
    return total if math.isinf(total) else total + c


def kahan_mean(values: Any) -> float:
    """Prometheus 2.x avg_over_time: incremental mean with compensated summation."""
    mean_ = c = 0.0
    count = 0
    for v in values:
        count += 1
        if math.isinf(mean_) and ((math.isinf(v) and (mean_ > 0) == (v > 0)) or (not math.isinf(v) and v == v)):
            continue
        mean_, c = kahan_inc(v / count - mean_ / count, mean_, c)
    return mean_ if math.isinf(mean_) else mean_ + c


def incremental_mean(values: Any) -> float:
    """Prometheus 2.x avg aggregation: mean += v/n - mean/n, with its Inf special cases."""
    it = iter(values)
    mean_ = next(it)
    count = 1
    for v in it:
        count += 1
        if math.isinf(mean_) and ((math.isinf(v) and (mean_ > 0) == (v > 0)) or (not math.isinf(v) and v == v)):
            continue
        mean_ += v / count - mean_ / count
    return mean_


def kahan_variance(values: Any) -> float:
    """stdvar_over_time: Welford with compensated mean and sum of squares (Prometheus 2.4x and 3.x)."""
    count = 0
    mean_ = c_mean = aux = c_aux = 0.0
    for v in values:
        count += 1
        delta = v - (mean_ + c_mean)
        mean_, c_mean = kahan_inc(delta / count, mean_, c_mean)
        aux, c_aux = kahan_inc(delta * (v - (mean_ + c_mean)), aux, c_aux)
    return (aux + c_aux) / count


def variance(values: Any) -> float:
    """Population variance, Welford's online algorithm (as Prometheus' stdvar)."""
    count = 0
    mean_ = 0.0
    m2 = 0.0
    for v in values:
        count += 1
        delta = v - mean_
        mean_ += delta / count
        m2 += delta * (v - mean_)
    return m2 / count


def quantile(q: float, values: list[float]) -> float:
    if not values or q != q:
        return NAN
    if q < 0:
        return -INF
    if q > 1:
        return INF
    ordered = sorted(values, key=_nan_first_key)
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def _nan_first_key(v: float) -> tuple[bool, float]:
    return (v == v, v if v == v else 0.0)


def _max(values: list[float]) -> float:
    real = [v for v in values if v == v]
    return max(real) if real else NAN


def _min(values: list[float]) -> float:
    real = [v for v in values if v == v]
    return min(real) if real else NAN


SIMPLE_AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": fsum,
    "avg": mean,
    "count": lambda vs: float(len(vs)),
    "min": _min,
    "max": _max,
    "group": lambda vs: 1.0,
    "stdvar": variance,
    "stddev": lambda vs: math.sqrt(variance(vs)),
}


# Prometheus 2.x summed in series order without compensation and averaged incrementally.
V2_AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    **SIMPLE_AGGREGATIONS,
    "sum": sum,
    "avg": incremental_mean,
}


def format_go_float(v: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64): shortest round-trip digits, never an exponent."""
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = format(Decimal(repr(v)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


class AggregateNode(Node):
    def __init__(self, op: str, inner: Node, param: Node | None, grouping: tuple[str, ...] | None,
                 without: bool, opts: Options) -> None:
        self.op = op
        self.reducers = V2_AGGREGATIONS if opts.v2 else SIMPLE_AGGREGATIONS
        self.inner = inner
        self.param = param
        self.grouping = grouping  # None: no by/without clause
        self.without = without
        self.multi_name = inner.multi_name if op in ("topk", "bottomk") else False
        self._keys: dict[tuple[str | None, Labels], tuple[str | None, Labels]] = {}

    def group_of(self, name: str | None, labels: Labels) -> tuple[str | None, Labels]:
        """The output metric (name, labels) of the group a series falls in (cached per label set)."""
        if self.grouping is None:
            return (None, ())
        key = (name, labels)
        hit = self._keys.get(key)
        if hit is None:
            names = self.grouping
            if self.without:
                hit = (None, tuple(p for p in labels if p[0] not in names))
            else:
                hit = (name if NAME_LABEL in names else None, tuple(p for p in labels if p[0] in names))
            if len(self._keys) >= MATCH_CACHE_MAX:
                self._keys.clear()
            self._keys[key] = hit
        return hit

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        vec = self.inner.eval(store, t)
        op = self.op
        if op in ("topk", "bottomk"):
            return self._k(vec, self.param.eval(store, t) if self.param else 1.0)
        if op == "count_values":
            label = self.param.eval(store, t) if self.param else ""
            vec = [(*set_label(n, lb, label, format_go_float(v)), v) for n, lb, v in vec]
            if self.without:
                return self._simple(vec, SIMPLE_AGGREGATIONS["count"])
            return self._simple(vec, SIMPLE_AGGREGATIONS["count"], extra=(label,))
        if op == "quantile":
            q = self.param.eval(store, t) if self.param else NAN
            return self._simple(vec, lambda vs: quantile(q, vs))
        return self._simple(vec, self.reducers[op])

    def _simple(self, vec: list[Sample], reduce: Callable[[list[float]], float], *,
                extra: tuple[str, ...] = ()) -> list[Sample]:
        groups: dict[tuple[str | None, Labels], list[float]] = {}
        if extra:  # count_values by (...): the value label joins the grouping labels
            names = frozenset((self.grouping or ()) + extra)
            for n, lb, v in vec:
                key = (n if NAME_LABEL in names else None, tuple(p for p in lb if p[0] in names))
                groups.setdefault(key, []).append(v)
        else:
            group_of = self.group_of
            for n, lb, v in vec:
                key = group_of(n, lb)
                vals = groups.get(key)
                if vals is None:
                    groups[key] = [v]
                else:
                    vals.append(v)
        return [(name, labels, reduce(vals)) for (name, labels), vals in groups.items()]

    def _k(self, vec: list[Sample], param: float) -> list[Sample]:
        if param != param or math.isinf(param) or abs(param) >= 2**63:
            raise PromQLError(f"Scalar value {format_go_float(param)} overflows int64")
        k = int(param)
        if k < 1:
            return []
        groups: dict[tuple[str | None, Labels], list[Sample]] = {}
        for smp in vec:
            groups.setdefault(self.group_of(smp[0], smp[1]), []).append(smp)
        top = self.op == "topk"
        out: list[Sample] = []
        for members in groups.values():
            if top:
                members.sort(key=lambda s: (s[2] != s[2], -s[2] if s[2] == s[2] else 0.0))
            else:
                members.sort(key=lambda s: (s[2] != s[2], s[2] if s[2] == s[2] else 0.0))
            out.extend(members[:k])
        return out
