"""Evaluation nodes of the PromQL engine: literals, selectors, subqueries, operators, aggregations.

Every node is built once by `rules.promql.compile_expr` and then evaluated many times with
`node.eval(store, t)`. Instant vectors are lists of `(name, labels, value)` tuples (see
`rules.promql_types`); range vectors are produced lazily by `iter_series(store, t)` as
`(name, labels, timestamps, values)` with stale markers removed.

Semantics follow Prometheus' promql/engine.go (3.x by default; `Options.v2` switches the few
places where Prometheus 2.x differs: closed range/lookback boundaries, regex dot-all, subquery
step alignment, the order of rate's zero-point clamp).
"""

from __future__ import annotations

import math
import operator
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from hostwarden.agent.core.samples import Labels
from hostwarden.agent.core.store import SeriesStore, is_stale
from hostwarden.rules.promql_regex import compile_matcher
from hostwarden.rules.promql_types import NAME_LABEL, PromQLError, Sample, format_labels

INF = math.inf
NAN = math.nan
LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
MATCH_CACHE_MAX = 50_000
SELECT_CACHE_MAX = 10_000  # a regex selection of at most this many series is kept until the series set changes
MAX_SAMPLES = 50_000_000  # Prometheus' --query.max-samples default
MAX_SUBQUERY_STEPS = 11_000  # Prometheus' points-per-series limit of a range query (/api/v1/query_range)

RangeSeries = tuple[str | None, Labels, Any, Any]  # (name, labels, timestamps, values)


@dataclass(frozen=True)
class Options:
    lookback: float = 300.0
    v2: bool = False  # Prometheus 2.x boundaries (what promtool 2.x implements)
    subquery_step: float = 60.0  # default step of `expr[5m:]` (Prometheus: the global evaluation interval)
    max_samples: int = MAX_SAMPLES  # samples one evaluation may hold at once (Prometheus' query.max-samples)
    max_subquery_steps: int = MAX_SUBQUERY_STEPS  # inner evaluations of subqueries, nested ones multiplied


class Budget:
    """What one evaluation holds: samples kept by subqueries (`held`), and the product of the step counts
    of the enclosing subqueries (`step_factor`), so that nested subqueries are bounded as a whole."""

    __slots__ = ("held", "max_samples", "step_factor")

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self.held = 0
        self.step_factor = 1


_BUDGET: ContextVar[Budget | None] = ContextVar("promql_budget", default=None)


def too_many_samples(limit: int) -> PromQLError:
    return PromQLError("query processing would load too many samples into memory in query execution "
                       f"(more than the limit of {limit:,} samples)")


def _count(n: int) -> str:
    """3,600 or 3.15e10: exact below a million, 3 significant digits above."""
    if n < 1_000_000:
        return f"{n:,}"
    mantissa, exponent = f"{n:.3g}".split("e")
    return f"{mantissa}e{int(exponent)}"


def get_label(labels: Labels, key: str) -> str:
    for k, v in labels:
        if k == key:
            return v
    return ""


def set_label(name: str | None, labels: Labels, key: str, value: str) -> tuple[str | None, Labels]:
    """Set (or delete, for an empty value) one label; `__name__` is kept apart as the name."""
    if key == NAME_LABEL:
        return (value or None), labels
    rest = [p for p in labels if p[0] != key]
    if value:
        rest.append((key, value))
        rest.sort()
    return name, tuple(rest)


def check_unique(vec: list[Sample]) -> list[Sample]:
    """Prometheus refuses a vector with two elements of the same label set (after dropping names)."""
    seen = {(s[0], s[1]) for s in vec}
    if len(seen) != len(vec):
        raise PromQLError("vector cannot contain metrics with the same labelset")
    return vec


def drop_names(vec: list[Sample], check: bool) -> list[Sample]:
    out = [(None, labels, v) for _, labels, v in vec]
    return check_unique(out) if check else out


# -- literals ------------------------------------------------------------------------------------


class Node:
    type: str = "vector"  # vector | scalar | string | matrix
    multi_name: bool = False  # may the result hold several metric names (so dropping them can collide)?

    def eval(self, store: SeriesStore, t: float) -> Any:
        raise NotImplementedError


class NumberNode(Node):
    type = "scalar"

    def __init__(self, value: float) -> None:
        self.value = value

    def eval(self, store: SeriesStore, t: float) -> float:
        return self.value


class StringNode(Node):
    type = "string"

    def __init__(self, value: str) -> None:
        self.value = value

    def eval(self, store: SeriesStore, t: float) -> str:
        return self.value


# -- selectors -----------------------------------------------------------------------------------

Check = Callable[[str], bool]


def make_check(op: str, value: str, *, v2: bool) -> Check:
    if op == "=":
        return lambda s: s == value
    if op == "!=":
        return lambda s: s != value
    matches = compile_matcher(value, v2=v2)
    if op == "=~":
        return matches
    return lambda s: not matches(s)


class LabelPredicate:
    """Label matchers (except `__name__`) as one callable; equality needs no label lookup."""

    def __init__(self, equal: list[tuple[str, str]], others: list[tuple[str, Check]]) -> None:
        self.equal = tuple(equal)
        self.others = tuple(others)
        self.cache: dict[Labels, bool] = {}

    def __call__(self, labels: Labels) -> bool:
        for item in self.equal:
            if item not in labels:
                return False
        if not self.others:
            return True
        hit = self.cache.get(labels)
        if hit is None:
            hit = self._others(labels)
        return hit

    def _others(self, labels: Labels) -> bool:
        hit = all(check(get_label(labels, key)) for key, check in self.others)
        if len(self.cache) >= MATCH_CACHE_MAX:
            self.cache.clear()
        self.cache[labels] = hit
        return hit

    def filter(self, series: list[Any]) -> list[Any]:
        """The series whose labels match, in order: the per-label-set answers are looked up inline (one dict
        lookup per series once known), since a regex selector may look at every series of a name."""
        cache_get = self.cache.get
        decide = self if self.equal else self._others  # with equality matchers the cache only knows passers
        out = []
        append = out.append
        for s in series:
            labels = s.labels
            hit = cache_get(labels)
            if hit is None:
                hit = decide(labels)
            if hit:
                append(s)
        return out


class VectorSelectorNode(Node):
    def __init__(self, name: str | None, name_checks: list[Check], predicate: LabelPredicate | None,
                 matchers: list[tuple[str, str, str]], offset: float, opts: Options) -> None:
        self.name = name
        self.name_checks = tuple(name_checks)
        self.predicate = predicate
        self.matchers = matchers  # (label, op, value) as written, for absent()
        self.offset = offset
        self.opts = opts
        self.multi_name = name is None
        self._selected: tuple[tuple[int, int], list[Any]] | None = None

    def select(self, store: SeriesStore) -> list[Any]:
        """The series this selector matches (callers must not modify the list). Selections that need
        regex or negative matchers are kept until the store's set of series for the name changes: in
        steady state a `{instance=~"web-.*"}` rule does not rescan every series each evaluation."""
        if self.predicate is None or not self.predicate.others:
            return self._select(store)
        key = (store.uid, store.generation(self.name))
        cached = self._selected
        if cached is not None and cached[0] == key:
            return cached[1]
        series = self._select(store)
        self._selected = (key, series) if len(series) <= SELECT_CACHE_MAX else None
        return series

    def _select(self, store: SeriesStore) -> list[Any]:
        checks = self.name_checks
        if self.name is not None:
            if checks and not all(c(self.name) for c in checks):
                return []
            pred = self.predicate
            if pred is not None and pred.equal:  # the store's postings narrow by the equality matchers
                series = store.series_matching(self.name, pred.equal)
                return pred.filter(series) if pred.others else series
            series = list(store.series(self.name))
        else:
            series = [s for n in store.names() if all(c(n) for c in checks) for s in store.series(n)]
        pred = self.predicate
        if pred is not None:  # creation order, as Prometheus' unsorted Select (it orders sums and means)
            series = pred.filter(series)
        return series

    def eval(self, store: SeriesStore, t: float) -> list[Sample]:
        t_ref = ms_grid(t - self.offset)
        floor = ms_grid(t - self.offset - self.opts.lookback)
        closed = self.opts.v2
        out = []
        append = out.append
        for s in self.select(store):
            ts = s.ts
            i = bisect_right(ts, t_ref) - 1
            if i < 0:
                continue
            st = ts[i]
            if st < floor or (st == floor and not closed):
                continue
            v = s.vals[i]
            if v != v and is_stale(v):
                continue
            append((s.name, s.labels, v))
        held = _BUDGET.get()
        if len(out) + (held.held if held is not None else 0) > self.opts.max_samples:
            raise too_many_samples(self.opts.max_samples)
        return out

    def eval_with_ts(self, store: SeriesStore, t: float) -> list[tuple[str | None, Labels, float, float]]:
        t_ref = ms_grid(t - self.offset)
        floor = ms_grid(t - self.offset - self.opts.lookback)
        closed = self.opts.v2
        out = []
        for s in self.select(store):
            ts = s.ts
            i = bisect_right(ts, t_ref) - 1
            if i < 0:
                continue
            st = ts[i]
            if st < floor or (st == floor and not closed):
                continue
            v = s.vals[i]
            if v != v and is_stale(v):
                continue
            out.append((s.name, s.labels, v, st))
        held = _BUDGET.get()
        if len(out) + (held.held if held is not None else 0) > self.opts.max_samples:
            raise too_many_samples(self.opts.max_samples)
        return out


def ms_grid(t: float) -> float:
    """`t` rounded to the millisecond, as Prometheus' integer-millisecond timestamps are."""
    return round(t * 1000) / 1000


def window(ts: Any, vals: Any, start: float, end: float, closed: bool) -> tuple[Any, Any] | None:
    """Points with start < t <= end (start <= t when `closed`), stale markers dropped; None if empty."""
    lo = bisect_left(ts, start) if closed else bisect_right(ts, start)
    hi = bisect_right(ts, end)
    if lo >= hi:
        return None
    w_ts, w_vals = ts[lo:hi], vals[lo:hi]
    total = sum(w_vals)
    if total != total:  # a NaN somewhere: maybe stale markers
        keep = [i for i, v in enumerate(w_vals) if not (v != v and is_stale(v))]
        if not keep:
            return None
        if len(keep) != len(w_vals):
            w_ts = [w_ts[i] for i in keep]
            w_vals = [w_vals[i] for i in keep]
    return w_ts, w_vals


class MatrixNode(Node):
    """A range vector: a range selector or a subquery."""

    type = "matrix"
    range: float
    offset: float

    def iter_series(self, store: SeriesStore, t: float) -> Iterator[RangeSeries]:
        raise NotImplementedError

    def eval(self, store: SeriesStore, t: float) -> list[RangeSeries]:
        return list(self.iter_series(store, t))


class MatrixSelectorNode(MatrixNode):
    def __init__(self, selector: VectorSelectorNode, range_: float) -> None:
        self.selector = selector
        self.range = range_
        self.offset = selector.offset
        self.multi_name = selector.multi_name

    def iter_series(self, store: SeriesStore, t: float) -> Iterator[RangeSeries]:
        end = ms_grid(t - self.offset)
        start = ms_grid(t - self.offset - self.range)
        closed = self.selector.opts.v2
        budget = _BUDGET.get()
        limit = self.selector.opts.max_samples - (budget.held if budget is not None else 0)
        for s in self.selector.select(store):
            w = window(s.ts, s.vals, start, end, closed)
            if w is not None:
                if len(w[0]) > limit:  # one series' window at a time, as Prometheus' range functions
                    raise too_many_samples(self.selector.opts.max_samples)
                yield s.name, s.labels, w[0], w[1]


class SubqueryNode(MatrixNode):
    """`inner[range:step]`: the inner expression evaluated at each step, bounded by `Options.max_subquery_steps`
    (nested subqueries multiply) and `Options.max_samples` (the points held) before anything is allocated."""

    def __init__(self, inner: Node, range_: float, step: float, offset: float, opts: Options, text: str = "") -> None:
        self.inner = inner
        self.range = range_
        self.step = step
        self.offset = offset
        self.opts = opts
        self.text = text or "subquery"
        self.multi_name = inner.multi_name

    def step_range(self, t: float) -> range:
        """The step times in integer milliseconds (a lazy range: its length is known without allocating)."""
        step_ms = max(1, round(self.step * 1000))
        end_ms = round((t - self.offset) * 1000)
        first_ms = end_ms - round(self.range * 1000)
        start_ms = step_ms * (first_ms // step_ms)
        if start_ms < first_ms or (start_ms == first_ms and not self.opts.v2):
            start_ms += step_ms
        return range(start_ms, end_ms + 1, step_ms)

    def step_times(self, t: float) -> list[float]:
        return [ms / 1000 for ms in self.step_range(t)]

    def _limit_steps(self, steps: int, outer: int) -> None:
        limit = self.opts.max_subquery_steps
        if steps * outer <= limit:
            return
        if outer == 1:
            raise PromQLError(f"subquery {self.text} would evaluate {_count(steps)} steps, "
                              f"more than the limit of {limit:,}")
        raise PromQLError(f"subquery {self.text} would evaluate {_count(steps * outer)} steps ({_count(steps)} for "
                          f"each of {_count(outer)} steps of the enclosing subqueries), "
                          f"more than the limit of {limit:,}")

    def iter_series(self, store: SeriesStore, t: float) -> Iterator[RangeSeries]:
        steps = self.step_range(t)
        outer = _BUDGET.get()
        self._limit_steps(len(steps), outer.step_factor if outer is not None else 1)
        b = outer or Budget(self.opts.max_samples)
        token = _BUDGET.set(b) if outer is None else None
        held = 0
        try:
            acc: dict[tuple[str | None, Labels], tuple[list[float], list[float]]] = {}
            b.step_factor *= max(1, len(steps))
            try:
                for ms in steps:
                    ts = ms / 1000
                    vec = self.inner.eval(store, ts)
                    if b.held + len(vec) > b.max_samples:
                        raise too_many_samples(b.max_samples)
                    b.held += len(vec)
                    held += len(vec)
                    for name, labels, v in vec:
                        entry = acc.get((name, labels))
                        if entry is None:
                            entry = acc[(name, labels)] = ([], [])
                        entry[0].append(ts)
                        entry[1].append(v)
            finally:
                b.step_factor //= max(1, len(steps))
                if token is not None:
                    _BUDGET.reset(token)
            for (name, labels), (tss, vals) in acc.items():
                yield name, labels, tss, vals
        finally:
            b.held -= held


# -- operators -----------------------------------------------------------------------------------


def _div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)


def _mod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except ValueError:
        return NAN


def _is_odd_int(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except ValueError:
        if a == 0:  # 0 ** negative
            return math.copysign(INF, a) if _is_odd_int(b) else INF
        return NAN
    except OverflowError:
        return -INF if a < 0 and _is_odd_int(b) else INF


def _atan2(a: float, b: float) -> float:
    return math.atan2(a, b)


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _div, "%": _mod, "^": _pow, "atan2": _atan2,
}
COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le,
}
SET_OPERATORS = ("and", "or", "unless")


class UnaryMinusNode(Node):
    def __init__(self, inner: Node) -> None:
        self.inner = inner
        self.type = inner.type

    def eval(self, store: SeriesStore, t: float) -> Any:
        value = self.inner.eval(store, t)
        if self.type == "scalar":
            return -value
        return drop_names([(n, lb, -v) for n, lb, v in value], self.inner.multi_name)


@dataclass(frozen=True)
class Matching:
    card: str  # one-to-one | many-to-one | one-to-many | many-to-many
    on: bool | None  # True: on(...), False: ignoring(...), None: neither
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()  # group_left/group_right extra labels
    return_bool: bool = False


def signature_fn(matching: Matching) -> Callable[[str | None, Labels], Any]:
    """The matching key of an element: its labels restricted by on(...)/ignoring(...), cached per label set."""
    names = frozenset(matching.labels)
    if matching.on is None or (matching.on is False and not names):
        return lambda name, labels: labels
    with_name = bool(matching.on) and NAME_LABEL in names
    if matching.on:
        def compute(name: str | None, labels: Labels) -> Any:
            key = tuple(p for p in labels if p[0] in names)
            return (name, key) if with_name else key
    else:
        def compute(name: str | None, labels: Labels) -> Any:
            return tuple(p for p in labels if p[0] not in names)
    cache: dict[Any, Any] = {}

    def sig(name: str | None, labels: Labels) -> Any:
        ck = (name, labels) if with_name else labels
        hit = cache.get(ck)
        if hit is None:
            hit = compute(name, labels)
            if len(cache) >= MATCH_CACHE_MAX:
                cache.clear()
            cache[ck] = hit
        return hit

    return sig


class BinaryNode(Node):
    def __init__(self, op: str, lhs: Node, rhs: Node, matching: Matching, opts: Options) -> None:
        self.op = op
        # Prometheus 2.x kept the metric name on atan2 (3.x drops it, like every arithmetic operator)
        self.drops_name = op in ARITHMETIC and not (opts.v2 and op == "atan2")
        self.lhs = lhs
        self.rhs = rhs
        self.matching = matching
        self.sig = signature_fn(matching)
        if lhs.type == "scalar" and rhs.type == "scalar":
            self.type = "scalar"
        if op == "or":
            self.multi_name = True
        elif op in SET_OPERATORS:
            self.multi_name = lhs.multi_name
        elif (op in COMPARISON and not matching.return_bool) or (op in ARITHMETIC and not self.drops_name):
            # filters (and 2.x's atan2) keep the name of the vector side
            if lhs.type == "scalar":
                self.multi_name = rhs.multi_name
            elif rhs.type == "scalar" or matching.card != "one-to-many":
                self.multi_name = lhs.multi_name
            else:
                self.multi_name = rhs.multi_name

    def eval(self, store: SeriesStore, t: float) -> Any:
        lv = self.lhs.eval(store, t)
        rv = self.rhs.eval(store, t)
        op = self.op
        lt, rt = self.lhs.type, self.rhs.type
        if lt == "scalar" and rt == "scalar":
            if op in ARITHMETIC:
                return ARITHMETIC[op](lv, rv)
            return 1.0 if COMPARISON[op](lv, rv) else 0.0
        if lt == "scalar":
            return self._vector_scalar(rv, lv, scalar_left=True)
        if rt == "scalar":
            return self._vector_scalar(lv, rv, scalar_left=False)
        if op in SET_OPERATORS:
            return self._set_op(lv, rv)
        return self._vector_vector(lv, rv)

    def _vector_scalar(self, vec: list[Sample], s: float, *, scalar_left: bool) -> list[Sample]:
        op = self.op
        vec_node = self.rhs if scalar_left else self.lhs
        if op in ARITHMETIC:
            f = ARITHMETIC[op]
            if not self.drops_name:
                return [(n, lb, f(s, v) if scalar_left else f(v, s)) for n, lb, v in vec]
            if scalar_left:
                out = [(None, lb, f(s, v)) for _, lb, v in vec]
            else:
                out = [(None, lb, f(v, s)) for _, lb, v in vec]
            return check_unique(out) if vec_node.multi_name else out
        cmp = COMPARISON[op]
        if self.matching.return_bool:
            if scalar_left:
                out = [(None, lb, 1.0 if cmp(s, v) else 0.0) for _, lb, v in vec]
            else:
                out = [(None, lb, 1.0 if cmp(v, s) else 0.0) for _, lb, v in vec]
            return check_unique(out) if vec_node.multi_name else out
        if scalar_left:
            return [smp for smp in vec if cmp(s, smp[2])]
        return [smp for smp in vec if cmp(smp[2], s)]

    def _set_op(self, lhs: list[Sample], rhs: list[Sample]) -> list[Sample]:
        sig = self.sig
        if self.op == "and":
            if not lhs or not rhs:
                return []
            right = {sig(n, lb) for n, lb, _ in rhs}
            return [smp for smp in lhs if sig(smp[0], smp[1]) in right]
        if self.op == "or":
            if not lhs:
                return list(rhs)
            left = {sig(n, lb) for n, lb, _ in lhs}
            return lhs + [smp for smp in rhs if sig(smp[0], smp[1]) not in left]
        if not rhs:
            return list(lhs)
        right = {sig(n, lb) for n, lb, _ in rhs}
        return [smp for smp in lhs if sig(smp[0], smp[1]) not in right]

    def _vector_vector(self, lhs: list[Sample], rhs: list[Sample]) -> list[Sample]:
        m = self.matching
        if not lhs or not rhs:
            return []
        swapped = m.card == "one-to-many"
        many, one = (rhs, lhs) if swapped else (lhs, rhs)
        sig = self.sig
        one_side: dict[Any, Sample] = {}
        for smp in one:
            key = sig(smp[0], smp[1])
            dup = one_side.get(key)
            if dup is not None:
                side = "left" if swapped else "right"
                raise PromQLError(
                    f"found duplicate series for the match group {_match_group(smp, m)} on the {side} hand-side "
                    f"of the operation: [{format_labels(smp[0], smp[1])}, {format_labels(dup[0], dup[1])}]"
                    ";many-to-many matching not allowed: matching labels must be unique on one side")
            one_side[key] = smp
        arith = self.op in ARITHMETIC
        f: Callable[[float, float], Any] = ARITHMETIC[self.op] if arith else COMPARISON[self.op]
        return_bool = m.return_bool
        one_to_one = m.card == "one-to-one"
        drop_name = self.drops_name or return_bool
        # None: general path; True: labels unchanged; False: labels are the matching key
        fast_labels: bool | None = None
        if one_to_one and NAME_LABEL not in m.labels:
            fast_labels = m.on is None or (m.on is False and not m.labels)
        matched: dict[Any, Any] = {}
        out: list[Sample] = []
        for smp in many:
            key = sig(smp[0], smp[1])
            other = one_side.get(key)
            if other is None:
                continue
            lval, rval = (other[2], smp[2]) if swapped else (smp[2], other[2])
            if arith:
                value = f(lval, rval)
            else:
                keep = f(lval, rval)
                if return_bool:
                    value = 1.0 if keep else 0.0
                elif not keep:
                    continue
                else:
                    value = lval
            if fast_labels is None:
                name, labels = self._result_metric(smp, other, drop_name=drop_name)
            elif fast_labels:
                name, labels = (None if drop_name else smp[0]), smp[1]
            else:  # one-to-one on(...)/ignoring(...): the result labels are the matching key
                name, labels = (None if drop_name or m.on else smp[0]), key
            if one_to_one:
                if key in matched:
                    raise PromQLError("multiple matches for labels: many-to-one matching must be explicit "
                                      "(group_left/group_right)")
                matched[key] = None
            else:
                seen = matched.setdefault(key, set())
                if (name, labels) in seen:
                    raise PromQLError("multiple matches for labels: grouping labels must ensure unique matches")
                seen.add((name, labels))
            out.append((name, labels, value))
        return out

    def _result_metric(self, many: Sample, one: Sample, *, drop_name: bool) -> tuple[str | None, Labels]:
        m = self.matching
        name = None if drop_name else many[0]
        labels = many[1]
        if m.card == "one-to-one":
            if m.on:
                keep = frozenset(m.labels)
                labels = tuple(p for p in labels if p[0] in keep)
                if NAME_LABEL not in keep:
                    name = None
            elif m.on is False and m.labels:
                drop = frozenset(m.labels)
                labels = tuple(p for p in labels if p[0] not in drop)
                if NAME_LABEL in drop:
                    name = None
        for ln in m.include:
            value = (one[0] or "") if ln == NAME_LABEL else get_label(one[1], ln)
            name, labels = set_label(name, labels, ln, value)
        return name, labels


def _match_group(smp: Sample, m: Matching) -> str:
    names = frozenset(m.labels)
    if m.on:
        labels = tuple(p for p in smp[1] if p[0] in names)
        return format_labels(smp[0] if NAME_LABEL in names else None, labels)
    return format_labels(None, tuple(p for p in smp[1] if p[0] not in names))
