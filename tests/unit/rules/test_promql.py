"""hostwarden.rules.promql: the compile-time contract (types, selectors, rejections with positions) and the
evaluation semantics not covered by the ported upstream cases (test_promql_testdata.py).

Every expected value here is computed by hand from Prometheus' definitions; the arithmetic is in
the comments next to the case.
"""

from __future__ import annotations

import math

import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.agent.core.store import STALE_NAN, SeriesStore
from hostwarden.rules.promql import (
    Element,
    PromQLError,
    Selector,
    SeriesRange,
    compile_expr,
    instant_query,
    line_column,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def store_with(*series: tuple[str, dict[str, str], list[tuple[float, float]]]) -> SeriesStore:
    store = SeriesStore()
    for name, labels, points in series:
        store.load_series(name, tuple(sorted(labels.items())), points)
    return store


def values(result: object) -> dict[tuple, float]:
    assert isinstance(result, list)
    out = {}
    for e in result:
        assert isinstance(e, Element)
        out[e.labels] = e.value
    return out


# -- compile: value types and selectors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "value_type"),
    [
        ("up", "vector"),
        ("rate(x_total[5m]) > 0.5", "vector"),
        ("1 + 2", "scalar"),
        ("scalar(up)", "scalar"),
        ("time()", "scalar"),
        ('"text"', "string"),
        ("up[5m]", "matrix"),
        ("rate(up[5m])[30m:1m]", "matrix"),
    ],
)
def test_compile_expr_value_type_reported(expr: str, value_type: str) -> None:
    compiled = compile_expr(expr)
    assert compiled.value_type == value_type
    assert compiled.text == expr


def test_compile_expr_selectors_give_retention_per_name() -> None:
    compiled = compile_expr(
        'rate(a_total[5m] offset 1m) / on() group_left b + ignoring(x) max_over_time(rate(c_total[2m])[1h:1m])'
        ' + a_total + count_over_time({__name__=~"d.*"}[10m])'
    )
    got = {s.name: s.max_lookback_seconds for s in compiled.selectors}
    assert got == {
        "a_total": 300 + 60 + 300,  # range + offset + lookback (the instant a_total needs less)
        "b": 300,
        "c_total": 120 + 300 + 3600,  # inner range + lookback + the subquery's range
        None: 600 + 300,
    }
    assert all(isinstance(s, Selector) for s in compiled.selectors)


def test_compile_expr_custom_lookback_shortens_instant_selectors() -> None:
    store = store_with(("up", {}, [(0.0, 1.0)]))
    compiled = compile_expr("up", lookback=60.0)
    assert compiled.selectors == (Selector("up", 60.0),)
    assert values(compiled.eval(store, 59.0)) == {(("__name__", "up"),): 1.0}
    assert compiled.eval(store, 60.0) == []


# -- compile: unsupported features are rejected at load, with name and position -----------------


@pytest.mark.parametrize(
    ("expr", "feature", "position"),
    [
        ('sort_by_label(up, "job")', "function 'sort_by_label'", 0),
        ("sum(up) + mad_over_time(up[5m])", "function 'mad_over_time'", 10),
        ("double_exponential_smoothing(up[5m], 0.5, 0.5)", "function 'double_exponential_smoothing'", 0),
        ("info(up)", "function 'info'", 0),
        ("holt_winters(up[1h], 0.5, 0.5) > 1", "function 'holt_winters'", 0),  # Prometheus 2.x only
        ("sum(up) + limitk(2, up)", "aggregation 'limitk'", 10),
        ("limit_ratio by (job) (0.5, up)", "aggregation 'limit_ratio'", 0),
        ("rate(up[5m] @ 100)", "@ modifier", 12),
        ("up @ start()", "@ modifier", 3),
        ("max_over_time(up[10m:1m] @ end())", "@ modifier", 25),
        ('up{job="a" or job="b"}', "'or' in label matchers", 11),
        ("up / fill(0) down", "fill modifier", 5),
        ('up{job=~"(?x)a b"}', "regular expression syntax", 8),  # RE2 (Go) has no (?x); \\pL is fine
        # a function name inside a label value is not the call
        ('up{job="sort_by_label("} + sort_by_label(up, "a")', "function 'sort_by_label'", 27),
    ],
)
def test_compile_expr_unsupported_feature_rejected_with_position(expr: str, feature: str, position: int) -> None:
    with pytest.raises(PromQLError) as info:
        compile_expr(expr)
    assert info.value.feature == feature
    assert info.value.position == position
    assert feature in info.value.message and "not supported" in info.value.message


@pytest.mark.parametrize(
    ("expr", "position", "fragment"),
    [
        ("rate(up[5m]", 4, "unclosed left parenthesis"),
        ("sum(up))", 7, "unexpected right parenthesis"),
        ("up bar", 3, "parse error"),
        ("sum(up) by", 10, "parse error"),
        ("nosuchfunc(up)", 0, "unknown function with name 'nosuchfunc'"),
        ('up{job="a"', 10, "parse error"),
        ("1 > 2", 2, "comparisons between scalars must use BOOL modifier"),
        ("up[5m] + 1", 7, "binary expression must contain only scalar and instant vector types"),
        ("rate(up)", 0, "expected type matrix in call to function 'rate'"),
        ("up +", 4, "parse error"),
        ('up{job=~"("}', 8, "illegal regex"),
    ],
)
def test_compile_expr_parse_error_has_position(expr: str, position: int, fragment: str) -> None:
    with pytest.raises(PromQLError) as info:
        compile_expr(expr)
    assert info.value.position == position, info.value.message
    assert fragment in info.value.message
    assert info.value.feature is None


def test_compile_expr_parse_error_in_multiline_expression_maps_to_line_and_column() -> None:
    expr = "sum by (job) (\n  rate(http_requests_total[5m]\n)"
    with pytest.raises(PromQLError) as info:
        compile_expr(expr)
    assert info.value.position is not None
    # the final `)` closes `rate(`, so the outer `(` of `sum by (job) (` is the unclosed one
    assert line_column(expr, info.value.position) == (1, 14)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ('count_values("not a label", up)', "invalid label name"),
        ('label_replace(up, "0dst", "x", "job", ".*")', "invalid destination label name"),
        ('label_replace(up, "dst", "x", "job", "(")', "invalid regular expression"),
    ],
)
def test_compile_expr_invalid_arguments_rejected_at_load(expr: str, message: str) -> None:
    with pytest.raises(PromQLError) as info:
        compile_expr(expr, prometheus_compat=2)
    assert message in info.value.message


def test_compile_expr_comments_and_newlines_allowed() -> None:
    store = store_with(("up", {"job": "a"}, [(0.0, 1.0)]))
    compiled = compile_expr("# is it up?\nup\n  == 1  # yes")
    assert values(compiled.eval(store, 10.0)) == {(("__name__", "up"), ("job", "a")): 1.0}


# -- selectors and matchers ----------------------------------------------------------------------


MATCHER_STORE = [
    ("m", {"job": "api", "path": "/a"}, [(0.0, 1.0)]),
    ("m", {"job": "api-2", "path": "/b"}, [(0.0, 2.0)]),
    ("m", {"job": "db"}, [(0.0, 3.0)]),
    ("m_other", {"job": "api"}, [(0.0, 4.0)]),
]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('m{job="api"}', [1.0]),
        ('m{job!="api"}', [2.0, 3.0]),
        ('m{job=~"api"}', [1.0]),  # fully anchored: not api-2
        ('m{job=~"api.*"}', [1.0, 2.0]),
        ('m{job!~"api.*"}', [3.0]),
        ('m{path=""}', [3.0]),  # a missing label equals ""
        ('m{path!=""}', [1.0, 2.0]),
        ('m{path=~".*"}', [1.0, 2.0, 3.0]),
        ('m{path=~".+"}', [1.0, 2.0]),
        ('m{path=~"/[[:alpha:]]"}', [1.0, 2.0]),  # RE2 POSIX class
        ('m{job=~"API", job=~"(?i)API"}', []),
        ('m{job=~"(?i)API"}', [1.0]),
        ('{__name__=~"m.*", job="api"}', [1.0, 4.0]),
        ('{__name__="m_other"}', [4.0]),
        ('{__name__!="m", job=~"api|db"}', [4.0]),
    ],
)
def test_selector_label_matchers_all_four_types(expr: str, expected: list[float]) -> None:
    store = store_with(*MATCHER_STORE)
    result = compile_expr(expr).eval(store, 10.0)
    assert sorted(values(result).values()) == expected


def test_selector_result_labels_include_name_in_sorted_position() -> None:
    store = store_with(("m", {"Zone": "eu", "a": "1"}, [(0.0, 1.0)]))
    (element,) = compile_expr("m").eval(store, 1.0)  # type: ignore[misc]
    assert element.labels == (("Zone", "eu"), ("__name__", "m"), ("a", "1"))  # 'Z' < '_' < 'a'
    assert element.metric_name == "m"
    assert element.label("Zone") == "eu"


def test_selector_stale_marker_ends_series_immediately() -> None:
    instant = compile_expr("load1")
    counter = compile_expr("count_over_time(load1[1m])")
    store = SeriesStore()  # retention from the compiled selectors, as the rule loader sets it
    store.set_retention({s.name: s.max_lookback_seconds for s in (*instant.selectors, *counter.selectors)
                         if s.name is not None})
    store.append("cpu", [Sample("load1", (("host", "a"),), 1.0, 100.0), Sample("load1", (("host", "b"),), 2.0, 100.0)],
                 now=100.0)
    store.append("cpu", [Sample("load1", (("host", "a"),), 3.0, 110.0)], now=110.0)  # b vanished: stale marker
    assert values(instant.eval(store, 105.0)) == {(("__name__", "load1"), ("host", "a")): 1.0,
                                                  (("__name__", "load1"), ("host", "b")): 2.0}
    assert values(instant.eval(store, 110.0)) == {(("__name__", "load1"), ("host", "a")): 3.0}
    # the stale marker is not a sample of the range either
    counted = values(counter.eval(store, 110.0))
    assert counted == {(("host", "a"),): 2.0, (("host", "b"),): 1.0}


def test_selector_offset_looks_back_in_time() -> None:
    store = store_with(("x", {}, [(0.0, 1.0), (60.0, 2.0), (120.0, 3.0)]))
    assert values(compile_expr("x offset 1m").eval(store, 120.0)) == {(("__name__", "x"),): 2.0}
    assert values(compile_expr("x offset -1m").eval(store, 60.0)) == {(("__name__", "x"),): 3.0}


def test_range_selector_result_is_matrix_of_points() -> None:
    store = store_with(("x", {"a": "b"}, [(0.0, 1.0), (60.0, 2.0), (120.0, 3.0)]))
    result = compile_expr("x[2m]").eval(store, 120.0)
    assert result == [SeriesRange((("__name__", "x"), ("a", "b")), ((60.0, 2.0), (120.0, 3.0)))]


def test_timestamp_of_selector_is_sample_time_not_eval_time() -> None:
    store = store_with(("x", {}, [(90.0, 5.0)]))
    assert values(compile_expr("timestamp(x)").eval(store, 100.0)) == {(): 90.0}
    assert values(compile_expr("timestamp(x + 1)").eval(store, 100.0)) == {(): 100.0}


# -- rate and friends, hand-computed -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "t", "expected"),
    [
        # samples 10@60 20@120 30@180; [5m] at 180: window (-120, 180], sampled interval 120 s, avg step 60 s.
        # delta 20; start gap 180 s >= 1.1*60 -> extrapolate avg/2 = 30 s; zero point 120*10/20 = 60 s (> 30);
        # end gap 0. increase = 20 * (120+30+0)/120 = 25; rate = 25/300.
        ("increase(c[5m])", 180.0, 25.0),
        ("rate(c[5m])", 180.0, 25.0 / 300),
        ("delta(c[5m])", 180.0, 25.0),
        # [1m] at 180: only 30@180 -> fewer than 2 samples -> no output
        ("rate(c[1m])", 180.0, None),
        # [2m] at 180: 20@120, 30@180 (60 is excluded: left-open). gaps 0/0 -> 10 * 120/60 = 20
        ("increase(c[2m])", 180.0, 20.0),
        # at 200: window (80, 200] -> 20@120 30@180; start gap 40 < 66 -> +40; end gap 20 -> +20; 10*120/60
        ("increase(c[2m])", 200.0, 20.0),
        ("irate(c[5m])", 180.0, 10.0 / 60),
        ("idelta(c[5m])", 180.0, 10.0),
        ("deriv(c[5m])", 180.0, 10.0 / 60),
        # regression at t=180: intercept 30, slope 1/6 per s -> in 600 s: 130
        ("predict_linear(c[5m], 600)", 180.0, 130.0),
        ("changes(c[5m])", 180.0, 2.0),
        ("resets(c[5m])", 180.0, 0.0),
        ("avg_over_time(c[5m])", 180.0, 20.0),
        ("quantile_over_time(0.25, c[5m])", 180.0, 15.0),
        ("stddev_over_time(c[5m])", 180.0, math.sqrt(200 / 3)),
    ],
)
def test_range_function_hand_computed(expr: str, t: float, expected: float | None) -> None:
    store = store_with(("c", {}, [(60.0, 10.0), (120.0, 20.0), (180.0, 30.0)]))
    result = values(compile_expr(expr).eval(store, t))
    if expected is None:
        assert result == {}
    else:
        assert result == {(): pytest.approx(expected, rel=1e-12)}


def test_rate_counter_reset_in_window_adds_previous_value() -> None:
    # 5@0 10@60 2@120 7@180: raw delta 2, reset adds 10 -> 12 over the sampled 180 s;
    # [3m] at 180: window (0, 180] -> 10@60 2@120 7@180, delta -3 + 10 = 7 over 120 s,
    # start gap 60 < 66 -> +60 (zero point 120*10/7 > 60), end 0 -> 7*180/120 = 10.5
    store = store_with(("c", {}, [(0.0, 5.0), (60.0, 10.0), (120.0, 2.0), (180.0, 7.0)]))
    assert values(compile_expr("increase(c[3m])").eval(store, 180.0)) == {(): pytest.approx(10.5)}
    assert values(compile_expr("resets(c[3m])").eval(store, 180.0)) == {(): 1.0}


def test_prometheus_compat_2_uses_closed_boundaries_and_old_extrapolation() -> None:
    store = store_with(("c", {}, [(60.0, 10.0), (120.0, 20.0), (180.0, 30.0)]), ("g", {}, [(0.0, 1.0)]))
    # 2.x clamps to the zero point (60 s) before testing the threshold (66 s): 20 * (120+60)/120 = 30
    # (checked against promtool 2.42); 3.x gives 25 (see above)
    assert values(compile_expr("increase(c[5m])", prometheus_compat=2).eval(store, 180.0)) == {(): 30.0}
    assert values(compile_expr("count_over_time(c[2m])", prometheus_compat=2).eval(store, 180.0)) == {(): 3.0}
    assert values(compile_expr("count_over_time(c[2m])").eval(store, 180.0)) == {(): 2.0}
    assert compile_expr("g", prometheus_compat=2).eval(store, 300.0) != []  # exactly 5 m old: still there
    assert compile_expr("g").eval(store, 300.0) == []


def test_regex_dot_matches_newline_only_in_prometheus_3() -> None:
    store = store_with(("d", {"a": "x\ny"}, [(0.0, 1.0)]))
    assert len(compile_expr('d{a=~"x.y"}').eval(store, 1.0)) == 1  # type: ignore[arg-type]
    assert compile_expr('d{a=~"x.y"}', prometheus_compat=2).eval(store, 1.0) == []


def test_subquery_default_step_is_configurable() -> None:
    store = store_with(("x", {}, [(float(t), float(t)) for t in range(0, 601, 10)]))
    # steps in (0, 600]: every 60 s -> 10 points; every 120 s -> 5 points
    assert values(compile_expr("count_over_time(x[10m:])").eval(store, 600.0)) == {(): 10.0}
    assert values(compile_expr("count_over_time(x[10m:])", subquery_step=120).eval(store, 600.0)) == {(): 5.0}


# -- operators: matching, name dropping and evaluation errors -------------------------------------


def operator_store() -> SeriesStore:
    return store_with(
        ("used", {"dev": "sda", "host": "h1"}, [(0.0, 30.0)]),
        ("used", {"dev": "sdb", "host": "h1"}, [(0.0, 60.0)]),
        ("size", {"dev": "sda", "host": "h1"}, [(0.0, 100.0)]),
        ("size", {"dev": "sdb", "host": "h1"}, [(0.0, 100.0)]),
        ("host_info", {"host": "h1", "owner": "ops"}, [(0.0, 1.0)]),
        ("limit", {"host": "h1"}, [(0.0, 50.0)]),
        ("dev_map", {"host": "h1", "dev": "all"}, [(0.0, 1.0)]),
    )


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("used / size", {(("dev", "sda"), ("host", "h1")): 0.3, (("dev", "sdb"), ("host", "h1")): 0.6}),
        ("used / size > 0.5", {(("dev", "sdb"), ("host", "h1")): 0.6}),
        ("used / size > bool 0.5", {(("dev", "sda"), ("host", "h1")): 0.0, (("dev", "sdb"), ("host", "h1")): 1.0}),
        # filtering keeps the metric name, arithmetic drops it
        ("used > 50", {(("__name__", "used"), ("dev", "sdb"), ("host", "h1")): 60.0}),
        ("used > on(host) group_left limit", {(("__name__", "used"), ("dev", "sdb"), ("host", "h1")): 60.0}),
        # scalar on the left of a comparison: the vector's value is kept
        ("50 < used", {(("__name__", "used"), ("dev", "sdb"), ("host", "h1")): 60.0}),
        # one-to-one with on(): only the on() labels survive
        ("used + on(dev, host) size",
         {(("dev", "sda"), ("host", "h1")): 130.0, (("dev", "sdb"), ("host", "h1")): 160.0}),
        ("sum by (host) (used) / on(host) limit", {(("host", "h1"),): 1.8}),
        # group_left copies the extra label from the one side
        ("used * on(host) group_left(owner) host_info",
         {(("dev", "sda"), ("host", "h1"), ("owner", "ops")): 30.0,
          (("dev", "sdb"), ("host", "h1"), ("owner", "ops")): 60.0}),
        # group_right: the many side is on the right, the value of a comparison stays the left operand's
        ("limit < on(host) group_right used", {(("__name__", "used"), ("dev", "sdb"), ("host", "h1")): 50.0}),
        ("used and on(host) limit", {(("__name__", "used"), ("dev", "sda"), ("host", "h1")): 30.0,
                                     (("__name__", "used"), ("dev", "sdb"), ("host", "h1")): 60.0}),
        ("used unless on(dev) size{dev=\"sda\"}", {(("__name__", "used"), ("dev", "sdb"), ("host", "h1")): 60.0}),
        ("limit or on(host) used", {(("__name__", "limit"), ("host", "h1")): 50.0}),
        ("-used{dev=\"sda\"}", {(("dev", "sda"), ("host", "h1")): -30.0}),
    ],
)
def test_binary_operator_semantics(expr: str, expected: dict) -> None:
    assert values(compile_expr(expr).eval(operator_store(), 10.0)) == pytest.approx(expected)


def test_scalar_arithmetic_follows_ieee() -> None:
    store = SeriesStore()
    assert compile_expr("2 ^ 10 % 1000").eval(store, 0.0) == 24.0
    assert compile_expr("1 / 0").eval(store, 0.0) == math.inf
    assert compile_expr("-1 / 0").eval(store, 0.0) == -math.inf
    assert math.isnan(compile_expr("0 / 0").eval(store, 0.0))  # type: ignore[arg-type]
    assert math.isnan(compile_expr("5 % 0").eval(store, 0.0))  # type: ignore[arg-type]
    assert compile_expr("0 ^ -1").eval(store, 0.0) == math.inf
    assert math.isnan(compile_expr("(-8) ^ 0.5").eval(store, 0.0))  # type: ignore[arg-type]
    assert compile_expr("10 ^ 400").eval(store, 0.0) == math.inf
    assert compile_expr("3 > bool 2").eval(store, 0.0) == 1.0


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("used * on(host) size", "many-to-many matching not allowed"),
        ("used * on(host) group_left size", "many-to-many matching not allowed"),
        ("used + ignoring(dev) limit", "many-to-one matching must be explicit"),
        # both results would be {dev="all", host="h1"}
        ("used * on(host) group_left(dev) dev_map", "grouping labels must ensure unique matches"),
        ('{__name__=~"used|size"} * 2', "vector cannot contain metrics with the same labelset"),
        ('max_over_time({__name__=~"used|size"}[5m])', "vector cannot contain metrics with the same labelset"),
        ('label_replace(used, "dev", "x", "dev", ".*")', "vector cannot contain metrics with the same labelset"),
        ("topk(scalar(nonexistent), used)", "overflows int64"),
    ],
)
def test_evaluation_error_raises_promql_error(expr: str, message: str) -> None:
    compiled = compile_expr(expr)  # loads fine: these are data-dependent
    with pytest.raises(PromQLError) as info:
        compiled.eval(operator_store(), 10.0)
    assert message in info.value.message
    assert info.value.position is None


def test_evaluation_with_empty_side_gives_empty_not_error() -> None:
    assert compile_expr("used * on(host) nonexistent").eval(operator_store(), 10.0) == []
    assert compile_expr("nonexistent * on(host) size").eval(operator_store(), 10.0) == []


# -- aggregations and functions ------------------------------------------------------------------


def test_aggregation_by_name_label_keeps_it() -> None:
    result = values(compile_expr('sum by (__name__) ({__name__=~"used|size"})').eval(operator_store(), 1.0))
    assert result == {(("__name__", "size"),): 200.0, (("__name__", "used"),): 90.0}


def test_count_values_formats_like_go() -> None:
    store = store_with(("v", {"i": "1"}, [(0.0, 1e21)]), ("v", {"i": "2"}, [(0.0, 0.1)]),
                       ("v", {"i": "3"}, [(0.0, 2.0)]), ("v", {"i": "4"}, [(0.0, math.inf)]))
    result = values(compile_expr('count_values("value", v)').eval(store, 1.0))
    assert set(result) == {(("value", "1000000000000000000000"),), (("value", "0.1"),), (("value", "2"),),
                           (("value", "+Inf"),)}


def test_absent_derives_labels_from_equality_matchers() -> None:
    compiled = compile_expr('absent(up{job="node", instance=~"h.*", env="prod"})')
    assert values(compiled.eval(SeriesStore(), 1.0)) == {(("env", "prod"), ("job", "node")): 1.0}
    present = store_with(("up", {"job": "node", "instance": "h1", "env": "prod"}, [(0.0, 1.0)]))
    assert compiled.eval(present, 1.0) == []


def test_label_replace_group_references_follow_go_expand() -> None:
    store = store_with(("m", {"src": "ab-cd"}, [(0.0, 1.0)]))
    expr = 'label_replace(m, "dst", "${1}x $2 $1x $$ $name", "src", "(?P<name>[a-z]+)-([a-z]+)")'
    (element,) = compile_expr(expr).eval(store, 1.0)  # type: ignore[misc]
    # $1x is the (missing) group named "1x" -> empty, as in Go
    assert element.label("dst") == "abx cd  $ ab"


def test_histogram_quantile_ignores_series_without_valid_le() -> None:
    store = store_with(
        ("h_bucket", {"le": "1"}, [(0.0, 5.0)]),
        ("h_bucket", {"le": "+Inf"}, [(0.0, 10.0)]),
        ("h_bucket", {"le": "bogus"}, [(0.0, 7.0)]),
    )
    # rank 5 falls in the +Inf bucket's first step: le=1 has count 5 >= 5 -> interpolate 0..1 -> 1.0
    assert values(compile_expr("histogram_quantile(0.5, h_bucket)").eval(store, 1.0)) == {(): 1.0}
    # rank 9 > 5 -> highest bucket -> upper bound of the second highest: 1
    assert values(compile_expr("histogram_quantile(0.9, h_bucket)").eval(store, 1.0)) == {(): 1.0}


def test_instant_query_compiles_and_evaluates_under_the_lock() -> None:
    store = store_with(("x", {}, [(0.0, 2.0)]))
    assert instant_query("x * 2", store, 1.0) == [Element((), 4.0)]
    assert instant_query("time()", store, 42.0) == 42.0
    assert instant_query('"s"', store, 1.0) == "s"


def test_compiled_expression_reused_across_times_and_stores() -> None:
    compiled = compile_expr("sum(rate(c[1m]))")
    first = store_with(("c", {"i": "1"}, [(0.0, 0.0), (30.0, 30.0), (60.0, 60.0)]))
    second = store_with(("c", {"i": "2"}, [(0.0, 0.0), (30.0, 60.0), (60.0, 120.0)]))
    assert values(compiled.eval(first, 60.0)) == {(): pytest.approx(1.0)}
    assert values(compiled.eval(second, 60.0)) == {(): pytest.approx(2.0)}
    assert compiled.eval(first, 600.0) == []


def test_prometheus_compat_2_atan2_keeps_metric_name() -> None:
    store = store_with(("y", {"k": "1"}, [(0.0, 1.0)]))
    assert values(compile_expr("y atan2 y").eval(store, 1.0)) == {(("k", "1"),): pytest.approx(math.pi / 4)}
    # promtool 2.42 keeps __name__ on atan2 (only + - * / % ^ dropped it then)
    assert values(compile_expr("y atan2 y", prometheus_compat=2).eval(store, 1.0)) == {
        (("__name__", "y"), ("k", "1")): pytest.approx(math.pi / 4)}


@pytest.mark.parametrize("compat", [2, 3])
def test_stdvar_over_time_uses_compensated_welford(compat: int) -> None:
    # 1 5 2 8: mean 4, variance (9+1+4+16)/4 = 7.5; Prometheus' compensated Welford (promtool 2.42
    # prints 7.500000000000001) ends one ulp above
    store = store_with(("g", {}, [(0.0, 1.0), (60.0, 5.0), (120.0, 2.0), (180.0, 8.0)]))
    result = values(compile_expr("stdvar_over_time(g[5m])", prometheus_compat=compat).eval(store, 180.0))  # type: ignore[arg-type]
    assert result == {(): 7.500000000000001}


def test_prometheus_compat_2_sums_in_series_order_without_compensation() -> None:
    # 2.x adds left to right: (0.1 + 0.2) + 0.3 = 0.6000000000000001; 3.x compensates: 0.6
    store = store_with(("r", {"i": "1"}, [(0.0, 0.1)]), ("r", {"i": "2"}, [(0.0, 0.2)]),
                       ("r", {"i": "3"}, [(0.0, 0.3)]))
    assert values(compile_expr("sum(r)", prometheus_compat=2).eval(store, 1.0)) == {(): 0.6000000000000001}
    assert values(compile_expr("sum(r)").eval(store, 1.0)) == {(): 0.6}
    assert values(compile_expr("avg(r)").eval(store, 1.0)) == {(): 0.19999999999999998}  # 0.6 / 3


def test_compiled_eval_internal_error_becomes_promql_error(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenStore(SeriesStore):
        def series(self, name: str | None = None):  # type: ignore[no-untyped-def, override]
            raise RuntimeError("disk on fire")

    compiled = compile_expr("up")
    for _ in range(3):
        with pytest.raises(PromQLError, match="internal error: RuntimeError: disk on fire"):
            compiled.eval(BrokenStore(), 1.0)
    assert [r.levelname for r in caplog.records] == ["ERROR"]  # logged once, not per evaluation


_TOKENS = ['x', 'y', '{', '}', '(', ')', '[5m]', '[1m:10s]', 'a="1"', 'a=~"1|2"', ',', '+', '-', '*', '/', '%', '^',
           '==', '>', 'bool', 'and', 'or', 'unless', 'on(a)', 'ignoring(a)', 'group_left(b)', 'group_right', 'sum',
           'by (a)', 'without (a)', 'rate', 'topk', 'count_values', '"v"', '1', '0', 'NaN', '0.5', 'offset 1m',
           'histogram_quantile', 'label_replace', 'absent', 'scalar', 'vector', 'time()', 'clamp', 'round',
           'quantile', 'avg_over_time', 'predict_linear', 'timestamp', 'changes', '@', 'stddev', 'atan2',
           'rate(x[5m])', 'sum(x)', 'x{a="1"}', 'y[5m]', '# c\n']
_FUZZ_STORE = store_with(*[
    (n, {"a": a, "b": "q"}, [(t * 30.0, [1.0, 5.0, math.nan, STALE_NAN, 0.0][t % 5] if t % 7 else float(t))
                             for t in range(40)])
    for n in ("x", "y") for a in ("1", "2")])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=9))
def test_compile_and_eval_random_token_soup_only_raise_promql_error(tokens: list[str]) -> None:
    text = " ".join(tokens)
    try:
        compiled = compile_expr(text)
    except PromQLError as e:
        assert e.position is None or 0 <= e.position <= len(text)
        return
    for t in (0.0, 300.0, 1199.0):
        try:
            compiled.eval(_FUZZ_STORE, t)
        except PromQLError as e:
            assert not e.message.startswith("internal error"), e.message


def test_a_sample_collected_within_the_millisecond_before_an_evaluation_is_seen() -> None:
    """Evaluations run at times rounded to the millisecond (Prometheus' grid): a sample collected at
    x.3531 s and a rule evaluated 0.2 ms later, at x.3533 (rounded: x.353), must still see it."""
    instant = compile_expr("load1 > 0.1")
    store = SeriesStore()
    store.set_retention({s.name: s.max_lookback_seconds for s in instant.selectors if s.name is not None})
    t = 1_796_256_739.3531532
    store.append("load", [Sample("load1", (), 0.5, t)], now=t)
    assert values(instant.eval(store, t + 0.0002)) == {(("__name__", "load1"),): 0.5}
    assert values(instant.eval(store, t)) == {(("__name__", "load1"),): 0.5}
