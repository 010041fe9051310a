"""Template rendering is bounded and never raises (findings F5, F16 and the template half of F6).

Inputs that would exhaust memory or run for minutes without the limits are rendered in one child process
under an address-space limit and a timeout (the `heavy` fixture), so a regression fails here instead of
taking the test run down; finishing at all is what shows the work is bounded (no timing is asserted).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from hostwarden.rules.templates import (
    FUNCTIONS,
    MAX_OUTPUT_CHARS,
    MAX_PRINTF_WIDTH,
    MAX_STEPS,
    TRUNCATED_MARKER,
    TemplateData,
    TemplateError,
    parse_template,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.agent import ROOT

STEPS_ERROR = f"<error expanding template: template exceeds {MAX_STEPS} execution steps " \
              "(actions and range iterations)>"
UNTRUSTED = "a" * 30 + "!"  # exponential for `(a+)+$` on a backtracking engine


def render(text: str, **labels: str) -> str:
    return parse_template(text).render(TemplateData(labels=labels, value=1.0))


def err(message: str) -> str:
    return f"<error expanding template: {message}>"


# -- inputs that are unbounded without the limits: rendered in a child process ---------------------------------
HEAVY: dict[str, tuple[str, dict[str, str]]] = {
    "range_huge": ("{{ range 100000000 }}xx{{ end }}", {}),
    "range_output": ('{{ range 100000000 }}{{ printf "%1000d" 1 }}{{ end }}', {}),
    "nested_ranges": ("{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}", {}),
    "printf_precision": ('{{ printf "%.999999999f" 1.5 }}', {}),
    "printf_width": ('{{ printf "%0999999999d" 1 }}', {}),
    "printf_star_width": ('{{ printf "%*d" 999999999 1 }}', {}),
    "printf_star_precision": ('{{ printf "%.*f" 999999999 1.5 }}', {}),
    "doubling_variable": ('{{ $x := "aaaaaaaa" }}{{ range 40 }}{{ $x = printf "%s%s" $x $x }}{{ end }}{{ len $x }}',
                          {}),
    "rereplace_label_squared": ("{{ reReplaceAll `` $labels.big $labels.big }}", {"big": "x" * 60_000}),
    "rereplace_nested_growth": ("{{ reReplaceAll `` `xxxxxxxxxx` (reReplaceAll `` `xxxxxxxxxx` "
                                "(reReplaceAll `` `xxxxxxxxxx` (reReplaceAll `` `xxxxxxxxxx` $labels.a))) }}",
                                {"a": "a" * 100}),
    "big_label": ("{{ $labels.a }}", {"a": "x" * 1_000_000}),
    "regex_replace_nested_plus": ('{{ reReplaceAll "(a+)+$" "" $labels.a }}', {"a": UNTRUSTED}),
    "regex_match_nested_plus": ('{{ match "(a+)+$" $labels.a }}', {"a": UNTRUSTED}),
    "regex_match_alternation": ('{{ match "^(a|aa)+$" $labels.a }}', {"a": "a" * 60 + "!"}),
    "regex_replace_xx": ('{{ reReplaceAll "(x+x+)+y" "z" $labels.a }}', {"a": "x" * 40}),
    "regex_long_label": ('{{ reReplaceAll "(a+)+$" "" $labels.a | len }}', {"a": "a" * 50_000 + "!"}),
}

_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from hostwarden.rules.templates import TemplateData, parse_template
out = {}
for name, (text, labels) in json.load(sys.stdin).items():
    try:
        out[name] = parse_template(text).render(TemplateData(labels=labels, value=1.0))
    except BaseException as e:
        out[name] = "RAISED " + type(e).__name__
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="module")
def heavy() -> dict[str, str]:
    try:
        res = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(HEAVY), capture_output=True,
                             text=True, timeout=60, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail("rendering the heavy templates did not finish within 60 s: work is not bounded")
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def test_templates_huge_range_stops_at_step_limit_error(heavy: dict[str, str]) -> None:
    assert heavy["range_huge"] == STEPS_ERROR
    assert heavy["nested_ranges"] == STEPS_ERROR


def test_templates_range_output_over_limit_truncated_with_marker(heavy: dict[str, str]) -> None:
    out = heavy["range_output"]
    # truncation (not the step error) shows the range stopped after ~66 iterations, on the output limit
    assert out == (" " * 999 + "1") * (MAX_OUTPUT_CHARS // 1000) + " " * (MAX_OUTPUT_CHARS % 1000) + TRUNCATED_MARKER


@pytest.mark.parametrize(("case", "expected"), [
    ("printf_precision", "%!(BADPREC)1.500000"),
    ("printf_width", "%!(BADWIDTH)1"),
    ("printf_star_width", "%!(BADWIDTH)1"),
    ("printf_star_precision", "%!(BADPREC)1.500000"),
])
def test_templates_printf_huge_width_or_precision_go_marker_not_applied(heavy: dict[str, str], case: str,
                                                                        expected: str) -> None:
    assert heavy[case] == expected


def test_templates_value_doubling_through_variable_error_names_function(heavy: dict[str, str]) -> None:
    assert heavy["doubling_variable"] == err(
        f"error calling printf: result of {2 * MAX_OUTPUT_CHARS} characters exceeds the limit of {MAX_OUTPUT_CHARS}")


@pytest.mark.parametrize("case", ["rereplace_label_squared", "rereplace_nested_growth"])
def test_templates_rereplace_growth_error_before_building(heavy: dict[str, str], case: str) -> None:
    assert heavy[case] == err(f"error calling reReplaceAll: result exceeds the limit of {MAX_OUTPUT_CHARS} "
                              "characters")


def test_templates_huge_label_value_output_truncated(heavy: dict[str, str]) -> None:
    assert heavy["big_label"] == "x" * MAX_OUTPUT_CHARS + TRUNCATED_MARKER


@pytest.mark.parametrize(("case", "expected"), [
    ("regex_replace_nested_plus", UNTRUSTED),
    ("regex_match_nested_plus", "false"),
    ("regex_match_alternation", "false"),
    ("regex_replace_xx", "x" * 40),
    ("regex_long_label", str(50_001)),
])
def test_templates_regex_on_untrusted_label_linear_time(heavy: dict[str, str], case: str, expected: str) -> None:
    # each takes minutes or longer on a backtracking engine; RE2 answers at once
    assert heavy[case] == expected


# -- output and step limits in detail ----------------------------------------------------------------------------
def test_templates_output_exactly_at_limit_not_truncated() -> None:
    assert render("{{ $labels.a }}", a="x" * MAX_OUTPUT_CHARS) == "x" * MAX_OUTPUT_CHARS


def test_templates_output_one_over_limit_truncated_with_marker() -> None:
    assert render("{{ $labels.a }}", a="x" * (MAX_OUTPUT_CHARS + 1)) == "x" * MAX_OUTPUT_CHARS + TRUNCATED_MARKER


def test_templates_range_over_labels_stops_once_output_over_limit() -> None:
    out = render("{{ range $labels }}{{ . }}{{ end }}after", a="x" * 40_000, b="y" * 40_000, c="z")
    # stopped inside `b`: `c` and the text after the range were never produced
    assert out == "x" * 40_000 + "y" * (MAX_OUTPUT_CHARS - 40_000) + TRUNCATED_MARKER


def test_templates_truncation_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    t = parse_template("{{ $labels.a }}")
    data = TemplateData(labels={"a": "x" * (MAX_OUTPUT_CHARS + 5)})
    with caplog.at_level(logging.WARNING, logger="hostwarden.rules.templates"):
        assert t.render(data) == t.render(data)
    assert [r.getMessage() for r in caplog.records] == \
        [f"template '{{{{ $labels.a }}}}': output truncated at {MAX_OUTPUT_CHARS} characters"]


def test_templates_steps_exactly_at_limit_renders() -> None:
    # steps: the range block, one per iteration, the text after it
    assert render(f"{{{{ range {MAX_STEPS - 2} }}}}{{{{ end }}}}ok") == "ok"


def test_templates_steps_one_over_limit_error() -> None:
    assert render(f"{{{{ range {MAX_STEPS} }}}}{{{{ end }}}}") == STEPS_ERROR


def test_templates_realistic_range_over_labels_renders() -> None:
    labels = {f"l{i:02d}": f"v{i}" for i in range(40)}
    out = render("{{ range $k, $v := $labels }}{{ $k }}={{ $v | toUpper }}, {{ end }}", **labels)
    assert out == "".join(f"l{i:02d}=V{i}, " for i in range(40))


# -- printf widths and precisions ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    (f'{{{{ printf "%{MAX_PRINTF_WIDTH}d" 7 }}}}', " " * (MAX_PRINTF_WIDTH - 1) + "7"),
    (f'{{{{ printf "%{MAX_PRINTF_WIDTH + 1}d" 7 }}}}', "%!(BADWIDTH)7"),
    (f'{{{{ printf "%.{MAX_PRINTF_WIDTH}f" 0.5 | len }}}}', str(MAX_PRINTF_WIDTH + 2)),
    (f'{{{{ printf "%.{MAX_PRINTF_WIDTH + 1}f" 0.5 }}}}', "%!(BADPREC)0.500000"),
    (f'{{{{ printf "%{MAX_PRINTF_WIDTH + 1}v|" "s" }}}}', "%!(BADWIDTH)s|"),
    ('{{ printf "%*d|%-*d|" 4 1 3 2 }}', "   1|2  |"),
    ('{{ printf "%*d|" -3 1 }}', "1  |"),  # a negative `*` width left-justifies, as in Go
    ('{{ printf "%.*f" 2 3.14159 }}', "3.14"),
    ('{{ printf "%.*f" "x" 1.5 }}', "%!(BADPREC)1.500000"),
    ('{{ printf "%.*f" -1 1.5 }}', "%!(BADPREC)1.500000"),
    ('{{ printf "%*d" }}', "%!(BADWIDTH)%!d(MISSING)"),
    ('{{ printf "%.f" 2.5 }}', "2"),
    ('{{ printf "%d" nil }}', "%!d(<nil>)"),
])
def test_templates_printf_width_precision_capped_go_markers(text: str, expected: str) -> None:
    assert render(text) == expected


# -- F16: function errors render as template errors ---------------------------------------------------------------
@pytest.mark.parametrize(("text", "message"), [
    ("{{ and }}", "wrong number of args for and: want at least 1 got 0"),
    ("{{ or }}", "wrong number of args for or: want at least 1 got 0"),
    ("{{ $x := or }}{{ $x }}", "wrong number of args for or: want at least 1 got 0"),
    ('{{ printf "%v" and }}', "wrong number of args for and: want at least 1 got 0"),
    ("{{ not }}", "wrong number of args for not: want 1 got 0"),
    ("{{ not 1 2 }}", "wrong number of args for not: want 1 got 2"),
    ("{{ 1 | ne 2 3 }}", "wrong number of args for ne: want 2 got 3"),
    ("{{ printf }}", "wrong number of args for printf: want at least 1 got 0"),
    ('{{ reReplaceAll "a" "b" }}', "wrong number of args for reReplaceAll: want 3 got 2"),
    ("{{ humanize }}", "wrong number of args for humanize: want 1 got 0"),
])
def test_templates_wrong_number_of_args_go_message(text: str, message: str) -> None:
    assert render(text) == err(message)


@pytest.mark.parametrize(("text", "message"), [
    ("{{ reReplaceAll $labels.a $value $value }}",
     "error calling reReplaceAll: wrong type for value; expected string; got float64"),
    ('{{ reReplaceAll 1 "" "" }}', "error calling reReplaceAll: wrong type for value; expected string; got int"),
    ("{{ stripPort 1 }}", "error calling stripPort: wrong type for value; expected string; got int"),
    ("{{ stripDomain 1 }}", "error calling stripDomain: wrong type for value; expected string; got int"),
    ("{{ stripDomain 1.5 }}", "error calling stripDomain: wrong type for value; expected string; got float64"),
    ("{{ stripPort $labels }}",
     "error calling stripPort: wrong type for value; expected string; got map[string]string"),
    ("{{ stripPort nil }}", "error calling stripPort: wrong type for value; expected string; got <nil>"),
    ('{{ match 1 "a" }}', "error calling match: wrong type for value; expected string; got int"),
    ('{{ match "a" true }}', "error calling match: wrong type for value; expected string; got bool"),
    ("{{ parseDuration 5 }}", "error calling parseDuration: wrong type for value; expected string; got int"),
    ("{{ len 1 }}", "error calling len: len of type int"),
])
def test_templates_wrong_argument_type_error_names_function(text: str, message: str) -> None:
    assert render(text) == err(message)


def test_templates_unexpected_exception_in_function_named_in_error() -> None:
    out = render("{{ humanizeTimestamp 1e300 }}")
    assert out.startswith(err("error calling humanizeTimestamp: ")[:-1])


def test_templates_any_exception_in_function_becomes_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(key: str) -> str:
        return {}[key]  # KeyError: no such path exists in the real functions any more

    monkeypatch.setitem(FUNCTIONS, "boom", boom)
    assert render('{{ boom "k" }}') == err("error calling boom: KeyError: 'k'")


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ and 1 0 2 }}", "0"), ("{{ and 1 2 }}", "2"), ("{{ and 1 }}", "1"), ('{{ and "" }}', ""),
    ('{{ or 0 "" "x" }}', "x"), ("{{ or 0 }}", "0"), ("{{ or 3 }}", "3"), ("{{ 0 | or 5 }}", "5"),
    ("{{ len $labels.a }}", "3"), ("{{ len $labels }}", "1"),
])
def test_templates_and_or_len_keep_go_semantics(text: str, expected: str) -> None:
    assert render(text, a="abc") == expected


ARG_POOL = ["$value", "$labels", "$labels.a", "1", "-2", "1.5", "0", '""', '"a"', '"(a+)+$"', '"("', '"%d"',
            '"%*d"', '"$1"', '"web:9100"', "true", "nil", "$", "."]


@settings(max_examples=400, deadline=None)
@given(fn=st.sampled_from(sorted(FUNCTIONS)), args=st.lists(st.sampled_from(ARG_POOL), max_size=4),
       piped=st.booleans(), label=st.sampled_from(["", "a" * 30 + "!", "[::1]:80", "é.b:1", "1e309"]))
def test_templates_any_function_any_args_render_never_raises(fn: str, args: list[str], piped: bool,
                                                             label: str) -> None:
    call = " ".join([fn, *args[1:]]) if piped else " ".join([fn, *args])
    text = f"{{{{ {args[0]} | {call} }}}}" if piped and args else f"{{{{ {call} }}}}"
    out = parse_template(text).render(TemplateData(labels={"a": label}, value=0.5))
    assert isinstance(out, str) and len(out) <= MAX_OUTPUT_CHARS + len(TRUNCATED_MARKER)


def test_templates_deeply_nested_parentheses_parse_error_not_recursion() -> None:
    assert render("{{ " + "(" * 200 + "1" + ")" * 200 + " }}") == "1"
    with pytest.raises(TemplateError) as exc:
        parse_template("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")
    assert (exc.value.message, exc.value.position) == ("template nested too deeply", 0)


# -- F6: reReplaceAll and match are Go regexp (RE2) -----------------------------------------------------------
@pytest.mark.parametrize(("pattern", "repl", "text", "expected"), [
    (r"(\w+):(\d+)", "$2:$1", "web:9100", "9100:web"),
    (r"(\w+):(\d+)", "${1}x", "web:9100", "webx"),
    (r"(\w+):(\d+)", "$1x", "web:9100 db:5432", " "),  # `$1x` is the (missing) group named "1x"
    (r"(?P<host>[^:]+):(?P<port>\d+)", "${host}/$port", "web:9100", "web/9100"),
    (r"(?P<host>[^:]+):(?P<port>\d+)", "$host-$port", "web:9100", "web-9100"),
    ("a", "$$1", "a", "$1"),
    ("a", "100$", "a", "100$"),  # a malformed `$` is literal text
    ("a", "${1", "a", "${1"),
    ("(a)", "$9|$0|$1|$01", "a", "|a|a|"),  # unknown groups expand to ''; `$01` is a name
    ("(a)", r"\1\n\g<1>", "a", r"\1\n\g<1>"),  # no Python replacement syntax: backslashes are literal
    ("(a)|b", "[$1]", "ab", "[a][]"),
    ("x*", "-", "abxd", "-a-b-d-"),  # Go skips the empty match right after a match (Python: -a-b--d-)
    ("^a", "b", "aaa", "baa"),
    ("é", "e", "café é", "cafe e"),
    (r"\d", "#", "1\u0663", "#\u0663"),  # RE2's \d is ASCII (Python's re would replace both)
    ("", "-", "ab", "-a-b-"),
])
def test_templates_rereplace_all_go_semantics(pattern: str, repl: str, text: str, expected: str) -> None:
    assert render(f"{{{{ reReplaceAll `{pattern}` `{repl}` `{text}` }}}}") == expected


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("^web", "web-01", "true"), ("b", "abc", "true"), (r"\d+$", "web", "false"), ("(?i)WEB", "web", "true"),
    (r"[[:alpha:]]+\z", "ab", "true"),
])
def test_templates_match_go_semantics(pattern: str, text: str, expected: str) -> None:
    assert render(f"{{{{ match `{pattern}` `{text}` }}}}") == expected


@pytest.mark.parametrize(("pattern", "message"), [
    ("(", "error parsing regexp: missing ): ("),
    ("(?=x)", "error parsing regexp: invalid perl operator: (?="),  # lookahead: Python only, not RE2
])
def test_templates_bad_regex_error_text(pattern: str, message: str) -> None:
    assert render(f'{{{{ reReplaceAll `{pattern}` "" "x" }}}}') == err(message)
    assert render(f'{{{{ match `{pattern}` "x" }}}}') == err(message)


def test_templates_pattern_from_untrusted_label_error_text() -> None:
    assert render("{{ match $labels.a `x` }}", a="(") == err("error parsing regexp: missing ): (")
    assert render("{{ reReplaceAll $labels.a `y` `x` }}", a="x") == "y"


def test_templates_rereplace_large_text_shrinking_result_allowed() -> None:
    # the text is over the limit but the result is not: only the result is bounded
    assert render("{{ reReplaceAll `.*` `x` $labels.a }}", a="a" * (2 * MAX_OUTPUT_CHARS)) == "x"
