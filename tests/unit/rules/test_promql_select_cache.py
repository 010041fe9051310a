"""Regex selectors keep their selection until the store's set of series for the name changes: under series
churn (containers, mounts coming and going) a long-lived compiled expression must answer exactly what a
freshly compiled one does."""

from __future__ import annotations

from hostwarden.agent.core.samples import Sample, labels_of
from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.promql import compile_expr
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = 1_700_000_000.0
VALUES = ["v1", "v2", "v12", "w1", "v1x"]
EXPRS = ['count_over_time(x{a=~"v1.*"}[10m])', 'sum(x{a!~"v.*"})', 'x{a=~"v1|w1", b="0"}', '{__name__=~"x|y", a=~"v2"}']


def _samples(population: frozenset[tuple[str, str]], t: float) -> list[Sample]:
    return [Sample(name, labels_of(a=a, b=str(i % 2)), 1.0 + i, t)
            for i, (name, a) in enumerate(sorted(population))]


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.frozensets(st.tuples(st.sampled_from(["x", "y"]), st.sampled_from(VALUES)), max_size=6),
                      min_size=1, max_size=12))
def test_promql_regex_selector_cached_selection_follows_churn(steps: list[frozenset[tuple[str, str]]]) -> None:
    store = SeriesStore()
    store.set_retention({}, all_names=30.0)  # a series gone from a snapshot is dropped at a later sweep
    kept = [compile_expr(e) for e in EXPRS]  # compiled once, evaluated at every step
    t = T0
    for population in steps:
        t += 61.0  # each snapshot also runs the store's sweep
        store.append("src", _samples(population, t), t)
        for expr, text in zip(kept, EXPRS, strict=True):
            assert expr.eval(store, t) == compile_expr(text).eval(store, t), (text, sorted(population))


def test_promql_regex_selector_new_series_seen_after_cached_evaluation() -> None:
    store = SeriesStore()
    store.set_retention({}, all_names=3600.0)
    expr = compile_expr('count(x{a=~"v.*"})')
    store.append("src", [Sample("x", labels_of(a="v1"), 1.0, T0)], T0)
    assert [e.value for e in expr.eval(store, T0)] == [1.0]
    store.append("src", [Sample("x", labels_of(a="v1"), 1.0, T0 + 1), Sample("x", labels_of(a="v2"), 1.0, T0 + 1)],
                 T0 + 1)
    assert [e.value for e in expr.eval(store, T0 + 1)] == [2.0]
