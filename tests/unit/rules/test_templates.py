from __future__ import annotations

import logging

import pytest
from hostwarden.rules.templates import (
    TemplateData,
    TemplateError,
    go_float,
    go_sprintf,
    humanize,
    humanize1024,
    humanize_duration,
    humanize_percentage,
    humanize_timestamp,
    parse_template,
)

DATA = TemplateData(labels={"__name__": "x", "instance": "web-01:9100", "job": "node"}, value=0.9312,
                    external_labels={"host": "web-01"}, external_url="http://agent:9842")


def render(text: str, data: TemplateData = DATA) -> str:
    return parse_template(text).render(data)


@pytest.mark.parametrize(("v", "s"), [
    (1.0, "1"), (0.5, "0.5"), (-2.25, "-2.25"), (123456.0, "123456"), (1e6, "1e+06"), (1234567.0, "1.234567e+06"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (1 / 3, "0.3333333333333333"), (float("inf"), "+Inf"),
    (float("-inf"), "-Inf"), (float("nan"), "NaN"), (0.0, "0"),
])
def test_go_float_matches_go_percent_v(v: float, s: str) -> None:
    assert go_float(v) == s


@pytest.mark.parametrize(("fn", "v", "s"), [
    (humanize, 0, "0"), (humanize, 1234567, "1.235M"), (humanize, 0.001234, "1.234m"), (humanize, -1500, "-1.5k"),
    (humanize, float("inf"), "+Inf"), (humanize1024, 1, "1"), (humanize1024, 1536, "1.5ki"),
    (humanize1024, 2 ** 40, "1Ti"), (humanize_duration, 0, "0s"), (humanize_duration, 0.25, "250ms"),
    (humanize_duration, 59.5, "59.5s"), (humanize_duration, 3725, "1h 2m 5s"),
    (humanize_duration, 93784, "1d 2h 3m 4s"),
    (humanize_duration, -61, "-1m 1s"), (humanize_percentage, 0.93125, "93.12%"), (humanize_percentage, "0.5", "50%"),
    (humanize_timestamp, 1435065584.128, "2015-06-23 13:19:44.128 +0000 UTC"),
])
def test_humanize_functions_match_prometheus(fn, v, s: str) -> None:
    assert fn(v) == s


def test_go_sprintf_verbs_and_go_errors() -> None:
    assert go_sprintf("%.2f|%5.1f|%d|%s|%v|%q|%x|%%", 1.005, 2.25, 3, "a", 0.5, "q", 255) == \
        '1.00|  2.2|3|a|0.5|"q"|ff|%'
    assert go_sprintf("%d", 3.0) == "%!d(float64=3)"
    assert go_sprintf("%s %s", "a") == "a %!s(MISSING)"
    assert go_sprintf("%s", "a", 1) == "a%!(EXTRA int=1)"


def test_template_variables_and_dot_forms_render() -> None:
    assert render("{{ $labels.instance }} {{ .Labels.job }} {{ $value }} {{ .Value }}") == \
        "web-01:9100 node 0.9312 0.9312"
    assert render("{{ $externalLabels.host }} {{ .ExternalLabels.host }} {{ $externalURL }}") == \
        "web-01 web-01 http://agent:9842"
    assert render("[{{ $labels.missing }}]") == "[]"


def test_template_pipelines_functions_and_parentheses() -> None:
    assert render("{{ $value | humanizePercentage }}") == "93.12%"
    assert render('{{ printf "%.1f" $value }} {{ $value | printf "%.3f" }}') == "0.9 0.931"
    assert render("{{ title $labels.job }} {{ $labels.job | toUpper }} {{ toLower \"AB\" }}") == "Node NODE ab"
    assert render("{{ (humanize 1500) | toUpper }}") == "1.5K"
    assert render('{{ reReplaceAll ":.*" "" $labels.instance }} {{ stripPort $labels.instance }}') == \
        "web-01 web-01"
    assert render('{{ if match "^web" $labels.instance }}web{{ end }}') == "web"


def test_template_control_flow_if_else_with_range_and_variables() -> None:
    text = ("{{ if gt $value 0.95 }}crit{{ else if gt $value 0.9 }}warn{{ else }}ok{{ end }}"
            "{{ with $labels.job }} job={{ . }}{{ end }}{{ with $labels.none }}x{{ else }} none{{ end }}"
            "{{ $v := $value }} v={{ $v }}"
            "{{ range $k, $val := $labels }} {{ $k }}={{ $val }}{{ end }}")
    assert render(text) == "warn job=node none v=0.9312 __name__=x instance=web-01:9100 job=node"


def test_template_trim_markers_and_comments() -> None:
    assert render("a \n {{- /* note */ -}} \n b") == "ab"
    assert render("a {{- \" x \" -}} b") == "a x b"
    assert render("{{/* only a comment */}}") == ""


def test_template_static_text_is_returned_as_is() -> None:
    t = parse_template("no actions here")
    assert t.is_static and t.render(DATA) == "no actions here"


@pytest.mark.parametrize(("text", "message", "position"), [
    ("{{ nosuch }}", 'function "nosuch" not defined', 3),
    ("ab {{ $labels.x ", "unclosed action", 3),
    ("{{ end }}", "unexpected {{end}}", 3),
    ("{{ if 1 }}x", "unexpected EOF: missing {{end}}", 11),
    ('{{ tmpl "up" . }}', "function 'tmpl' is not supported in hostwarden templates", 3),
    ("{{ $nope }}", "undefined variable '$nope'", 3),
    ("{{ template \"x\" }}", '{{template}} is not supported in alert templates', 3),
    ('{{ "unterminated }}', "unterminated quoted string", 3),
    ("{{ $value | }}", "missing command after '|'", 10),
])
def test_parse_template_errors_have_message_and_position(text: str, message: str, position: int) -> None:
    with pytest.raises(TemplateError) as exc:
        parse_template(text)
    assert (exc.value.message, exc.value.position) == (message, position)


def test_template_render_error_renders_marker_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    t = parse_template("v={{ $value | humanize }}")
    bad = TemplateData(value="not a number")
    with caplog.at_level(logging.WARNING, logger="hostwarden.rules.templates"):
        first = t.render(bad)
        second = t.render(bad)
    # as in Prometheus, the whole template renders as the error
    assert first == second == "<error expanding template: strconv.ParseFloat: parsing 'not a number': " \
                              "invalid syntax>"
    assert len(caplog.records) == 1
    assert t.render(TemplateData(value=1500.0)) == "v=1.5k"


def test_template_field_of_struct_missing_is_a_render_error() -> None:
    assert render("{{ .Nope }}").startswith("<error expanding template: can't evaluate field Nope")
