"""Fuzzed PromQL, annotation templates, textfile exposition and Nagios plugin output.

- `rules.promql.compile_expr(text)` raises only PromQLError; a compiled expression evaluated over a
  small store raises only PromQLError (the engine wraps its own bugs) and returns in time.
- `rules.templates.parse_template(text)` raises only TemplateError; `Template.render` never raises.
- `collectors.textfile.parse_textfile(text)` raises only TextfileError; the collector over a directory
  of fuzzed files never raises and flags the bad ones with `node_textfile_scrape_error`.
- `collectors.perfdata.parse_output` and `collectors.check_nagios.interpret` never raise, for any
  output and exit code.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.agent.core.store import SeriesStore
from hostwarden.collectors.check_nagios import PluginRun, interpret
from hostwarden.collectors.checks import CheckResult
from hostwarden.collectors.perfdata import parse_output
from hostwarden.collectors.textfile import TextfileCollector, TextfileConfig, TextfileError, parse_textfile
from hostwarden.rules.promql import PromQLError, compile_expr
from hostwarden.rules.promql_functions import SUPPORTED_FUNCTIONS
from hostwarden.rules.templates import (
    FUNCTIONS,
    MAX_OUTPUT_CHARS,
    TRUNCATED_MARKER,
    Template,
    TemplateData,
    TemplateError,
    parse_template,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.fuzzing import TRICKY_STRINGS, budget
from tests.support.agent import ROOT

NOW = 1_700_000_000.0

# -- PromQL ---------------------------------------------------------------------------------------------------
METRICS = ["x", "up", "node_load1", "x_total", "h_bucket", "ALERTS", "missing_metric", "nan_gauge"]
LABELS = ["a", "le", "job", "__name__", "instance", "b"]
# subquery ranges and steps include huge ratios (1y:1ms): the step limit rejects them at once (F4, fixed)
DURATIONS = ["1s", "10s", "30s", "1m", "5m", "0s", "1h", "1d", "1y", "-5m", "5x", "1m30s"]
SUBQUERY_RANGES = ["1m", "5m", "10m", "1y"]
SUBQUERY_STEPS = ["", "10s", "1m", "30s", "1ms"]
NUMBERS = ["0", "1", "-1", "0.5", "1e400", "-1e-400", "NaN", "Inf", "-Inf", "0x1f", "1_000", "1e3", ".5", "5."]
OPS = ["+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless", "atan2"]
AGGS = ["sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
        "group", "limitk"]
REGEX_VALUES = ["", ".*", ".+", "a|b", "(", "[", "\\\\", "1", "a.*", "(?i)A", "[[:alpha:]]+", "\\\\d+", "x{2}", "(a+)+",
                "\\\\pL+"]

label_value = st.one_of(st.sampled_from(["1", "a", "", "\\\"", "\\n", "é", "0.5"]), st.text(
    alphabet=st.characters(blacklist_characters='"\\\n', blacklist_categories=("Cs",)), max_size=6))
matcher = st.tuples(st.sampled_from(LABELS), st.sampled_from(["=", "!=", "=~", "!~"]),
                    st.one_of(label_value, st.sampled_from(REGEX_VALUES))).map(lambda m: f'{m[0]}{m[1]}"{m[2]}"')
selector = st.tuples(st.sampled_from([*METRICS, ""]), st.lists(matcher, max_size=3)).map(
    lambda p: p[0] + ("{" + ",".join(p[1]) + "}" if p[1] or not p[0] else ""))
leaf = st.one_of(selector, st.sampled_from(NUMBERS), st.sampled_from(['"str"', '""', "'q'"]))


def _compose(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    grouping = st.tuples(st.sampled_from(["by", "without", ""]), st.lists(st.sampled_from(LABELS), max_size=2)).map(
        lambda g: f" {g[0]} ({', '.join(g[1])}) " if g[0] else "")
    matching = st.tuples(st.sampled_from(["", "on", "ignoring"]), st.lists(st.sampled_from(LABELS), max_size=2),
                         st.sampled_from(["", "group_left", "group_right", "group_left(b)"])).map(
        lambda m: (f" {m[0]}({', '.join(m[1])}) {m[2]} " if m[0] else " "))
    return st.one_of(
        st.tuples(inner, st.sampled_from(OPS), st.booleans(), matching, inner).map(
            lambda b: f"{b[0]} {b[1]}{' bool' if b[2] else ''}{b[3]}{b[4]}"),
        st.tuples(st.sampled_from([*sorted(SUPPORTED_FUNCTIONS), "holt_winters", "nope", "sort_by_label"]),
                  st.lists(inner, max_size=4)).map(lambda c: f"{c[0]}({', '.join(c[1])})"),
        st.tuples(st.sampled_from(AGGS), grouping, st.lists(inner, min_size=1, max_size=2)).map(
            lambda a: f"{a[0]}{a[1]}({', '.join(a[2])})"),
        st.tuples(selector, st.sampled_from(DURATIONS)).map(lambda r: f"{r[0]}[{r[1]}]"),
        st.tuples(inner, st.sampled_from(SUBQUERY_RANGES), st.sampled_from(SUBQUERY_STEPS)).map(
            lambda s: f"({s[0]})[{s[1]}:{s[2]}]"),
        st.tuples(inner, st.sampled_from(DURATIONS)).map(lambda o: f"{o[0]} offset {o[1]}"),
        inner.map(lambda e: f"-({e})"),
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"{e} @ 1700000000"),
    )


promql_exprs = st.recursive(leaf, _compose, max_leaves=8)
promql_junk = st.text(alphabet=st.sampled_from(list("xyz_{}[]()=~!\"',:+-*/^%<>@ 0123456789.eEsmhdwy")), max_size=40)


@pytest.fixture(scope="module")
def store() -> SeriesStore:
    s = SeriesStore()
    s.set_retention({}, all_names=3600.0)  # keep every name (the store drops names no rule reads)
    for i in range(40):
        t = NOW - 600 + i * 15
        samples = [Sample("x", (("a", "1"), ("job", "j")), float(i), t),
                   Sample("x", (("a", "2"), ("job", "j")), float(-i), t),
                   Sample("x_total", (("a", "1"),), float(i * 10), t),
                   Sample("up", (("instance", "h:1"), ("job", "j")), float(i % 2), t),
                   Sample("nan_gauge", (), math.nan, t),
                   Sample("node_load1", (), 0.5, t)]
        samples += [Sample("h_bucket", (("le", le),), float(i * k), t)
                    for k, le in enumerate(["0.1", "1", "10", "+Inf"], start=1)]
        s.append("fuzz", samples, t)
    return s


def _compile_and_eval(text: str, store: SeriesStore) -> str:
    try:
        compiled = compile_expr(text)
    except PromQLError:
        return "rejected"
    try:
        with store.lock:
            compiled.eval(store, NOW)
    except PromQLError:
        return "eval-error"
    return "ok"


@budget(500)
@given(text=promql_exprs)
def test_promql_generated_expressions_only_promql_error(text: str, store: SeriesStore) -> None:
    _compile_and_eval(text, store)


@budget(300)
@given(text=st.one_of(promql_junk, st.text(max_size=60)))
def test_promql_arbitrary_text_only_promql_error(text: str, store: SeriesStore) -> None:
    _compile_and_eval(text, store)


def _eval_in_subprocess(expr: str, series_label: str, timeout: float) -> str:
    code = ("import sys\n"
            "from hostwarden.agent.core.samples import Sample\nfrom hostwarden.agent.core.store import SeriesStore\n"
            "from hostwarden.rules.promql import compile_expr\n"
            "s = SeriesStore(); s.set_retention({}, all_names=3600.0); t = 1_700_000_000.0\n"
            "s.append('x', [Sample('x', (('a', sys.argv[2]),), 1.0, t - 5)], t - 5)\n"
            "assert s.series_count() == 1\n"
            "compile_expr(sys.argv[1]).eval(s, t); print('done')\n")
    try:
        res = subprocess.run([sys.executable, "-c", code, expr, series_label], capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "hang"
    return res.stdout.strip() or res.stderr.strip().splitlines()[-1]


def test_promql_subquery_with_huge_step_count_fails_fast_not_hangs() -> None:  # F4 (fixed)
    out = _eval_in_subprocess("max_over_time(x[1y:1ms])", "1", timeout=20)
    assert "would evaluate 3.15e10 steps, more than the limit of 11,000" in out, out


def test_promql_regex_matcher_on_untrusted_label_value_bounded_time() -> None:  # F6 (fixed): RE2
    assert _eval_in_subprocess('x{a=~"(a+)+"}', "a" * 30 + "!", timeout=20) == "done"


# -- annotation templates -------------------------------------------------------------------------------------
TEMPLATE_ARGS = ["$value", "$labels", "$labels.a", ".Labels.a", ".Value", "$externalLabels.host", "$externalURL",
                 '"s"', '"%d"', '"%.2f"', '"%v %s"', "1", "-1.5", "1e308", "0", "true", "nil", "$", ".", "$x",
                 '"(a|b)"', '"1h"', '"x"']
tpl_funcs = st.sampled_from([*sorted(FUNCTIONS), "query", "nope", "html"])
tpl_command = st.one_of(
    st.sampled_from(TEMPLATE_ARGS),
    st.tuples(tpl_funcs, st.lists(st.sampled_from(TEMPLATE_ARGS), max_size=3)).map(lambda c: " ".join([c[0], *c[1]])),
)
tpl_pipeline = st.tuples(st.sampled_from(["", "$x := ", "$x = "]), st.lists(tpl_command, min_size=1, max_size=3)).map(
    lambda p: p[0] + " | ".join(p[1]))


def _tpl_compose(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(st.sampled_from(["if", "with", "range"]), tpl_pipeline, inner, st.booleans(), inner).map(
            lambda b: f"{{{{ {b[0]} {b[1]} }}}}{b[2]}{'{{ else }}' + b[4] if b[3] else ''}{{{{ end }}}}"),
        st.lists(inner, min_size=2, max_size=3).map("".join),
    )


tpl_leaf = st.one_of(
    st.text(max_size=8),
    tpl_pipeline.map(lambda p: f"{{{{ {p} }}}}"),
    tpl_pipeline.map(lambda p: f"{{{{- {p} -}}}}"),
    st.sampled_from(["{{", "}}", "{{/* c */}}", "{{ end }}", "{{ else }}", "{{ if }}", "{{ (", "{{ $ }}",
                     "{{ template \"x\" }}", "{{ break }}", "{{ \"unterminated }}"]),
)
templates = st.recursive(tpl_leaf, _tpl_compose, max_leaves=6)
template_data = st.builds(
    TemplateData,
    labels=st.dictionaries(st.sampled_from(["a", "instance", "b"]), st.one_of(st.text(max_size=12),
                                                                               st.sampled_from(TRICKY_STRINGS)),
                           max_size=3),
    value=st.floats(allow_nan=True, allow_infinity=True),
    external_labels=st.dictionaries(st.sampled_from(["host", "dc"]), st.text(max_size=6), max_size=2),
    external_url=st.sampled_from(["", "http://127.0.0.1:9842"]),
)


@budget(500)
@given(text=st.one_of(templates, st.text(max_size=40)), data=template_data)
def test_templates_parse_only_template_error_render_never_raises(text: str, data: TemplateData) -> None:
    try:
        tpl = parse_template(text)
    except TemplateError as e:
        assert e.position is None or 0 <= e.position <= len(text)
        return
    assert isinstance(tpl, Template)
    out = tpl.render(data)  # never raises (F16 fixed)
    assert isinstance(out, str) and len(out) <= MAX_OUTPUT_CHARS + len(TRUNCATED_MARKER)


def _render_in_subprocess(text: str, timeout: float) -> str:
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from hostwarden.rules.templates import parse_template, TemplateData\n"
            "d = TemplateData(labels={'a': 'a' * 30 + '!'}, value=1.0, external_labels={}, external_url='')\n"
            "try:\n    out = parse_template(sys.argv[1]).render(d)\n"
            "except BaseException as e:\n    print(type(e).__name__); raise SystemExit(0)\n"
            "print('len', len(out))\n")
    try:
        res = subprocess.run([sys.executable, "-c", code, text], capture_output=True, text=True, timeout=timeout,
                             cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "hang"
    return res.stdout.strip()


@pytest.mark.parametrize("text", ["{{ and }}", "{{ or }}", "{{ $x := or }}{{ $x }}",
                                  "{{ reReplaceAll $labels.a $value $value }}", "{{ stripPort 1 }}",
                                  "{{ stripDomain 1 }}"])
def test_templates_function_errors_render_error_text_never_raise(text: str) -> None:  # F16 (fixed)
    out = parse_template(text).render(TemplateData(labels={}, value=1.0, external_labels={}, external_url=""))
    assert out.startswith("<error expanding template")


@pytest.mark.parametrize("text", ['{{ range 100000000 }}xx{{ end }}', '{{ printf "%.999999999f" 1.5 }}',
                                  '{{ printf "%0999999999d" 1 }}', '{{ range 30000 }}{{ "x" }}{{ end }}'])
def test_templates_huge_output_render_bounded_never_raises(text: str) -> None:  # F5 (fixed)
    out = _render_in_subprocess(text, timeout=20)
    assert out.startswith("len ") and int(out.split()[1]) <= MAX_OUTPUT_CHARS + len(TRUNCATED_MARKER), out


def test_templates_regex_function_on_untrusted_label_bounded_time() -> None:  # F6 (fixed): RE2, linear time
    # 'a' * 30 + '!' does not match `(a+)+$`: unchanged, 31 characters (backtracking `re` takes minutes)
    assert _render_in_subprocess('{{ reReplaceAll "(a+)+$" "" $labels.a }}', timeout=20) == "len 31"


# -- textfile exposition --------------------------------------------------------------------------------------
TF_NAMES = ["m", "m_total", "h_bucket", "h_sum", "h_count", "node_textfile_scrape_error", "bad-name", "9x", ""]
tf_labels = st.lists(st.tuples(st.sampled_from(["a", "le", "quantile", "__x", "bad-l", ""]),
                               st.one_of(st.text(max_size=6), st.sampled_from(['\\"', "\\\\", "\\n", "+Inf"]))),
                     max_size=3).map(lambda ls: "{" + ",".join(f'{k}="{v}"' for k, v in ls) + "}" if ls else "")
tf_line = st.one_of(
    st.tuples(st.sampled_from(TF_NAMES), tf_labels, st.sampled_from([*NUMBERS, "+Inf", "abc", ""]),
              st.sampled_from(["", " 1700000000000", " x"])).map(lambda p: f"{p[0]}{p[1]} {p[2]}{p[3]}"),
    st.tuples(st.sampled_from(TF_NAMES), st.sampled_from(["counter", "gauge", "histogram", "summary", "untyped",
                                                          "info", "bogus", ""])).map(lambda p: f"# TYPE {p[0]} {p[1]}"),
    st.tuples(st.sampled_from(TF_NAMES), st.text(max_size=10)).map(lambda p: f"# HELP {p[0]} {p[1]}"),
    st.sampled_from(["", "#", "# EOF", "   ", "\t"]),
    st.text(max_size=20),
)
tf_files = st.tuples(st.lists(tf_line, max_size=10), st.booleans()).map(
    lambda p: "\n".join(p[0]) + ("\n" if p[1] else ""))


@budget(500)
@given(text=tf_files)
def test_textfile_parse_only_textfile_error(text: str) -> None:
    try:
        families = parse_textfile(text)
    except TextfileError:
        return
    for fam in families:
        assert fam.samples and all(isinstance(v, float) for _, _, v in fam.samples)


@pytest.fixture(scope="module")
def textfile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("textfile")


@budget(200)
@given(files=st.lists(st.one_of(tf_files.map(str.encode), st.binary(max_size=100)), min_size=1, max_size=3))
def test_textfile_collector_fuzzed_directory_never_raises_flags_errors(textfile_dir: Path, files: list[bytes]) -> None:
    for old in textfile_dir.glob("*.prom"):
        old.unlink()
    for i, data in enumerate(files):
        (textfile_dir / f"f{i}.prom").write_bytes(data)
    collector = TextfileCollector(TextfileConfig(directory=str(textfile_dir)))
    samples = list(collector.collect(NOW + 10))  # files are older than the racy window
    error = [s.value for s in samples if s.name == "node_textfile_scrape_error"]
    assert len(error) == 1
    good = 0
    for data in files:
        try:
            parse_textfile(data.decode("utf-8"))
            good += 1
        except (TextfileError, UnicodeDecodeError):
            pass
    if good < len(files):
        assert error == [1.0]
    keys = [(s.name, s.labels) for s in samples]
    assert len(keys) == len(set(keys)), "duplicate series in one snapshot"


# -- Nagios plugin output -------------------------------------------------------------------------------------
perf_item = st.tuples(
    st.one_of(st.sampled_from(["load1", "'a b'", "'it''s'", "'", "=", "''", "time"]), st.text(max_size=6)),
    st.sampled_from([*NUMBERS, "U", "", "1,5", "12abc"]),
    st.sampled_from(["", "s", "ms", "%", "KB", "MiB", "c", "B", "weird", ";;"]),
    st.lists(st.sampled_from(["", "1", "10:20", "@5", "~:4", "x", "1e400"]), max_size=4),
).map(lambda p: f"{p[0]}={p[1]}{p[2]}" + "".join(";" + x for x in p[3]))
plugin_output = st.one_of(
    st.tuples(st.text(max_size=20), st.lists(perf_item, max_size=5), st.lists(st.text(max_size=10), max_size=3),
              st.lists(perf_item, max_size=3)).map(
        lambda p: f"{p[0]} | {' '.join(p[1])}\n" + "\n".join(p[2]) + ("\n| " + " ".join(p[3]) if p[3] else "")),
    st.text(max_size=200),
)


@budget(500)
@given(out=plugin_output, rc=st.one_of(st.integers(-64, 300), st.none()), err=st.text(max_size=30),
       truncated=st.booleans())
def test_nagios_output_and_exit_code_never_raise(out: str, rc: int | None, err: str, truncated: bool) -> None:
    parsed = parse_output(out)
    assert "\n" not in parsed.text
    result = interpret(PluginRun(rc, out, err, truncated), max_perfdata=10)
    assert isinstance(result, CheckResult)
    assert result.status in (0, 1, 2, 3)
    assert result.ok == (rc == 0)
    assert len({(s.name, s.labels) for s in result.samples}) == len(result.samples)
    assert len([s for s in result.samples if s.name == "hostwarden_nagios_perfdata_value"]) <= 10
    if rc is not None and rc < 0 and -rc in {s.value for s in signal.Signals}:
        assert "killed by signal" in result.message
