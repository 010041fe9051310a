"""Evaluation limits of the PromQL engine (finding F4): subquery step count and samples held."""

from __future__ import annotations

import math

import pytest
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.manager import RuleManager
from hostwarden.rules.promql import PromQLError, compile_expr
from hostwarden.rules.promql_eval import MAX_SAMPLES, MAX_SUBQUERY_STEPS

T = 10_000.0


def store_of(series: int, points: int = 60, step: float = 10.0) -> SeriesStore:
    """`x{i="0"..}`: `series` series of `points` samples `step` apart, the last one at T."""
    store = SeriesStore()
    store.set_retention({}, all_names=math.inf)
    for i in range(series):
        store.load_series("x", (("i", str(i)),), [(T - (points - 1 - k) * step, float(k)) for k in range(points)])
    return store


def values(result: object) -> list[float]:
    assert isinstance(result, list)
    return sorted(e.value for e in result)


def test_limits_defaults_are_prometheus_values() -> None:
    assert MAX_SAMPLES == 50_000_000
    assert MAX_SUBQUERY_STEPS == 11_000


def test_subquery_huge_step_count_fails_fast_naming_the_limit() -> None:
    # 3.15e10 step times were built in a list before the fix: this test finishing is the proof
    compiled = compile_expr("max_over_time(x[1y:1ms])")
    with pytest.raises(PromQLError) as info:
        compiled.eval(store_of(1), T)
    assert str(info.value) == "subquery x[1y:1ms] would evaluate 3.15e10 steps, more than the limit of 11,000"


def test_subquery_huge_step_count_on_empty_store_still_rejected() -> None:
    # no series at all: the steps alone would loop for hours
    with pytest.raises(PromQLError, match=r"subquery x\[1y:1ms\] offset 5m would evaluate 3.15e10 steps"):
        compile_expr("count_over_time(x[1y:1ms] offset 5m)").eval(store_of(0), T)


def test_subquery_at_step_limit_evaluates_one_more_step_rejected() -> None:
    store = store_of(1, points=200, step=1.0)
    at_limit = compile_expr("count_over_time(x[100s:1s])", max_subquery_steps=100)
    assert values(at_limit.eval(store, T)) == [100.0]
    with pytest.raises(PromQLError, match=r"would evaluate 101 steps, more than the limit of 100$"):
        compile_expr("count_over_time(x[101s:1s])", max_subquery_steps=100).eval(store, T)


def test_subquery_nested_step_counts_multiply_against_the_limit() -> None:
    store = store_of(2)
    nested = "max_over_time(count_over_time(x[1m:10s])[5m:10s])"  # 30 outer steps x 6 inner steps
    assert values(compile_expr(nested, max_subquery_steps=180).eval(store, T)) == [6.0, 6.0]
    with pytest.raises(PromQLError) as info:
        compile_expr(nested, max_subquery_steps=179).eval(store, T)
    assert str(info.value) == ("subquery x[1m:10s] would evaluate 180 steps (6 for each of 30 steps of the "
                               "enclosing subqueries), more than the limit of 179")


def test_subquery_limit_error_leaves_the_next_evaluation_unaffected() -> None:
    store = store_of(3)
    bad = compile_expr("max_over_time(count_over_time(x[1m:10s])[5m:10s])", max_subquery_steps=100)
    with pytest.raises(PromQLError):
        bad.eval(store, T)
    # the step factor of the failed evaluation is not left behind
    assert values(compile_expr("count_over_time(x[1m:10s])", max_subquery_steps=6).eval(store, T)) == [6.0] * 3


def test_sample_limit_subquery_points_held_fail_with_clear_error() -> None:
    store = store_of(10)
    expr = "count_over_time(x[10m:10s])"  # 60 steps x 10 series = 600 points held
    assert values(compile_expr(expr, max_samples=600).eval(store, T)) == [60.0] * 10
    with pytest.raises(PromQLError) as info:
        compile_expr(expr, max_samples=599).eval(store, T)
    assert str(info.value) == ("query processing would load too many samples into memory in query execution "
                               "(more than the limit of 599 samples)")


def test_sample_limit_instant_selector_over_limit_fails() -> None:
    store = store_of(10)
    assert len(compile_expr("x", max_samples=10).eval(store, T)) == 10  # type: ignore[arg-type]
    with pytest.raises(PromQLError, match="too many samples"):
        compile_expr("x", max_samples=9).eval(store, T)


def test_sample_limit_range_window_over_limit_fails() -> None:
    store = store_of(2)  # 60 points per series in the last 10 m
    assert values(compile_expr("count_over_time(x[10m])", max_samples=60).eval(store, T)) == [60.0, 60.0]
    with pytest.raises(PromQLError, match="too many samples"):
        compile_expr("count_over_time(x[10m])", max_samples=59).eval(store, T)


def test_sample_limit_counts_outer_points_held_while_inner_subquery_runs() -> None:
    store = store_of(10)
    # outer: 6 steps of 10 results each; inner: 3 steps x 10 series held, released after each outer step.
    # Peak: 50 outer points + 30 inner points at the last outer step = 80.
    expr = "max_over_time(count_over_time(x[30s:10s])[1m:10s])"
    assert values(compile_expr(expr, max_samples=80).eval(store, T)) == [3.0] * 10
    with pytest.raises(PromQLError, match="too many samples"):
        compile_expr(expr, max_samples=79).eval(store, T)


def test_sample_limit_released_between_sibling_subqueries() -> None:
    store = store_of(10)
    # each side holds 600 points, one after the other: the limit applies to each, not to the sum
    expr = "count_over_time(x[10m:10s]) + count_over_time(x[10m:10s])"
    assert values(compile_expr(expr, max_samples=600).eval(store, T)) == [120.0] * 10


RULES = """
groups:
  - name: g
    rules:
      - alert: Huge
        expr: max_over_time(x[1y:1ms]) > 0
      - alert: Normal
        expr: max_over_time(x[5m:1m]) > 0
"""


def test_rule_with_huge_subquery_fails_with_error_other_rules_evaluate(tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    errors = Errors()
    groups = load_rule_files([str(path)], errors, default_interval=15.0)
    assert not errors.issues, errors.issues
    manager = RuleManager(groups, external_labels={})
    transitions = manager.evaluate(groups[0], store_of(1), T)
    failed = {rule.name: message for rule, message in manager.rule_errors(groups[0])}
    assert failed == {"Huge": "subquery x[1y:1ms] would evaluate 3.15e10 steps, more than the limit of 11,000"}
    assert [t.alert.labels for t in transitions] == [(("alertname", "Normal"), ("i", "0"))]
