"""`query` and its companions in alert templates: Prometheus' semantics, bounded like every template."""

from __future__ import annotations

import math

import pytest
from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.promql import compile_expr
from hostwarden.rules.template_query import query_function
from hostwarden.rules.templates import MAX_QUERIES, MAX_QUERY_RESULT, TemplateData, parse_template

RESULT = [({"__name__": "up", "instance": "b"}, 2.0), ({"__name__": "up", "instance": "a"}, 1.5)]


def render(text: str, result=RESULT) -> str:  # type: ignore[no-untyped-def]
    return parse_template(text).render(TemplateData(query=lambda q: result))


@pytest.mark.parametrize(("text", "want"), [
    ('{{ query "up" | first | value }}', "2"),
    ('{{ with query "up" }}{{ . | first | label "instance" }}{{ end }}', "b"),
    ('{{ range query "up" | sortByLabel "instance" }}{{ .Labels.instance }}:{{ .Value }} {{ end }}', "a:1.5 b:2 "),
    ('{{ range $i, $s := query "up" }}{{ $i }}={{ value $s }};{{ end }}', "0=2;1=1.5;"),
    ('[{{ query "up" | first | strvalue }}]', "[]"),
    ('{{ len (query "up") }}', "2"),
    ('{{ index (query "up") 1 | value | humanizePercentage }}', "150%"),
    ('{{ (query "up" | first).Labels.instance }}', "b"),
    ('{{ query "up" | first }}', "&{map[__name__:up instance:b] 2}"),
    ('{{ with query "x" }}yes{{ else }}empty{{ end }}', "empty"),
])
def test_template_query_companions_as_prometheus(text: str, want: str) -> None:
    result = [] if "yes" in text else RESULT
    assert render(text, result) == want


@pytest.mark.parametrize(("text", "error"), [
    ('{{ query "x" | first }}', "error calling first: first() called on vector with no elements"),
    ('{{ first "a" }}', "error calling first: wrong type for value; expected template.queryResult; got string"),
    ('{{ value 1 }}', "error calling value: wrong type for value; expected *template.sample; got int"),
    ('{{ (query "up" | first).Nope }}', "can't evaluate field Nope in type *template.sample"),
    ('{{ range query "up" | first }}{{ end }}', "range can't iterate over"),
    ('{{ query 1 }}', "error calling query: wrong type for value; expected string; got int"),
])
def test_template_query_errors_render_as_template_errors(text: str, error: str) -> None:
    out = render(text, [] if "\"x\"" in text else RESULT)
    assert out.startswith("<error expanding template: ") and error in out


def test_template_query_without_engine_is_an_error_not_a_crash() -> None:
    assert parse_template('{{ query "up" }}').render(TemplateData()) == \
        "<error expanding template: error calling query: no query engine>"


def test_template_query_failing_query_message_is_the_template_error() -> None:
    def fails(q: str) -> list:
        raise ValueError(f"parse error in {q}")

    out = parse_template('{{ query "rate(" }}').render(TemplateData(query=fails))
    assert out == "<error expanding template: error calling query: parse error in rate(>"


def test_template_query_calls_per_render_bounded() -> None:
    calls: list[str] = []

    def q(text: str) -> list:
        calls.append(text)
        return RESULT

    text = "{{ range 100 }}{{ len (query \"up\") }}{{ end }}"
    out = parse_template(text).render(TemplateData(query=q))
    assert len(calls) == MAX_QUERIES
    assert out.endswith(f"<error expanding template: error calling query: template exceeds {MAX_QUERIES} queries>")
    assert out == f"<error expanding template: error calling query: template exceeds {MAX_QUERIES} queries>"


def test_template_query_result_size_bounded() -> None:
    big = [({"i": str(i)}, float(i)) for i in range(MAX_QUERY_RESULT + 1)]
    out = render('{{ len (query "x") }}', big)
    assert out == (f"<error expanding template: error calling query: {MAX_QUERY_RESULT + 1} elements, more than "
                   f"the limit of {MAX_QUERY_RESULT}>")
    assert render('{{ len (query "x") }}', big[:MAX_QUERY_RESULT]) == str(MAX_QUERY_RESULT)


def test_template_query_range_over_result_bounded_by_steps() -> None:
    many = [({"i": str(i)}, 1.0) for i in range(MAX_QUERY_RESULT)]
    out = render('{{ range query "x" }}{{ .Value }}{{ end }}', many)
    assert out == "<error expanding template: template exceeds 10000 execution steps (actions and range iterations)>"


def _store() -> SeriesStore:
    store = SeriesStore()
    store.set_retention({}, all_names=math.inf)
    store.load_series("x", (("k", "a"),), [(float(t), float(t)) for t in range(0, 601, 30)])
    return store


def test_query_function_evaluates_at_the_time_given_with_the_rules_options() -> None:
    store = _store()
    opts = compile_expr("x", subquery_step=30.0, prometheus_compat=2).options
    q = query_function(store, 600.0, opts)
    assert q("x") == [({"__name__": "x", "k": "a"}, 600.0)]
    assert q("time()") == [({}, 600.0)]  # a scalar is a one-element vector without labels
    assert q("count_over_time(x[2m:])") == [({"k": "a"}, 5.0)]  # the step of the options: 30s, 2.x boundaries
    assert query_function(store, 300.0, opts)("x") == [({"__name__": "x", "k": "a"}, 300.0)]


def test_query_function_rejects_strings_and_ranges_and_memoizes_per_evaluation() -> None:
    store = _store()
    q = query_function(store, 600.0, compile_expr("x").options)
    for bad in ('"text"', "x[5m]"):
        with pytest.raises(Exception, match="rule result is not a vector or scalar"):
            q(bad)
    first = q("x")
    store.load_series("x", (("k", "a"),), [(600.0, -1.0)])  # overwrite the sample at 600
    assert q("x") is first  # the same text within one evaluation is evaluated once


@pytest.mark.parametrize(("text", "want"), [
    ("{{ externalURL }}|{{ pathPrefix }}", "http://prom.example:9090/prefix|/prefix"),
    ('{{ externalURL }}{{ graphLink "up == 0" }}', "http://prom.example:9090/prefix/graph?g0.expr=up+%3D%3D+0&g0.tab=0"),
    ('{{ tableLink "up" }}', "/graph?g0.expr=up&g0.tab=1"),
    ('{{ (args 1 "b").arg1 }}', "b"),
    ('{{ urlquery "a b&c" }}', "a+b%26c"),
    ('{{ $labels.a | html }}', "x&lt;y"),
    ('{{ println 1 2 "x" }}|', "1 2 x\n|"),
    ('{{ slice "abcdef" 1 3 }}|{{ slice "abc" 1 }}', "bc|bc"),
    ('{{ slice "abc" 5 }}', "<error expanding template: error calling slice: index out of range: 5>"),
    ('{{ call "x" }}', "<error expanding template: error calling call: non-function of type string>"),
])
def test_template_web_and_builtin_functions(text: str, want: str) -> None:
    data = TemplateData(labels={"a": "x<y"}, external_url="http://prom.example:9090/prefix")
    assert parse_template(text).render(data) == want


def test_template_tmpl_console_function_rejected_at_load() -> None:
    with pytest.raises(Exception, match="function 'tmpl' is not supported in hostwarden templates"):
        parse_template('{{ tmpl "x" . }}')


def test_template_literal_queries_found_for_retention_dynamic_ones_not() -> None:
    t = parse_template('{{ query "a" }}{{ "b" | query }}{{ with query "c" }}{{ len (query "d") }}{{ end }}'
                       '{{ printf "e%s" $labels.x | query }}{{ query (printf "f") }}')
    assert t.literal_queries() == ["a", "b", "c", "d"]
